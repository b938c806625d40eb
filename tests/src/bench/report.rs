//! The markdown report: the machine, one row per measurement, the goals, the errors.

use super::load::{Measured, percentile_ms};
use super::pgbench::PgbenchRun;
use super::phases::{BackendReport, Phase};

/// Goals the project states for these numbers.
const CREATE_TO_INSERT_GOAL: f64 = 0.5;
const WARM_FETCH_GOAL: f64 = 15_000.0;
const IDLE_RSS_GOAL_MIB: f64 = 50.0;
const AUTH_OVERHEAD_GOAL: f64 = 0.10;

/// The machine: processing units and CPU model.
pub fn machine() -> String {
    let nproc = std::process::Command::new("nproc")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::thread::available_parallelism()
                .ok()
                .map(|n| n.to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let processors = cpuinfo
        .lines()
        .filter(|line| line.starts_with("processor"))
        .count();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    format!(
        "nproc {nproc}, CPU model \"{model}\" ({processors} processors in /proc/cpuinfo), \
         MemTotal {memory}"
    )
}

pub struct Row {
    backend: String,
    operation: String,
    rate: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
    errors: Option<u64>,
    note: String,
}

/// One row per measurement: pgbench first, then each backend's RSS and phases.
pub fn rows(pgbench: &[PgbenchRun], backends: &[BackendReport], seconds: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    for run in pgbench {
        rows.push(Row {
            backend: "postgresql (pgbench)".to_string(),
            operation: run.label.to_string(),
            rate: Some(run.tps),
            p50: percentile_ms(&run.latencies_us, 0.50),
            p99: percentile_ms(&run.latencies_us, 0.99),
            errors: Some(run.failed),
            note: format!("{} transactions in {seconds} s", run.transactions),
        });
    }
    for report in backends {
        let rss_row = |operation: &str, kib: Option<u64>| Row {
            backend: report.backend.to_string(),
            operation: operation.to_string(),
            rate: None,
            p50: None,
            p99: None,
            errors: None,
            note: kib.map_or_else(
                || "not measured".to_string(),
                |k| format!("{:.1} MiB", mib(k)),
            ),
        };
        let phase_row = |phase: &Phase, measured: &Measured| {
            let mut note = phase_note(measured);
            if phase.authenticated() {
                note.push_str("; own fresh instance with authentication on");
            }
            Row {
                backend: report.backend.to_string(),
                operation: phase.label().to_string(),
                rate: Some(measured.rate()),
                p50: measured.percentile_ms(0.50),
                p99: measured.percentile_ms(0.99),
                errors: Some(measured.errors),
                note,
            }
        };
        rows.push(rss_row("RSS idle (right after ready)", report.idle_rss_kib));
        for (phase, measured) in report.phases.iter().filter(|(p, _)| !p.authenticated()) {
            rows.push(phase_row(phase, measured));
        }
        rows.push(rss_row("RSS after the load", report.loaded_rss_kib));
        for (phase, measured) in report.phases.iter().filter(|(p, _)| p.authenticated()) {
            rows.push(phase_row(phase, measured));
        }
    }
    rows
}

/// How the authentication overhead is measured, for the notes under the table.
pub fn authentication_notes() -> String {
    "- Authentication overhead: every create phase (auth off, API key, session) runs on its \
     own freshly started instance on fresh storage (a new data directory; for postgres a new \
     database and Redis key prefix), in this order, so each starts from an empty item table \
     and makes the same --items creates at the same --concurrency; creates slow down as the \
     table grows, so no phase follows another's items. Each create follows the same \
     --seconds of GET /health/live load (recorded as the HTTP baseline on the auth-off \
     instance, unrecorded on the others). The authenticated instances run with \
     AUTH_MIDDLEWARE_ENABLED=true and API_KEY_WRITES_PER_HOUR=100000000; both sign up one \
     account and create one API key before the load, then send `x-api-key: <key>` or \
     `Authorization: Bearer <session token>`. Their items all belong to that account; the \
     auth-off items are spread over 10 development users. Overhead = 1 - (authenticated \
     create requests/s / auth-off create requests/s); negative means the authenticated run \
     was faster (noise).\n"
        .to_string()
}

pub fn measurement_table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| backend | operation | requests/s | p50 ms | p99 ms | errors | notes |\n\
         |---|---|---:|---:|---:|---:|---|\n",
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            row.backend,
            row.operation,
            row.rate.map_or_else(dash, |r| format!("{r:.0}")),
            row.p50.map_or_else(dash, |v| format!("{v:.2}")),
            row.p99.map_or_else(dash, |v| format!("{v:.2}")),
            row.errors.map_or_else(dash, |e| e.to_string()),
            row.note
        ));
    }
    out
}

pub fn goals_table(pgbench: &[PgbenchRun], backends: &[BackendReport]) -> String {
    let mut out =
        String::from("| goal | backend | measured | target | met |\n|---|---|---:|---|---|\n");
    let insert_tps = pgbench
        .iter()
        .find(|run| run.label.starts_with("INSERT"))
        .map(|run| run.tps);
    for report in backends {
        let on_postgres = report.backend == "postgres";
        let create = report.phase(Phase::Create).map(|m| m.rate());
        let (measured, met) = match (create, insert_tps) {
            (Some(create), Some(insert)) if insert > 0.0 => {
                let ratio = create / insert;
                (
                    format!("{:.0}% ({create:.0} / {insert:.0})", ratio * 100.0),
                    verdict(ratio >= CREATE_TO_INSERT_GOAL),
                )
            }
            _ => (dash(), "not measured".to_string()),
        };
        let (target, met) = if on_postgres {
            (">= 50% (PostgreSQL)".to_string(), met)
        } else {
            ("for reference (goal is on PostgreSQL)".to_string(), dash())
        };
        out.push_str(&format!(
            "| item create / pgbench insert | {} | {measured} | {target} | {met} |\n",
            report.backend
        ));
        let warm = report.phase(Phase::FetchWarm).map(|m| m.rate());
        out.push_str(&format!(
            "| warm fetch requests/s | {} | {} | >= 15,000 | {} |\n",
            report.backend,
            warm.map_or_else(dash, |w| format!("{w:.0}")),
            warm.map_or_else(
                || "not measured".to_string(),
                |w| verdict(w >= WARM_FETCH_GOAL)
            )
        ));
        for phase in [Phase::CreateApiKey, Phase::CreateSession] {
            let authenticated = report.phase(phase).map(|m| m.rate());
            let (measured, met) = match (authenticated, create) {
                (Some(on), Some(off)) if off > 0.0 => {
                    let overhead = 1.0 - on / off;
                    (
                        format!("{:.1}% ({on:.0} vs {off:.0} requests/s)", overhead * 100.0),
                        verdict(overhead < AUTH_OVERHEAD_GOAL),
                    )
                }
                _ => (dash(), "not measured".to_string()),
            };
            let credential = if phase == Phase::CreateApiKey {
                "API key"
            } else {
                "session"
            };
            out.push_str(&format!(
                "| authentication overhead on create ({credential}) | {} | {measured} | < 10% | {met} |\n",
                report.backend
            ));
        }
        let idle = report.idle_rss_kib.map(mib);
        out.push_str(&format!(
            "| idle RSS | {} | {} | < 50 MiB | {} |\n",
            report.backend,
            idle.map_or_else(dash, |m| format!("{m:.1} MiB")),
            idle.map_or_else(
                || "not measured".to_string(),
                |m| verdict(m < IDLE_RSS_GOAL_MIB)
            )
        ));
    }
    out
}

/// Every phase with errors, with the first failures seen; empty when there were none.
pub fn errors_section(pgbench: &[PgbenchRun], backends: &[BackendReport]) -> String {
    let mut out = String::new();
    for run in pgbench.iter().filter(|run| run.failed > 0) {
        out.push_str(&format!(
            "- **postgresql (pgbench) / {}: {} failed transactions**\n",
            run.label, run.failed
        ));
    }
    for report in backends {
        for (phase, measured) in report.phases.iter().filter(|(_, m)| m.errors > 0) {
            out.push_str(&format!(
                "- **{} / {}: {} of {} requests failed**\n",
                report.backend,
                phase.label(),
                measured.errors,
                measured.requests
            ));
            for sample in &measured.error_samples {
                out.push_str(&format!("  - `{}`\n", sample.replace('`', "'")));
            }
        }
    }
    out
}

/// Requests and duration; the instance's CPU time per request; for fetch phases also the
/// cache misses per request (each local fetch reads the owner's generation key, usually a hit,
/// then the page: a cold query should miss about once per request, a warm one almost never).
fn phase_note(measured: &Measured) -> String {
    let mut note = format!(
        "{} requests in {:.1} s",
        measured.requests,
        measured.elapsed.as_secs_f64()
    );
    if let Some(cpu_us) = measured.instance_cpu_us {
        note.push_str(&format!(
            "; dpg CPU {:.0} µs/request",
            cpu_us as f64 / measured.requests.max(1) as f64
        ));
    }
    if let Some(misses) = measured.cache_misses {
        note.push_str(&format!(
            "; cache misses {misses} ({:.2}/request)",
            misses as f64 / measured.requests.max(1) as f64
        ));
    }
    note
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn dash() -> String {
    "—".to_string()
}

fn verdict(met: bool) -> String {
    if met { "yes" } else { "no" }.to_string()
}
