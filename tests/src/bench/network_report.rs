//! The markdown report of `bench --network`: one row per measurement (black-hole runs split
//! by the black-holed instance's status), the project's goals, the errors.

use super::load::{Measured, percentile_ms};
use std::collections::BTreeMap;

use super::network::{
    FETCH_LOCAL, LIMIT, Miss, NetworkReport, OFFSET_PAGE_100, Op, PEER_TIMEOUT_MS, WALK_PAGES,
    WALKS, untag,
};

const CACHE_HIT_RATE_GOAL: f64 = 15_000.0;
const CACHE_HIT_P99_GOAL_MS: f64 = 5.0;
const GOAL_CONCURRENCY: usize = 64;
const MISS_LOCAL_FACTOR: f64 = 2.0;
const MISS_LOCAL_SLACK_MS: f64 = 20.0;
const PAGE_100_FACTOR: f64 = 1.5;
const BLACK_HOLE_SLACK_MS: f64 = 100.0;
/// "Near the healthy p99", as checked here: at most this multiple of it.
const NEAR_HEALTHY_FACTOR: f64 = 1.5;

struct Row {
    backend: String,
    operation: String,
    rate: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
    errors: Option<u64>,
    note: String,
}

/// The operation column of `op`'s row.
pub fn label(op: Op, instances: usize) -> String {
    let miss = |miss: Miss| format!("GET network fetch, cache miss ({})", miss.describe());
    let black_hole =
        |miss: Miss| format!("instance 3 black-holed: cache miss ({})", miss.describe());
    match op {
        Op::Seed => {
            format!("POST /api/v1/item/create (seed, interleaved over {instances} instances)")
        }
        Op::Baseline => "GET /health/live on instance 1 (HTTP baseline)".to_string(),
        Op::LocalPage(index) => format!(
            "POST {FETCH_LOCAL} limit {LIMIT} offset 0, instance {} directly",
            index + 1
        ),
        Op::CacheHit => "GET network fetch, cache hit (one query)".to_string(),
        Op::CacheMiss => miss(Miss::Ttl),
        Op::NameMiss => miss(Miss::Name { names: 0 }),
        Op::IdMiss => miss(Miss::Id),
        Op::CacheMissAlone => format!("{}, one request at a time", miss(Miss::Ttl)),
        Op::IdMissAlone => format!("{}, one request at a time", miss(Miss::Id)),
        Op::CursorPage1 => "cursor walk, page 1".to_string(),
        Op::CursorPage100 => format!("cursor walk, page {WALK_PAGES}"),
        Op::OffsetPage100 => format!("page {WALK_PAGES} by offset={OFFSET_PAGE_100}"),
        Op::BlackHole => black_hole(Miss::Ttl),
        Op::BlackHoleId => black_hole(Miss::Id),
    }
}

/// What one phase's notes say: requests and time, page cache misses, partial pages, and
/// which instances were not `ok` in `meta.peers`.
fn note(op: Op, measured: &Measured) -> String {
    let mut note = if op.sequential() {
        format!("{} reads one after the other", measured.requests)
    } else {
        format!(
            "{} requests in {:.1} s",
            measured.requests,
            measured.elapsed.as_secs_f64()
        )
    };
    match op {
        Op::CursorPage1 | Op::CursorPage100 => note.push_str(&format!(
            "; {WALKS} walks of {WALK_PAGES} pages by meta.next_cursor, each walk its own \
             cache_ttl_seconds (every page a miss)"
        )),
        Op::OffsetPage100 => {
            note.push_str("; each its own cache_ttl_seconds (every read a miss)");
        }
        Op::CacheMiss | Op::CacheMissAlone | Op::BlackHole => {
            note.push_str("; same filter, so the peers' counts stay cached");
        }
        Op::NameMiss => note.push_str(
            "; also distinct cache_ttl_seconds; each instance holds one item of each name; \
             peer counts miss too, counts and pages filter on a JSON field",
        ),
        Op::IdMiss | Op::IdMissAlone | Op::BlackHoleId => note.push_str(
            "; also distinct cache_ttl_seconds; every instance counts 0, so peers are only \
             counted (never cached), no page is fetched",
        ),
        _ => {}
    }
    if let Some(misses) = measured.cache_misses {
        note.push_str(&format!(
            "; aggregator network-page cache misses {misses} ({:.2}/request)",
            misses as f64 / measured.requests.max(1) as f64
        ));
    }
    if !measured.tags.is_empty() {
        let partial = partial_pages(measured);
        note.push_str(&format!(
            "; partial pages {partial} of {} ({:.1}%)",
            answered(measured),
            percent(partial, answered(measured))
        ));
        let mut others: BTreeMap<&str, u64> = BTreeMap::new();
        for (tag, latencies) in &measured.tags {
            for other in untag(tag).2.split(", ").filter(|o| !o.is_empty()) {
                *others.entry(other).or_default() += latencies.len() as u64;
            }
        }
        if !others.is_empty() {
            let listed: Vec<String> = others
                .iter()
                .map(|(other, count)| format!("{other} in {count}"))
                .collect();
            note.push_str(&format!("; not ok: {}", listed.join(", ")));
        }
    }
    note
}

fn answered(measured: &Measured) -> u64 {
    measured.tags.values().map(|l| l.len() as u64).sum()
}

fn partial_pages(measured: &Measured) -> u64 {
    measured
        .tags
        .iter()
        .filter(|(tag, _)| untag(tag).0 != "complete")
        .map(|(_, l)| l.len() as u64)
        .sum()
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// Latencies (sorted) of the answers in which the black-holed instance had `status`.
fn with_status(measured: &Measured, status: &str) -> Vec<u64> {
    let mut latencies: Vec<u64> = measured
        .tags
        .iter()
        .filter(|(tag, _)| untag(tag).1 == status)
        .flat_map(|(_, l)| l.iter().copied())
        .collect();
    latencies.sort_unstable();
    latencies
}

/// What the black-holed instance's status in `meta.peers` means for the breaker.
fn status_meaning(status: &str) -> &'static str {
    match status {
        "timeout" => "called and waited for: before the breaker opens (or its probe)",
        "circuit_open" => "not called: after the breaker opened",
        "ok" => "answered (count cached, no call needed or before the fault)",
        "error" => "call failed",
        _ => "other",
    }
}

fn rows(reports: &[NetworkReport]) -> Vec<Row> {
    let mut rows = Vec::new();
    for report in reports {
        for (op, measured) in &report.measurements {
            rows.push(Row {
                backend: report.name.clone(),
                operation: label(*op, report.instances),
                rate: (!op.sequential()).then(|| measured.rate()),
                p50: measured.percentile_ms(0.50),
                p99: measured.percentile_ms(0.99),
                errors: Some(measured.errors),
                note: note(*op, measured),
            });
            if matches!(op, Op::BlackHole | Op::BlackHoleId) {
                let mut statuses: Vec<&str> =
                    measured.tags.keys().map(|tag| untag(tag).1).collect();
                statuses.sort_unstable();
                statuses.dedup();
                for status in statuses {
                    let latencies = with_status(measured, status);
                    let partial: u64 = measured
                        .tags
                        .iter()
                        .filter(|(tag, _)| {
                            let (kind, s, _) = untag(tag);
                            s == status && kind != "complete"
                        })
                        .map(|(_, l)| l.len() as u64)
                        .sum();
                    rows.push(Row {
                        backend: report.name.clone(),
                        operation: format!("… of which instance 3 `{status}`"),
                        rate: None,
                        p50: percentile_ms(&latencies, 0.50),
                        p99: percentile_ms(&latencies, 0.99),
                        errors: None,
                        note: format!(
                            "{} answers ({}); partial {partial} ({:.1}%)",
                            latencies.len(),
                            status_meaning(status),
                            percent(partial, latencies.len() as u64)
                        ),
                    });
                }
            }
        }
    }
    rows
}

pub fn measurement_table(reports: &[NetworkReport]) -> String {
    let mut out = String::from(
        "| backend | operation | requests/s | p50 ms | p99 ms | errors | notes |\n\
         |---|---|---:|---:|---:|---:|---|\n",
    );
    for row in rows(reports) {
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

/// The project's goals, measured on the network of three (and three versus ten).
pub fn goals_table(reports: &[NetworkReport], concurrency: usize) -> String {
    let mut out = String::from("| goal | measured | target | met |\n|---|---:|---|---|\n");
    let Some(three) = reports.iter().find(|r| r.instances == 3) else {
        out.push_str("| (network x3 not measured) | — | — | not measured |\n");
        return out;
    };
    let p99 = |op: Op| three.get(op).and_then(|m| m.percentile_ms(0.99));
    let p50 = |op: Op| three.get(op).and_then(|m| m.percentile_ms(0.50));

    // Cache hit.
    let at = if concurrency == GOAL_CONCURRENCY {
        String::new()
    } else {
        format!(" (measured at {concurrency} connections, not {GOAL_CONCURRENCY})")
    };
    match three.get(Op::CacheHit) {
        Some(hit) => {
            let rate = hit.rate();
            let p99 = hit.percentile_ms(0.99);
            out.push_str(&format!(
                "| cache hit requests/s and p99 at {GOAL_CONCURRENCY} connections{at} | \
                 {rate:.0} requests/s, p99 {} ms | >= 15,000 requests/s, p99 <= 5 ms | {} |\n",
                p99.map_or_else(dash, |v| format!("{v:.2}")),
                verdict(
                    hit.errors == 0
                        && rate >= CACHE_HIT_RATE_GOAL
                        && p99.is_some_and(|v| v <= CACHE_HIT_P99_GOAL_MS)
                )
            ));
        }
        None => out.push_str(&not_measured("cache hit requests/s and p99")),
    }

    // Cache miss versus the slowest instance's local page.
    let slowest_local = (0..three.instances)
        .filter_map(|index| p99(Op::LocalPage(index)).map(|v| (index, v)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    match (p99(Op::CacheMiss), slowest_local) {
        (Some(miss), Some((index, local))) => {
            let target = MISS_LOCAL_FACTOR * local + MISS_LOCAL_SLACK_MS;
            out.push_str(&format!(
                "| cache-miss p99 vs the slowest instance's local page p99 | {miss:.2} ms \
                 (slowest local: instance {} {local:.2} ms) | <= 2 x local p99 + 20 ms = \
                 {target:.2} ms | {} |\n",
                index + 1,
                verdict(miss <= target)
            ));
        }
        _ => out.push_str(&not_measured("cache-miss p99 vs local page p99")),
    }

    // Page 100 versus page 1 with cursors.
    match (
        p50(Op::CursorPage1),
        p50(Op::CursorPage100),
        p99(Op::CursorPage1),
        p99(Op::CursorPage100),
    ) {
        (Some(p50_1), Some(p50_100), Some(p99_1), Some(p99_100)) if p50_1 > 0.0 && p99_1 > 0.0 => {
            let (r50, r99) = (p50_100 / p50_1, p99_100 / p99_1);
            out.push_str(&format!(
                "| cursor page {WALK_PAGES} vs page 1 ({WALKS} walks) | p50 {p50_100:.2} vs \
                 {p50_1:.2} ms ({r50:.2}x), p99 {p99_100:.2} vs {p99_1:.2} ms ({r99:.2}x) | \
                 within 1.5x (p50 and p99) | {} |\n",
                verdict(r50 <= PAGE_100_FACTOR && r99 <= PAGE_100_FACTOR)
            ));
        }
        _ => out.push_str(&not_measured("cursor page 100 vs page 1")),
    }
    if let (Some(offset), Some(cursor)) = (p50(Op::OffsetPage100), p50(Op::CursorPage100)) {
        out.push_str(&format!(
            "| page {WALK_PAGES}: offset={OFFSET_PAGE_100} vs cursor (for reference) | p50 \
             {offset:.2} vs {cursor:.2} ms | — | — |\n"
        ));
    }

    // One black-holed peer.
    for (op, healthy_op, what) in [
        (Op::BlackHole, Op::CacheMiss, Miss::Ttl.describe()),
        (Op::BlackHoleId, Op::IdMiss, Miss::Id.describe()),
    ] {
        let healthy = p99(healthy_op);
        let Some(measured) = three.get(op) else {
            out.push_str(&not_measured(&format!("black-holed peer ({what})")));
            continue;
        };
        let before = with_status(measured, "timeout");
        let after = with_status(measured, "circuit_open");
        let target = PEER_TIMEOUT_MS as f64 + BLACK_HOLE_SLACK_MS;
        out.push_str(&match percentile_ms(&before, 0.99) {
            Some(p99) => format!(
                "| black-holed peer, before the breaker opens ({what}) | p99 {p99:.2} ms \
                 (p50 {}; {} answers) | <= PEER_TIMEOUT_MS + 100 ms = {target:.0} ms | {} |\n",
                ms(percentile_ms(&before, 0.50)),
                before.len(),
                verdict(p99 <= target)
            ),
            None => format!(
                "| black-holed peer, before the breaker opens ({what}) | no answer reported \
                 it as `timeout` | <= {target:.0} ms | not observed |\n"
            ),
        });
        out.push_str(&match (percentile_ms(&after, 0.99), healthy) {
            (Some(p99), Some(healthy)) => format!(
                "| black-holed peer, after the breaker opens ({what}) | p99 {p99:.2} ms (p50 \
                 {}; {} answers) | near the healthy p99 of the same misses {healthy:.2} ms (<= \
                 {NEAR_HEALTHY_FACTOR}x = {:.2} ms) | {} |\n",
                ms(percentile_ms(&after, 0.50)),
                after.len(),
                healthy * NEAR_HEALTHY_FACTOR,
                verdict(p99 <= healthy * NEAR_HEALTHY_FACTOR)
            ),
            (None, _) => format!(
                "| black-holed peer, after the breaker opens ({what}) | no answer reported it \
                 as `circuit_open` ({} answers in all, {:.1}% partial) | near the healthy p99 \
                 of the same misses | no (the breaker never skipped the peer) |\n",
                answered(measured),
                percent(partial_pages(measured), answered(measured))
            ),
            (Some(_), None) => not_measured(&format!("black-holed peer, after ({what})")),
        });
    }

    // Three versus ten instances.
    if let Some(ten) = reports.iter().find(|r| r.instances == 10) {
        let ten_miss = ten.get(Op::CacheMiss);
        out.push_str(&format!(
            "| cache miss, 3 vs 10 instances (for reference) | p50 {} vs {} ms, p99 {} vs {} \
             ms | — | — |\n",
            ms(p50(Op::CacheMiss)),
            ms(ten_miss.and_then(|m| m.percentile_ms(0.50))),
            ms(p99(Op::CacheMiss)),
            ms(ten_miss.and_then(|m| m.percentile_ms(0.99))),
        ));
    }
    out
}

/// Every measurement with errors, with the first failures seen; empty when none failed.
pub fn errors_section(reports: &[NetworkReport]) -> String {
    let mut out = String::new();
    for report in reports {
        for (op, measured) in report.measurements.iter().filter(|(_, m)| m.errors > 0) {
            out.push_str(&format!(
                "- **{} / {}: {} of {} requests failed**\n",
                report.name,
                label(*op, report.instances),
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

fn not_measured(goal: &str) -> String {
    format!("| {goal} | — | — | not measured |\n")
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(dash, |v| format!("{v:.2}"))
}

fn dash() -> String {
    "—".to_string()
}

fn verdict(met: bool) -> String {
    if met { "yes" } else { "no" }.to_string()
}
