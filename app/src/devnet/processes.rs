//! The members as `dpg serve` child processes of this one: each with its own environment,
//! log file, metrics and shutdown; stopped together.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use super::plan::Member;

/// How long a member may take to become ready (migrations, schema load).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a member may drain after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Running {
    pub member: Member,
    child: Child,
}

/// Starts `dpg serve` for `member` with exactly `env` (plus PATH), logging to its log file.
pub fn spawn(binary: &Path, member: &Member, env: &[(String, String)]) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&member.data_dir)
        .with_context(|| format!("cannot create {}", member.data_dir.display()))?;
    let log = std::fs::File::create(member.log_file())
        .with_context(|| format!("cannot create {}", member.log_file().display()))?;
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Ctrl-C reaches the whole foreground group; the members stop when we tell them.
        .process_group(0)
        .kill_on_drop(true);
    die_with_this_process(&mut command);
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    Ok(Running {
        member: member.clone(),
        child,
    })
}

/// The member gets SIGTERM when devnet ends in any way, even killed outright, so no
/// instance outlives it.
#[cfg(target_os = "linux")]
fn die_with_this_process(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
    // which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_this_process(_: &mut Command) {}

impl Running {
    /// Waits until `/health/ready` answers 200; fails early when the process exits.
    pub async fn ready(&mut self, client: &reqwest::Client) -> anyhow::Result<()> {
        let started = Instant::now();
        let url = format!("{}/health/ready", self.member.url());
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}); see {}",
                    self.member.name(),
                    self.member.log_file().display()
                );
            }
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "{} was not ready within {READY_TIMEOUT:?}; see {}",
                    self.member.name(),
                    self.member.log_file().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the process ended on its own.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM (graceful drain), then SIGKILL after [`STOP_TIMEOUT`].
    pub async fn stop(mut self) -> String {
        if let Some(status) = self.child.try_wait().ok().flatten() {
            return format!("{} had already exited ({status})", self.member.name());
        }
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(Ok(status)) => format!("{} stopped ({status})", self.member.name()),
            _ => {
                let _ = self.child.kill().await;
                format!(
                    "{} did not drain in time and was killed",
                    self.member.name()
                )
            }
        }
    }
}
