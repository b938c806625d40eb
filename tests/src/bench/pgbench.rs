//! The machine's own PostgreSQL limits: `pgbench` with custom scripts against a scratch
//! database, at the same concurrency as the HTTP phases.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use tokio::process::Command;

use super::db::ScratchDatabase;

/// Rows created before the runs, the population of the primary-key lookups.
const PREFILL_ROWS: u32 = 10_000;

/// The table and its prefilled rows (ids `md5(n)` for n in 1..=PREFILL_ROWS).
fn setup_sql() -> String {
    format!(
        "CREATE TABLE bench_items (id uuid PRIMARY KEY, state jsonb NOT NULL);
INSERT INTO bench_items (id, state)
  SELECT md5(g::text)::uuid,
         jsonb_build_object('name', 'S' || g, 'grade', '10', 'city', 'City' || (g % 50))
  FROM generate_series(1, {PREFILL_ROWS}) AS g;"
    )
}

/// Separate from [`setup_sql`]: VACUUM cannot run inside the transaction of a statement batch.
const VACUUM: &str = "VACUUM ANALYZE bench_items";

const INSERT_SCRIPT: &str = "INSERT INTO bench_items (id, state) VALUES (gen_random_uuid(), \
'{\"name\":\"x\",\"grade\":\"10\",\"city\":\"Pune\"}'::jsonb);\n";

/// Prefilled ids are `md5(n)` for n in 1..=PREFILL_ROWS, so a random n is an existing row.
fn select_script() -> String {
    format!(
        "\\set n random(1, {PREFILL_ROWS})\n\
         SELECT state FROM bench_items WHERE id = md5(:n::text)::uuid;\n"
    )
}

/// One pgbench run.
#[derive(Debug)]
pub struct PgbenchRun {
    pub label: &'static str,
    pub tps: f64,
    pub transactions: u64,
    pub failed: u64,
    /// Per-transaction latencies from the transaction log, microseconds, sorted.
    pub latencies_us: Vec<u64>,
}

/// Where pgbench is looked for.
pub fn locate() -> Option<PathBuf> {
    let fixed = PathBuf::from("/usr/bin/pgbench");
    if fixed.is_file() {
        return Some(fixed);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("pgbench"))
            .find(|candidate| candidate.is_file())
    })
}

/// Creates a scratch database, runs the insert and the select script, drops the database.
pub async fn run_all(
    pgbench: &Path,
    admin_url: &str,
    concurrency: usize,
    seconds: u64,
) -> anyhow::Result<Vec<PgbenchRun>> {
    let db = ScratchDatabase::create(admin_url, "_pgbench").await?;
    let result = run_in(pgbench, &db, concurrency, seconds).await;
    let dropped = db.drop_now().await;
    let runs = result?;
    dropped?;
    Ok(runs)
}

async fn run_in(
    pgbench: &Path,
    db: &ScratchDatabase,
    concurrency: usize,
    seconds: u64,
) -> anyhow::Result<Vec<PgbenchRun>> {
    db.execute(&setup_sql())
        .await
        .context("pgbench table setup")?;
    db.execute(VACUUM).await.context("pgbench table setup")?;
    let dir = tempfile::Builder::new()
        .prefix("dpg-bench-pgbench-")
        .tempdir()
        .context("could not create a temporary directory")?;
    let mut runs = Vec::new();
    for (label, name, script) in [
        ("INSERT jsonb row", "insert", INSERT_SCRIPT.to_string()),
        ("SELECT by primary key", "select", select_script()),
    ] {
        let script_path = dir.path().join(format!("{name}.sql"));
        std::fs::write(&script_path, script)
            .with_context(|| format!("could not write {}", script_path.display()))?;
        let log_prefix = dir.path().join(name);
        let output = pgbench_command(pgbench, &db.url, concurrency, seconds)
            .arg("-f")
            .arg(&script_path)
            .arg("-l")
            .arg("--log-prefix")
            .arg(&log_prefix)
            .arg(db.url.path().trim_start_matches('/'))
            .current_dir(dir.path())
            .output()
            .await
            .with_context(|| format!("could not run {}", pgbench.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "pgbench ({label}) failed ({}):\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let tps = parse_tps(&stdout)
            .ok_or_else(|| anyhow!("no `tps = ...` line in the pgbench output:\n{stdout}"))?;
        runs.push(PgbenchRun {
            label,
            tps,
            transactions: parse_count(&stdout, "number of transactions actually processed:")
                .unwrap_or(0),
            failed: parse_count(&stdout, "number of failed transactions:").unwrap_or(0),
            latencies_us: read_latencies(dir.path(), name)?,
        });
    }
    Ok(runs)
}

fn pgbench_command(pgbench: &Path, url: &url::Url, concurrency: usize, seconds: u64) -> Command {
    let mut command = Command::new(pgbench);
    command
        .env("PGHOST", url.host_str().unwrap_or("127.0.0.1"))
        .env("PGPORT", url.port().unwrap_or(5432).to_string())
        .env("PGUSER", url.username())
        .args(["-n", "-c", &concurrency.to_string()])
        .args(["-j", &concurrency.clamp(1, 2).to_string()])
        .args(["-T", &seconds.to_string()]);
    if let Some(password) = url.password() {
        command.env("PGPASSWORD", password);
    }
    command
}

/// `tps = 1234.56 (without initial connection time)`.
fn parse_tps(stdout: &str) -> Option<f64> {
    stdout.lines().find_map(|line| {
        line.trim()
            .strip_prefix("tps = ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse().ok())
    })
}

/// `<label> 1234` or `<label> 12 (0.1%)`.
fn parse_count(stdout: &str, label: &str) -> Option<u64> {
    stdout.lines().find_map(|line| {
        line.trim()
            .strip_prefix(label)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.split('/').next())
            .and_then(|value| value.parse().ok())
    })
}

/// Reads the transaction logs `<name>.<pid>[.<thread>]`: the third field is the
/// transaction's latency in microseconds (non-numeric for failed transactions).
fn read_latencies(dir: &Path, name: &str) -> anyhow::Result<Vec<u64>> {
    let prefix = format!("{name}.");
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(dir).context("could not list the pgbench logs")? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().to_string();
        if !file_name.starts_with(&prefix) || file_name.ends_with(".sql") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path())
            .with_context(|| format!("could not read {file_name}"))?;
        latencies.extend(
            text.lines()
                .filter_map(|line| line.split_whitespace().nth(2))
                .filter_map(|field| field.parse::<u64>().ok()),
        );
    }
    latencies.sort_unstable();
    Ok(latencies)
}

#[cfg(test)]
mod tests {
    use super::{parse_count, parse_tps};

    #[test]
    fn reads_the_summary_lines() {
        let out = "number of transactions actually processed: 81234\n\
                   number of failed transactions: 3 (0.004%)\n\
                   latency average = 3.9 ms\n\
                   initial connection time = 25.1 ms\n\
                   tps = 8123.456789 (without initial connection time)\n";
        assert_eq!(parse_tps(out), Some(8123.456789));
        assert_eq!(
            parse_count(out, "number of transactions actually processed:"),
            Some(81234)
        );
        assert_eq!(parse_count(out, "number of failed transactions:"), Some(3));
    }
}
