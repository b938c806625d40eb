//! The in-process load generator: `concurrency` workers sharing one keep-alive client, every
//! request's latency recorded. Any transport failure or non-2xx status is an error.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::anyhow;

/// When a phase ends.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After this many requests in total.
    Requests(u64),
    /// After this long; requests already started complete.
    Elapsed(Duration),
}

/// How many failures each phase keeps verbatim for the report.
const ERROR_SAMPLES: usize = 5;

/// What one phase measured.
#[derive(Debug, Default)]
pub struct Measured {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latency of every request, successful or not, in microseconds, sorted.
    pub latencies_us: Vec<u64>,
    /// The first failures seen (status and start of the body, or the transport error).
    pub error_samples: Vec<String>,
    /// Cache misses the instance counted during the phase, when read.
    pub cache_misses: Option<u64>,
    /// CPU time (microseconds) the instance used during the phase, when read: per request it
    /// compares builds on a noisy machine better than requests/s does.
    pub instance_cpu_us: Option<u64>,
    /// Latencies (microseconds, sorted) of the successful answers, by the tag the phase's
    /// inspection gave them; empty when the phase does not inspect answers.
    pub tags: BTreeMap<String, Vec<u64>>,
}

impl Measured {
    /// Requests per second over the whole phase.
    pub fn rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.requests as f64 / seconds
        } else {
            0.0
        }
    }

    pub fn percentile_ms(&self, quantile: f64) -> Option<f64> {
        percentile_ms(&self.latencies_us, quantile)
    }

    /// One phase measured in turns: the turns' requests, time and latencies together.
    /// Cache misses add up when every turn read them; CPU is left to the caller.
    pub fn merge(turns: Vec<Measured>) -> Measured {
        let mut merged = Measured {
            cache_misses: Some(0),
            ..Measured::default()
        };
        for turn in turns {
            merged.requests += turn.requests;
            merged.errors += turn.errors;
            merged.elapsed += turn.elapsed;
            merged.latencies_us.extend(turn.latencies_us);
            for sample in turn.error_samples {
                if merged.error_samples.len() < ERROR_SAMPLES {
                    merged.error_samples.push(sample);
                }
            }
            merged.cache_misses = merged
                .cache_misses
                .zip(turn.cache_misses)
                .map(|(a, b)| a + b);
            for (tag, latencies) in turn.tags {
                merged.tags.entry(tag).or_default().extend(latencies);
            }
        }
        merged.latencies_us.sort_unstable();
        for latencies in merged.tags.values_mut() {
            latencies.sort_unstable();
        }
        merged
    }
}

/// The nearest-rank percentile of sorted microsecond latencies, in milliseconds.
pub fn percentile_ms(sorted_us: &[u64], quantile: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let rank = (quantile * sorted_us.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_us.len()) - 1;
    sorted_us.get(index).map(|us| *us as f64 / 1000.0)
}

#[derive(Default)]
struct Tally {
    requests: u64,
    errors: u64,
    latencies_us: Vec<u64>,
    error_samples: Vec<String>,
    tags: BTreeMap<String, Vec<u64>>,
}

/// Runs `request(client, n)` for n = 0, 1, 2 ... on `concurrency` workers until `until`.
/// Every n is used exactly once, so a phase can make each request distinct.
pub async fn run<F>(
    client: &reqwest::Client,
    concurrency: usize,
    until: Until,
    request: F,
) -> anyhow::Result<Measured>
where
    F: Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    run_inspected(client, concurrency, until, request, |_| Ok(None)).await
}

/// Like [`run`], and every successful answer's body goes through `inspect`: `Ok(Some(tag))`
/// files its latency under `tag` (see [`Measured::tags`]), `Err(reason)` makes it an error.
pub async fn run_inspected<F, I>(
    client: &reqwest::Client,
    concurrency: usize,
    until: Until,
    request: F,
    inspect: I,
) -> anyhow::Result<Measured>
where
    F: Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder + Send + Sync + 'static,
    I: Fn(&[u8]) -> Result<Option<String>, String> + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let inspect = Arc::new(inspect);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            tokio::spawn(worker(
                client.clone(),
                Arc::clone(&request),
                Arc::clone(&inspect),
                Arc::clone(&next),
                until,
                started,
            ))
        })
        .collect();
    let mut tallies = Vec::with_capacity(workers.len());
    for handle in workers {
        let tally = handle
            .await
            .map_err(|error| anyhow!("a load worker stopped abnormally: {error}"))?;
        tallies.push(Measured {
            requests: tally.requests,
            errors: tally.errors,
            latencies_us: tally.latencies_us,
            error_samples: tally.error_samples,
            tags: tally.tags,
            ..Measured::default()
        });
    }
    // The workers ran side by side: the phase lasted as long as the slowest.
    let mut measured = Measured::merge(tallies);
    measured.elapsed = started.elapsed();
    measured.cache_misses = None;
    Ok(measured)
}

async fn worker<F, I>(
    client: reqwest::Client,
    request: Arc<F>,
    inspect: Arc<I>,
    next: Arc<AtomicU64>,
    until: Until,
    started: Instant,
) -> Tally
where
    F: Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder + Send + Sync + 'static,
    I: Fn(&[u8]) -> Result<Option<String>, String> + Send + Sync + 'static,
{
    let mut tally = Tally::default();
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let done = match until {
            Until::Requests(total) => n >= total,
            Until::Elapsed(duration) => started.elapsed() >= duration,
        };
        if done {
            return tally;
        }
        let sent = Instant::now();
        let outcome = send(request(&client, n)).await;
        let latency_us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        tally.latencies_us.push(latency_us);
        tally.requests += 1;
        match outcome.and_then(|body| inspect(&body)) {
            Ok(Some(tag)) => tally.tags.entry(tag).or_default().push(latency_us),
            Ok(None) => {}
            Err(failure) => {
                tally.errors += 1;
                if tally.error_samples.len() < ERROR_SAMPLES {
                    tally.error_samples.push(failure);
                }
            }
        }
    }
}

/// Sends one request and reads the whole body (so that the connection is reused); returns
/// the body of a 2xx answer.
async fn send(request: reqwest::RequestBuilder) -> Result<bytes::Bytes, String> {
    let response = request
        .send()
        .await
        .map_err(|error| format!("request failed: {error}"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|error| format!("HTTP {status}, body not read: {error}"))?;
    if status.is_success() {
        Ok(body)
    } else {
        let text = String::from_utf8_lossy(&body);
        let start: String = text
            .chars()
            .take(200)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Err(format!("HTTP {status}: {start}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_merge_into_one_phase() {
        let turn = |requests: u64, latencies: Vec<u64>, misses: Option<u64>| Measured {
            requests,
            errors: 1,
            elapsed: Duration::from_millis(500),
            latencies_us: latencies.clone(),
            error_samples: vec![format!("e{requests}")],
            cache_misses: misses,
            instance_cpu_us: None,
            tags: BTreeMap::from([("complete".to_string(), latencies)]),
        };
        let merged = Measured::merge(vec![
            turn(3, vec![5, 9, 30], Some(3)),
            turn(2, vec![1, 20], Some(2)),
        ]);
        assert_eq!((merged.requests, merged.errors), (5, 2));
        assert_eq!(merged.elapsed, Duration::from_secs(1));
        assert_eq!(merged.latencies_us, [1, 5, 9, 20, 30]);
        assert_eq!(merged.tags["complete"], [1, 5, 9, 20, 30]);
        assert_eq!(merged.error_samples, ["e3", "e2"]);
        assert_eq!(merged.cache_misses, Some(5));
        let unread = Measured::merge(vec![turn(1, vec![1], Some(1)), turn(1, vec![2], None)]);
        assert_eq!(
            unread.cache_misses, None,
            "a turn without the count leaves it unknown"
        );
    }

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile_ms(&sorted, 0.5), Some(50.0));
        assert_eq!(percentile_ms(&sorted, 0.99), Some(99.0));
        assert_eq!(percentile_ms(&sorted, 1.0), Some(100.0));
        assert_eq!(percentile_ms(&[7000], 0.99), Some(7.0));
        assert_eq!(percentile_ms(&[], 0.5), None);
    }
}
