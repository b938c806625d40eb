//! The markdown report of `bench --actions`: the load measurements, the event deliveries
//! from B's outbox to A (after the load, the backlog drain, the two convergence cases), and
//! the project's goals for them.

use std::time::Duration;

use super::actions::{ActionsReport, ActionsSettings, Arrival, Op};
use super::load::Measured;

/// A backlog of this many events drains within this long (the goal is stated for 10,000).
const DRAIN_GOAL: Duration = Duration::from_secs(10);
/// Pending events reach a source that contacts the target within this long.
const CONTACT_GOAL: Duration = Duration::from_secs(5);
/// Without contact: within the backoff cap plus this.
const NO_CONTACT_MARGIN: Duration = Duration::from_secs(5);

const OPS: [Op; 4] = [
    Op::Perform,
    Op::UpdateStatus,
    Op::BacklogUpdate,
    Op::Contact,
];

pub fn measurement_table(report: &ActionsReport) -> String {
    let mut out = String::from(
        "| measurement | requests | requests/s | p50 ms | p99 ms | errors |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for op in OPS {
        let Some(m) = report.get(op) else {
            out.push_str(&format!("| {} | — | — | — | — | not run |\n", op.label()));
            continue;
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            op.label(),
            m.requests,
            num(Some(m.rate()), 0),
            num(m.percentile_ms(0.50), 2),
            num(m.percentile_ms(0.99), 2),
            m.errors
        ));
    }
    out
}

fn seconds(duration: Option<Duration>) -> String {
    num(duration.map(|d| d.as_secs_f64()), 2)
}

/// The last four cells of a delivery row; `events`: the events the wait was for (`None`:
/// no rate).
fn arrival_cells(arrival: &Arrival, events: Option<u64>) -> String {
    let rate = arrival
        .all_held
        .filter(|d| !d.is_zero())
        .zip(events)
        .map(|(d, events)| events as f64 / d.as_secs_f64());
    let outcome = if arrival.all_held.is_some() {
        format!("{} of {}", arrival.held, arrival.expected)
    } else {
        format!(
            "NOT ALL: {} of {} (B: {} pending, {} dead)",
            arrival.held, arrival.expected, arrival.pending_left, arrival.dead
        )
    };
    format!(
        "{} | {} | {} | {outcome}",
        seconds(arrival.pending_zero),
        seconds(arrival.all_held),
        num(rate, 0),
    )
}

/// One row per wait for B's outbox to reach A.
pub fn delivery_table(report: &ActionsReport, settings: &ActionsSettings) -> String {
    let mut out = String::from(
        "| delivery | events | A down s | A restart s (spawn to ready) | B's next attempt to A \
         due, s after A ready | most attempts of a pending entry | A contacts B | B pending 0 \
         after s | A holds every event after s | events/s | A holds |\n\
         |---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|\n",
    );
    if let Some(settle) = &report.settle {
        out.push_str(&format!(
            "| after the load phases (A up all along; from the end of update-status) | — | — | \
             — | — | — | — | {} |\n",
            arrival_cells(settle, None)
        ));
    }
    if let Some(drain) = &report.drain {
        out.push_str(&format!(
            "| backlog drain (from A ready) | {} | {:.1} | {:.2} | {} | — | yes, one perform \
             right after ready | {} |\n",
            drain.events,
            drain.down.as_secs_f64(),
            drain.restart.as_secs_f64(),
            num(drain.next_attempt_in, 1),
            arrival_cells(&drain.arrival, Some(drain.events))
        ));
    }
    for case in &report.convergence {
        out.push_str(&format!(
            "| convergence {} (from A ready; B's OUTBOX_BACKOFF_CAP_SECONDS={}) | {} | {:.1} | \
             {:.2} | {} | {} | {} | {} |\n",
            if case.contact {
                "with contact"
            } else {
                "without contact"
            },
            settings.backoff_cap,
            case.events,
            case.down.as_secs_f64(),
            case.restart.as_secs_f64(),
            num(case.next_attempt_in, 1),
            case.attempts
                .map_or_else(|| "—".to_string(), |a| a.to_string()),
            if case.contact {
                "yes, one perform right after ready"
            } else {
                "no"
            },
            arrival_cells(&case.arrival, Some(case.events))
        ));
    }
    out
}

pub fn goals_table(report: &ActionsReport, settings: &ActionsSettings) -> String {
    let mut out = String::from("| goal | measured | target | met |\n|---|---|---|---|\n");
    match report.get(Op::Perform) {
        Some(m) => out.push_str(&format!(
            "| cross-instance perform on A, {} connections | {} requests/s, p99 {} ms, {} \
             errors | none stated (reported) | — |\n",
            settings.concurrency,
            num(Some(m.rate()), 0),
            num(m.percentile_ms(0.99), 2),
            m.errors
        )),
        None => out.push_str("| cross-instance perform | — | none stated | not measured |\n"),
    }
    match &report.drain {
        Some(drain) => out.push_str(&format!(
            "| drain of a {}-event backlog on PostgreSQL + Redis (A ready, contacts B, until \
             B has nothing pending and A holds every event) | {} s | < {} s | {} |\n",
            drain.events,
            seconds(drain.arrival.all_held),
            DRAIN_GOAL.as_secs(),
            met(drain.arrival.all_held, DRAIN_GOAL)
        )),
        None => out.push_str("| backlog drain under 10 s | — | < 10 s | not measured |\n"),
    }
    for contact in [true, false] {
        let target = if contact {
            CONTACT_GOAL
        } else {
            Duration::from_secs(settings.backoff_cap) + NO_CONTACT_MARGIN
        };
        let goal = if contact {
            "convergence after the source returns and contacts the target".to_string()
        } else {
            format!(
                "convergence after the source returns without contact (backoff cap {} s, \
                 reduced for the run)",
                settings.backoff_cap
            )
        };
        match report.convergence.iter().find(|c| c.contact == contact) {
            Some(case) => out.push_str(&format!(
                "| {goal}, {} events, A down {:.0} s | {} s | <= {} s | {} |\n",
                case.events,
                case.down.as_secs_f64(),
                seconds(case.arrival.all_held),
                target.as_secs(),
                met(case.arrival.all_held, target)
            )),
            None => out.push_str(&format!(
                "| {goal} | — | <= {} s | not measured |\n",
                target.as_secs()
            )),
        }
    }
    out
}

/// Error samples of every measurement that had failures.
pub fn errors_section(report: &ActionsReport) -> String {
    let mut out = String::new();
    for (op, m) in &report.measurements {
        if m.errors == 0 {
            continue;
        }
        out.push_str(&format!(
            "- {}: {} of {} failed; first: {}\n",
            op.label(),
            m.errors,
            m.requests,
            samples(m)
        ));
    }
    out
}

fn samples(m: &Measured) -> String {
    m.error_samples
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn met(measured: Option<Duration>, target: Duration) -> &'static str {
    match measured {
        Some(d) if d <= target => "yes",
        Some(_) => "no",
        None => "no (never converged)",
    }
}

fn num(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "—".to_string(), |v| format!("{v:.decimals$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_are_met_only_within_the_target() {
        let target = Duration::from_secs(10);
        assert_eq!(met(Some(Duration::from_secs(9)), target), "yes");
        assert_eq!(met(Some(target), target), "yes");
        assert_eq!(met(Some(Duration::from_millis(10_001)), target), "no");
        assert_eq!(met(None, target), "no (never converged)");
    }

    #[test]
    fn arrival_cells_show_what_is_missing() {
        let done = Arrival {
            expected: 100,
            held: 100,
            pending_zero: Some(Duration::from_secs(2)),
            all_held: Some(Duration::from_secs(4)),
            ..Arrival::default()
        };
        assert_eq!(
            arrival_cells(&done, Some(100)),
            "2.00 | 4.00 | 25 | 100 of 100"
        );
        let stuck = Arrival {
            expected: 100,
            held: 40,
            pending_left: 60,
            ..Arrival::default()
        };
        assert!(arrival_cells(&stuck, Some(100)).contains("NOT ALL: 40 of 100 (B: 60 pending"));
    }
}
