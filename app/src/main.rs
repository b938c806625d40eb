//! The `dpg` command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;

use dpg_app::{Config, Instance, Listening, shutdown_signal, telemetry};

// Requests make many small, short-lived allocations on every worker thread; glibc's
// allocator spent about a fifth of the server's CPU on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "dpg",
    version,
    about = "A DPG instance: schema-driven items shared across a network"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the instance (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Generate this instance's signing key (PKCS#8 PEM, mode 0600) and print the public key
    /// as the JSON to add to the instance's entries in the Network Schema (`instances[].keys`).
    Keygen {
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Exit 0 when this instance (API_PORT on loopback) answers /health/ready with 200,
    /// else 1: the container health check.
    Healthcheck,
    /// Start a local network: N instances on loopback ports with generated keys, a network
    /// document listing them (peer_auth required) and sample data. Ctrl-C stops them all.
    Devnet {
        /// How many instances (2 to 9); the second serves tutors, the others students.
        #[arg(long, default_value_t = 3)]
        instances: usize,
        /// Port of the first instance; the others follow.
        #[arg(long, default_value_t = 2742)]
        base_port: u16,
        /// Keys, data, logs and the network document.
        #[arg(long, default_value = "data/devnet")]
        dir: std::path::PathBuf,
        /// Use this PostgreSQL server (one database per instance) and Redis instead of the
        /// embedded storage, e.g. postgres://postgres@127.0.0.1:5432/postgres.
        #[arg(long)]
        postgres: Option<String>,
        /// Redis used with --postgres.
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        redis: String,
        /// Start from empty data (and new keys).
        #[arg(long)]
        reset: bool,
    },
    /// Manage administrators.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Inspect the event outbox (deliveries of events to other instances).
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// Print the totals and the undelivered entries (pending and dead), newest first, as JSON.
    List {
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Make dead-lettered deliveries pending again (all, or those to one instance).
    Redrive {
        /// Base URL of the destination instance.
        #[arg(long)]
        destination: Option<String>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an administrator (or promote an existing account). The password is read from
    /// DPG_ADMIN_PASSWORD, or from standard input with --password-stdin; without either a
    /// random one is generated and printed once.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Administrator")]
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Openapi) => {
            println!("{}", dpg_openapi::openapi_document());
            return ExitCode::SUCCESS;
        }
        Some(Command::Keygen { out }) => {
            return match dpg_app::keys::generate(out, dpg_adapters::crypto::random_key_seed()) {
                Ok(public) => {
                    println!("{public}");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(Command::Devnet {
            instances,
            base_port,
            dir,
            postgres,
            redis,
            reset,
        }) => {
            let options = dpg_app::devnet::DevnetOptions {
                instances: *instances,
                base_port: *base_port,
                dir: dir.clone(),
                storage: match postgres {
                    Some(server) => dpg_app::devnet::Storage::Postgres {
                        server: server.clone(),
                        redis: redis.clone(),
                    },
                    None => dpg_app::devnet::Storage::Embedded,
                },
                reset: *reset,
            };
            return match tokio::runtime::Runtime::new()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(dpg_app::devnet::run(options)))
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(Command::Healthcheck) => {
            // Only the port matters here: a probe must not fail on unrelated settings.
            let port = std::env::var("API_PORT")
                .ok()
                .and_then(|raw| raw.trim().parse().ok())
                .unwrap_or(dpg_app::config::DEFAULT_PORT);
            return match dpg_app::healthcheck::probe(port) {
                Ok(()) => ExitCode::SUCCESS,
                Err(reason) => {
                    eprintln!("unhealthy: {reason}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let config = match Config::from_process_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(config.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Some(Command::Migrate) => migrate(&config).await,
            Some(Command::Admin {
                command:
                    AdminCommand::Create {
                        email,
                        name,
                        password_stdin,
                    },
            }) => create_admin(&config, &email, &name, password_stdin).await,
            Some(Command::Outbox { command }) => outbox(&config, command).await,
            _ => serve(config).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "fatal");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = Listening::bind(SocketAddr::new(config.bind, config.port)).await?;
    Instance::build(config)
        .await?
        .serve(listener, shutdown_signal())
        .await
}

async fn create_admin(
    config: &Config,
    email: &str,
    name: &str,
    password_stdin: bool,
) -> anyhow::Result<()> {
    use dpg_adapters::crypto::OsSecretGenerator;
    use dpg_core::ports::SecretGenerator;
    let (password, generated) = if password_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        (line.trim_end_matches(['\r', '\n']).to_string(), false)
    } else if let Ok(password) = std::env::var("DPG_ADMIN_PASSWORD") {
        (password, false)
    } else {
        (OsSecretGenerator::new().alphanumeric(24), true)
    };
    let database = dpg_adapters::sql::SqlDatabase::connect(&config.database.url()).await?;
    database.migrate().await?;
    let accounts = dpg_app::instance::accounts_service(
        config,
        &database,
        std::sync::Arc::new(dpg_adapters::memory::MemoryCache::new()),
        std::sync::Arc::new(dpg_adapters::system::SystemClock),
    );
    let (admin, created) = accounts.ensure_admin(email, &password, name).await?;
    if created {
        println!("administrator {} created ({})", admin.email, admin.id);
        if generated {
            println!("password: {password}");
        }
    } else {
        println!(
            "{} is now an administrator ({}); its password is unchanged",
            admin.email, admin.id
        );
    }
    database.close().await;
    Ok(())
}

async fn outbox(config: &Config, command: OutboxCommand) -> anyhow::Result<()> {
    use dpg_core::services::{OutboxAdmin, OutboxNotifier};
    use std::sync::Arc;
    let database = dpg_adapters::sql::SqlDatabase::connect(&config.database.url()).await?;
    database.migrate().await?;
    let Some(store) = dpg_app::instance::outbox_store(&database) else {
        anyhow::bail!("this instance has no event outbox");
    };
    // A running server's dispatcher finds redriven rows at its next poll.
    let admin = OutboxAdmin::new(
        store,
        Arc::new(dpg_adapters::system::SystemClock),
        OutboxNotifier::detached(),
    );
    match command {
        OutboxCommand::List { limit } => {
            let overview = admin.overview(limit.clamp(1, 10_000)).await?;
            let entries: Vec<serde_json::Value> = overview
                .undelivered
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "id": e.id,
                        "destination": e.destination,
                        "action_name": e.action_name,
                        "action_id": e.action_id,
                        "update_count": e.update_count,
                        "state": e.state.as_str(),
                        "attempts": e.attempts,
                        "next_attempt_at": e.next_attempt_at,
                        "last_error": e.last_error,
                        "created_at": e.created_at,
                        "finished_at": e.finished_at,
                    })
                })
                .collect();
            let out = serde_json::json!({"counts": overview.counts, "undelivered": entries});
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        OutboxCommand::Redrive { destination } => {
            let redriven = admin.redrive(destination).await?;
            println!("{redriven} dead deliveries are pending again");
        }
    }
    database.close().await;
    Ok(())
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let database = dpg_adapters::sql::SqlDatabase::connect(&config.database.url()).await?;
    database.migrate().await?;
    tracing::info!(database = config.database.kind(), "migrations applied");
    Ok(())
}
