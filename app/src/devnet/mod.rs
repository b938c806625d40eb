//! `dpg devnet`: a working network on this machine in one command. N members on loopback
//! ports, each with its own data (embedded, or PostgreSQL + Redis), keys generated, a network
//! document derived from yellow_dot that lists them with their public keys and requires
//! signatures, sample data, and a printed walkthrough. Ctrl-C stops every member.

mod plan;
mod processes;
mod seed;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::{InstanceKeySource, Secret};
pub use plan::Storage;
use plan::{Member, database_name};
use processes::Running;

/// What `dpg devnet` was asked for.
#[derive(Debug, Clone)]
pub struct DevnetOptions {
    pub instances: usize,
    pub base_port: u16,
    pub dir: PathBuf,
    pub storage: Storage,
    pub reset: bool,
}

/// Marks a devnet whose sample data exists, so a restart does not seed twice.
const SEEDED_MARKER: &str = "seeded";

pub async fn run(options: DevnetOptions) -> anyhow::Result<()> {
    if !(2..=9).contains(&options.instances) {
        bail!("--instances must be between 2 and 9");
    }
    if options.reset && options.dir.exists() {
        std::fs::remove_dir_all(&options.dir)
            .with_context(|| format!("cannot remove {}", options.dir.display()))?;
    }
    std::fs::create_dir_all(&options.dir)
        .with_context(|| format!("cannot create {}", options.dir.display()))?;
    let mut members = plan::members(options.instances, options.base_port, &options.dir);
    for member in &mut members {
        member.public_key = key_of(member)?;
    }
    let document_path = options.dir.join("yellow_dot.devnet.json");
    let document = plan::network_document(&members)?;
    std::fs::write(&document_path, serde_json::to_vec_pretty(&document)?)
        .with_context(|| format!("cannot write {}", document_path.display()))?;
    if let Storage::Postgres { server, redis } = &options.storage {
        prepare_postgres(server, redis, &members, options.reset).await?;
    }

    let binary = std::env::current_exe().context("cannot find the dpg binary")?;
    // reqwest is built without a default TLS provider in this workspace.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let mut running = Vec::new();
    for member in &members {
        let env = plan::environment(member, &document_path, &options.storage);
        running.push(processes::spawn(&binary, member, &env)?);
    }
    let started = wait_until_ready(&mut running, &client).await;
    let outcome = match started {
        Ok(()) => walkthrough(&options.dir, &members, &client).await,
        Err(err) => Err(err),
    };
    if outcome.is_ok() {
        println!("\nCtrl-C stops every instance.");
        wait_for_stop(&mut running).await;
    }
    for member in running {
        eprintln!("{}", member.stop().await);
    }
    outcome
}

/// The member's key: generated on first start, kept in its data directory.
fn key_of(member: &Member) -> anyhow::Result<serde_json::Value> {
    std::fs::create_dir_all(&member.data_dir)?;
    let file = member.key_file();
    let key = if file.exists() {
        crate::keys::load(&InstanceKeySource::File(file))?
    } else {
        let seed = dpg_adapters::crypto::random_key_seed();
        crate::keys::generate(&file, seed)?;
        crate::keys::load(&InstanceKeySource::Seed(Secret::new(base64_seed(&seed))))?
    };
    Ok(serde_json::json!({
        "kid": format!("{}-{}", member.name(), key.suggested_kid()),
        "alg": "ed25519",
        "public_key": key.public_key_b64url(),
    }))
}

fn base64_seed(seed: &[u8; 32]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(seed)
}

async fn prepare_postgres(
    server: &str,
    redis: &str,
    members: &[Member],
    reset: bool,
) -> anyhow::Result<()> {
    for member in members {
        dpg_adapters::sql::ensure_postgres_database(server, &database_name(member), reset)
            .await
            .with_context(|| format!("cannot prepare the database of {}", member.name()))?;
        if reset {
            use dpg_core::ports::Cache;
            let cache =
                dpg_adapters::redis::RedisCache::new(redis, format!("dpg:{}:", member.name()))
                    .context("invalid Redis URL")?;
            cache
                .delete_prefix("")
                .await
                .with_context(|| format!("cannot clear the Redis keys of {}", member.name()))?;
        }
    }
    Ok(())
}

async fn wait_until_ready(running: &mut [Running], client: &reqwest::Client) -> anyhow::Result<()> {
    for member in running.iter_mut() {
        member.ready(client).await?;
        println!("{} ready at {}", member.member.name(), member.member.url());
    }
    Ok(())
}

/// Seeds a fresh devnet, then prints where everything is.
async fn walkthrough(
    dir: &Path,
    members: &[Member],
    client: &reqwest::Client,
) -> anyhow::Result<()> {
    let marker = dir.join(SEEDED_MARKER);
    let seeded = if marker.exists() {
        let text = std::fs::read_to_string(&marker)?;
        serde_json::from_str::<serde_json::Value>(&text).ok()
    } else {
        let seeded = seed::seed(client, members).await?;
        let record = serde_json::json!({
            "action_id": seeded.action_id,
            "student_item_id": seeded.student_item_id,
            "tutor_item_id": seeded.tutor_item_id,
            "student_instance": seeded.student_instance,
            "tutor_instance": seeded.tutor_instance,
        });
        std::fs::write(&marker, record.to_string())?;
        Some(record)
    };
    println!(
        "\nDevnet of {} instances (network yellow_dot, signatures required):",
        members.len()
    );
    for member in members {
        println!(
            "  {}  {:<24} serves {:<8} Swagger UI {}/docs   log {}",
            member.name(),
            member.url(),
            member.domain,
            member.url(),
            member.log_file().display()
        );
    }
    let student = &members[0];
    let tutor = members
        .iter()
        .find(|m| m.domain == "tutor")
        .unwrap_or(student);
    let recorded = |field: &str, placeholder: &'static str| {
        seeded
            .as_ref()
            .and_then(|s| s[field].as_str().map(str::to_string))
            .unwrap_or_else(|| placeholder.to_string())
    };
    let action_id = recorded("action_id", "<action_id>");
    let student_item = recorded("student_item_id", "<student item_id>");
    let tutor_item = recorded("tutor_item_id", "<tutor item_id>");
    println!("\nTry:");
    println!(
        "  # every student of the network, read through {}\n  curl -s '{}/api/v1/network/item/fetch?item_network=yellow_dot&item_domain=student&limit=10'",
        student.name(),
        student.url()
    );
    println!(
        "  # Asha asks Meera (a tutor on another instance) to connect once more\n  curl -s -X POST {}/api/v1/action/perform -H 'x-dev-user-id: {}' -H 'content-type: application/json' -d '{{\"action_name\":\"connect\",\"source_item\":{{\"item_network\":\"yellow_dot\",\"item_domain\":\"student\",\"item_type\":\"profile_1.0\",\"item_id\":\"{}\"}},\"target_item\":{{\"item_network\":\"yellow_dot\",\"item_domain\":\"tutor\",\"item_type\":\"profile_1.0\",\"item_id\":\"{}\",\"item_instance_url\":\"{}\"}},\"requirements_snapshot\":{{\"subject\":\"math\",\"goal\":\"board exam\"}}}}'",
        student.url(),
        seed::STUDENT_USER,
        student_item,
        tutor_item,
        tutor.url()
    );
    println!(
        "  # the events of the seeded action, as its student sees them on {}\n  curl -s '{}/api/v1/event/fetch?action_id={}' -H 'x-dev-user-id: {}'",
        student.name(),
        student.url(),
        action_id,
        seed::STUDENT_USER
    );
    Ok(())
}

/// Until Ctrl-C (or SIGTERM), or until a member dies on its own.
async fn wait_for_stop(running: &mut [Running]) {
    let signal = crate::shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            () = &mut signal => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
                for member in running.iter_mut() {
                    if let Some(status) = member.exited() {
                        eprintln!(
                            "{} exited on its own ({status}); see {}",
                            member.member.name(),
                            member.member.log_file().display()
                        );
                        return;
                    }
                }
            }
        }
    }
}
