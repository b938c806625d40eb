//! The `dpg` command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;

use dpg_app::{Config, Instance, Listening, shutdown_signal, telemetry};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        println!("{}", dpg_openapi::openapi_document());
        return ExitCode::SUCCESS;
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

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let database = dpg_adapters::sql::SqlDatabase::connect(&config.database.url()).await?;
    database.migrate().await?;
    tracing::info!(database = config.database.kind(), "migrations applied");
    Ok(())
}
