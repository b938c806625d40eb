//! The markdown report of `bench --peer-auth`: the in-process signing and verification
//! costs, signed versus unsigned rounds side by side (and each kind against itself, for the
//! drift), and the project's two peer-signature goals.

use super::load::Measured;
use super::network::{Miss, NetworkReport, Op, Trust};
use super::peer_auth::{CpuUse, MicroReport, PHASES, VERIFY};

/// Verification of one request, in microseconds.
const VERIFY_GOAL_US: f64 = 100.0;
/// A signed network fetch within this factor of an unsigned one.
const SIGNED_FACTOR_GOAL: f64 = 1.10;

/// One end-to-end round as it ran.
pub struct Round<'a> {
    pub trust: Trust,
    pub number: usize,
    pub report: &'a NetworkReport,
    /// The instances' CPU time per phase.
    pub cpu: &'a [(Op, CpuUse)],
}

/// What a phase's fan-out asks the peers, for the tables.
pub fn fan_out(op: Op) -> &'static str {
    match op {
        Op::CacheMiss | Op::CacheMissAlone => {
            "fetch_local to both peers per request (their counts stay cached)"
        }
        Op::IdMiss | Op::IdMissAlone => "count_local to both peers per request (no page fetched)",
        _ => "",
    }
}

/// A phase as the comparison and goals tables name it.
fn phase_label(op: Op, miss: Miss, alone: bool, concurrency: usize) -> String {
    let load = if alone {
        "one request at a time".to_string()
    } else {
        format!("{concurrency} connections")
    };
    format!("cache miss ({}), {load}: {}", miss.describe(), fan_out(op))
}

pub fn micro_table(micro: &MicroReport) -> String {
    let mut out = String::from(
        "| operation | iterations | p50 µs | p99 µs | mean µs | notes |\n\
         |---|---:|---:|---:|---:|---|\n",
    );
    for m in &micro.measurements {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            m.operation,
            m.nanos.len(),
            us(m.percentile_us(0.50)),
            us(m.percentile_us(0.99)),
            us(m.mean_us()),
            m.note
        ));
    }
    out
}

/// Several rounds' measurements of one phase as one: latencies merged, rate over the summed
/// time.
fn pooled<'a>(measured: impl Iterator<Item = &'a Measured>) -> Option<Measured> {
    let mut all = Measured::default();
    let mut any = false;
    for m in measured {
        any = true;
        all.requests += m.requests;
        all.errors += m.errors;
        all.elapsed += m.elapsed;
        all.latencies_us.extend_from_slice(&m.latencies_us);
    }
    all.latencies_us.sort_unstable();
    any.then_some(all)
}

fn selected<'a, 'r>(
    rounds: &'a [Round<'r>],
    trust: Trust,
    number: Option<usize>,
) -> impl Iterator<Item = &'a Round<'r>> {
    rounds
        .iter()
        .filter(move |r| r.trust == trust && number.is_none_or(|n| r.number == n))
}

fn phase(rounds: &[Round<'_>], trust: Trust, number: Option<usize>, op: Op) -> Option<Measured> {
    pooled(selected(rounds, trust, number).filter_map(|r| r.report.get(op)))
}

/// The instances' CPU microseconds per network fetch of `op`, over the selected rounds.
fn cpu_per_request(
    rounds: &[Round<'_>],
    trust: Trust,
    number: Option<usize>,
    op: Op,
) -> Option<f64> {
    let mut total = CpuUse::default();
    for round in selected(rounds, trust, number) {
        for (_, cpu) in round.cpu.iter().filter(|(o, _)| *o == op) {
            total.micros += cpu.micros;
            total.requests += cpu.requests;
        }
    }
    total.per_request_us()
}

/// `b / a` of an optional pair.
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if a > 0.0 => Some(b / a),
        _ => None,
    }
}

/// Rounds of one kind: one of them (`Some(number)`) or all of them.
type Selection = (Trust, Option<usize>);

/// Signed against unsigned per round and pooled, then each kind's last round against its
/// first (how much the machine drifted meanwhile).
pub fn comparison_table(rounds: &[Round<'_>], concurrency: usize) -> String {
    let mut out = String::from(
        "| operation | A vs B | A requests/s | B requests/s | B/A | A p50 ms | B p50 ms | B/A | \
         A p99 ms | B p99 ms | B/A | A CPU µs/request | B CPU µs/request | B/A |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let last = last_round(rounds);
    for (op, miss, alone) in PHASES {
        let label = phase_label(op, miss, alone, concurrency);
        let mut pairs: Vec<(String, Selection, Selection)> = (1..=last)
            .map(|n| {
                (
                    format!("round {n}: unsigned vs signed"),
                    (Trust::Off, Some(n)),
                    (Trust::Required, Some(n)),
                )
            })
            .collect();
        pairs.push((
            "**all rounds pooled: unsigned vs signed**".to_string(),
            (Trust::Off, None),
            (Trust::Required, None),
        ));
        if last > 1 {
            for (trust, kind) in [(Trust::Off, "unsigned"), (Trust::Required, "signed")] {
                pairs.push((
                    format!("drift: {kind} round 1 vs round {last}"),
                    (trust, Some(1)),
                    (trust, Some(last)),
                ));
            }
        }
        for (compared, (a_trust, a_round), (b_trust, b_round)) in pairs {
            let a = phase(rounds, a_trust, a_round, op);
            let b = phase(rounds, b_trust, b_round, op);
            let a_cpu = cpu_per_request(rounds, a_trust, a_round, op);
            let b_cpu = cpu_per_request(rounds, b_trust, b_round, op);
            let rate = |m: &Option<Measured>| m.as_ref().map(Measured::rate);
            let p = |m: &Option<Measured>, q| m.as_ref().and_then(|m| m.percentile_ms(q));
            out.push_str(&format!(
                "| {label} | {compared} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} \
                 |\n",
                num(rate(&a), 0),
                num(rate(&b), 0),
                num(ratio(rate(&a), rate(&b)), 3),
                num(p(&a, 0.50), 2),
                num(p(&b, 0.50), 2),
                num(ratio(p(&a, 0.50), p(&b, 0.50)), 3),
                num(p(&a, 0.99), 2),
                num(p(&b, 0.99), 2),
                num(ratio(p(&a, 0.99), p(&b, 0.99)), 3),
                num(a_cpu, 0),
                num(b_cpu, 0),
                num(ratio(a_cpu, b_cpu), 3),
            ));
        }
    }
    out
}

pub fn goals_table(
    micro: Option<&MicroReport>,
    rounds: &[Round<'_>],
    concurrency: usize,
) -> String {
    let mut out = String::from("| goal | measured | target | met |\n|---|---:|---|---|\n");
    match micro.and_then(|m| m.get(VERIFY)) {
        Some(verify) => {
            for (quantile, name) in [(0.50, "p50"), (0.99, "p99")] {
                let value = verify.percentile_us(quantile);
                out.push_str(&format!(
                    "| verification of one signed fetch_local, {name} (receiver's whole check, \
                     in process) | {} µs | < {VERIFY_GOAL_US:.0} µs | {} |\n",
                    us(value),
                    verdict(value.is_some_and(|v| v < VERIFY_GOAL_US))
                ));
            }
        }
        None => out.push_str("| verification under 100 µs | — | — | not measured |\n"),
    }
    for (op, miss, alone) in PHASES {
        let unsigned = phase(rounds, Trust::Off, None, op);
        let signed = phase(rounds, Trust::Required, None, op);
        let p50 = |m: &Option<Measured>| m.as_ref().and_then(|m| m.percentile_ms(0.50));
        let per_round: Vec<String> = (1..=last_round(rounds))
            .filter_map(|n| {
                ratio(
                    p50(&phase(rounds, Trust::Off, Some(n), op)),
                    p50(&phase(rounds, Trust::Required, Some(n), op)),
                )
                .map(|r| format!("round {n} {r:.3}"))
            })
            .collect();
        let goal = format!(
            "signed network fetch within 10% of unsigned: {}; ratio of medians, all rounds \
             pooled",
            phase_label(op, miss, alone, concurrency)
        );
        out.push_str(&match ratio(p50(&unsigned), p50(&signed)) {
            Some(r) => format!(
                "| {goal} | {r:.3} (p50 {} vs {} ms; {}) | <= {SIGNED_FACTOR_GOAL:.2} | {} |\n",
                num(p50(&signed), 2),
                num(p50(&unsigned), 2),
                per_round.join(", "),
                verdict(r <= SIGNED_FACTOR_GOAL)
            ),
            None => format!("| {goal} | — | <= {SIGNED_FACTOR_GOAL:.2} | not measured |\n"),
        });
        let (unsigned_cpu, signed_cpu) = (
            cpu_per_request(rounds, Trust::Off, None, op),
            cpu_per_request(rounds, Trust::Required, None, op),
        );
        if let (Some(u), Some(s)) = (unsigned_cpu, signed_cpu) {
            out.push_str(&format!(
                "| … same misses: the three instances' CPU per network fetch, signed vs \
                 unsigned (for reference; steadier than latency on a shared machine) | {s:.0} vs \
                 {u:.0} µs (+{:.0} µs, {:.3}x) | — | — |\n",
                s - u,
                s / u.max(f64::MIN_POSITIVE)
            ));
        }
    }
    out
}

/// The highest round number that ran.
fn last_round(rounds: &[Round<'_>]) -> usize {
    rounds.iter().map(|r| r.number).max().unwrap_or(0)
}

/// The report's name of a round.
pub fn round_name(trust: Trust, number: usize) -> String {
    match trust {
        Trust::Required => format!("x3 signed, round {number}"),
        Trust::Off => format!("x3 unsigned, round {number}"),
        Trust::Default => format!("x3 default peer_auth, round {number}"),
    }
}

fn us(value: Option<f64>) -> String {
    num(value, 1)
}

fn num(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "—".to_string(), |v| format!("{v:.decimals$}"))
}

fn verdict(met: bool) -> String {
    if met { "yes" } else { "no" }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::percentile_ms;
    use std::time::Duration;

    fn measured(latencies_ms: &[u64], seconds: u64) -> Measured {
        let mut latencies_us: Vec<u64> = latencies_ms.iter().map(|ms| ms * 1000).collect();
        latencies_us.sort_unstable();
        Measured {
            requests: latencies_us.len() as u64,
            elapsed: Duration::from_secs(seconds),
            latencies_us,
            ..Measured::default()
        }
    }

    #[test]
    fn pooling_merges_latencies_and_time() {
        let a = measured(&[1, 3], 1);
        let b = measured(&[2, 4], 1);
        let all = pooled([&a, &b].into_iter()).expect("pooled");
        assert_eq!(all.latencies_us, vec![1000, 2000, 3000, 4000]);
        assert_eq!(all.requests, 4);
        assert_eq!(all.rate(), 2.0);
        assert_eq!(percentile_ms(&all.latencies_us, 0.5), Some(2.0));
        assert!(pooled(std::iter::empty()).is_none());
    }

    #[test]
    fn ratios_need_a_positive_base() {
        assert_eq!(ratio(Some(2.0), Some(3.0)), Some(1.5));
        assert_eq!(ratio(Some(0.0), Some(3.0)), None);
        assert_eq!(ratio(None, Some(3.0)), None);
    }
}
