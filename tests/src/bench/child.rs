//! The release `dpg` binary as a child process: its own temporary data directory, a free
//! loopback port, readiness polling, resident memory and CPU time from `/proc`, and SIGTERM at
//! the end.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use tempfile::TempDir;
use tokio::process::{Child, Command};

/// How long an instance may take to answer `GET /health/ready` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopped instance may take to drain after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// `/proc` counts CPU time in clock ticks of `USER_HZ`, which is 100 on Linux.
pub const USER_HZ: u64 = 100;

/// User plus system CPU time of process `pid` (all threads) so far, in microseconds.
pub fn process_cpu_micros(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("could not read {path}"))?;
    // The command name (field 2) may hold spaces; fields 14 and 15 follow its closing `)`.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("{path} has no command field"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<u64> {
        fields
            .get(index)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| anyhow!("{path}: no CPU time field"))
    };
    // After the command: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    Ok((ticks(11)? + ticks(12)?) * 1_000_000 / USER_HZ)
}

/// A running `dpg` child process.
pub struct DpgChild {
    child: Child,
    pid: u32,
    pub base_url: String,
    log_path: PathBuf,
    _data_dir: TempDir,
}

impl DpgChild {
    /// Starts `binary` with the embedded-default environment plus `env`, and waits until it
    /// is ready. On failure the child is killed and the error carries the end of its log.
    pub async fn start(
        binary: &Path,
        network_file: &Path,
        env: &[(String, String)],
        client: &reqwest::Client,
    ) -> anyhow::Result<DpgChild> {
        DpgChild::start_on(binary, network_file, free_port()?, env, client).await
    }

    /// Like [`DpgChild::start`], on a loopback port chosen beforehand (so that it can go into
    /// a network document before the instance starts).
    pub async fn start_on(
        binary: &Path,
        network_file: &Path,
        port: u16,
        env: &[(String, String)],
        client: &reqwest::Client,
    ) -> anyhow::Result<DpgChild> {
        let data_dir = tempfile::Builder::new()
            .prefix("dpg-bench-")
            .tempdir()
            .context("could not create a temporary data directory")?;
        let log_path = data_dir.path().join("dpg.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("could not create {}", log_path.display()))?;
        let log_err = log.try_clone().context("could not share the log file")?;
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("API_PORT", port.to_string())
            .env("DPG_DATA_DIR", data_dir.path())
            .env("NETWORK_CONFIG_LOCAL_FILE", network_file)
            .env("INSTANCE_ENV", "development")
            .env("LOG_FORMAT", "pretty")
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            // The data directory as working directory: no `.env` of the repository applies.
            .current_dir(data_dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("could not start {}", binary.display()))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("the dpg child exited before it could be observed"))?;
        let mut instance = DpgChild {
            child,
            pid,
            base_url: format!("http://127.0.0.1:{port}"),
            log_path,
            _data_dir: data_dir,
        };
        if let Err(error) = instance.wait_ready(client).await {
            let tail = instance.log_tail(30);
            let _ = instance.stop().await;
            bail!("{error:#}\n--- last lines of the dpg log ---\n{tail}");
        }
        Ok(instance)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    async fn wait_ready(&mut self, client: &reqwest::Client) -> anyhow::Result<()> {
        let started = Instant::now();
        let url = self.url("/health/ready");
        let mut last = String::from("no answer yet");
        while started.elapsed() < READY_TIMEOUT {
            if let Some(status) = self.child.try_wait().context("could not poll the child")? {
                bail!("dpg exited during start-up ({status})");
            }
            match client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => last = format!("HTTP {}", response.status()),
                Err(error) => last = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "dpg was not ready within {} s (last answer of GET /health/ready: {last})",
            READY_TIMEOUT.as_secs()
        )
    }

    /// Resident memory (`VmRSS`) of the child, in KiB.
    /// User plus system CPU time the instance has used so far, in microseconds.
    pub fn cpu_micros(&self) -> anyhow::Result<u64> {
        process_cpu_micros(self.pid)
    }

    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid);
        let status =
            std::fs::read_to_string(&path).with_context(|| format!("could not read {path}"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no VmRSS line in {path}"))
    }

    /// The instance's cache misses so far (`dpg_cache_misses_total`, summed over labels; 0
    /// before the first miss registers the counter), or `None` when `/metrics` does not answer.
    pub async fn cache_misses(&self, client: &reqwest::Client) -> Option<u64> {
        self.counter(client, "dpg_cache_misses_total", "").await
    }

    /// The sum of the samples of the counter `name` whose line contains `label` (e.g.
    /// `keyspace="network-page"`; empty: every sample), 0 before the counter registers, or
    /// `None` when `/metrics` does not answer.
    pub async fn counter(&self, client: &reqwest::Client, name: &str, label: &str) -> Option<u64> {
        let response = client.get(self.url("/metrics")).send().await.ok()?;
        let text = response.error_for_status().ok()?.text().await.ok()?;
        let mut total = 0.0;
        for line in text.lines() {
            if line.starts_with(name)
                && line.contains(label)
                && let Some(value) = line.split_whitespace().last()
                && let Ok(value) = value.parse::<f64>()
            {
                total += value;
            }
        }
        Some(total as u64)
    }

    /// The last `lines` lines of the child's log.
    pub fn log_tail(&self, lines: usize) -> String {
        match std::fs::read_to_string(&self.log_path) {
            Ok(text) => {
                let all: Vec<&str> = text.lines().collect();
                all[all.len().saturating_sub(lines)..].join("\n")
            }
            Err(error) => format!("(log unreadable: {error})"),
        }
    }

    /// Sends SIGTERM to the child's PID and waits for it to exit (SIGKILL after a timeout).
    /// Returns how it ended.
    pub async fn stop(mut self) -> anyhow::Result<String> {
        if let Some(status) = self.child.try_wait().context("could not poll the child")? {
            return Ok(format!("had already exited ({status})"));
        }
        let signalled = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .context("could not run kill")?;
        if !signalled.success() {
            bail!("kill -TERM {} failed ({signalled})", self.pid);
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => Ok(format!(
                "stopped after SIGTERM ({})",
                status.context("could not wait for the child")?
            )),
            Err(_) => {
                self.child
                    .kill()
                    .await
                    .context("could not kill the child")?;
                Ok(format!(
                    "did not stop within {} s of SIGTERM and was killed",
                    STOP_TIMEOUT.as_secs()
                ))
            }
        }
    }
}

/// A loopback port that is free now (the listener is closed before the child binds it).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .context("could not find a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_cpu_time_in_whole_ticks() {
        let spent = process_cpu_micros(std::process::id()).expect("/proc/<pid>/stat is readable");
        assert_eq!(spent % (1_000_000 / USER_HZ), 0);
    }
}
