//! Real instances in the test process, on loopback port 0, each with its own data.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dpg_app::{Config, Instance, Listening};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running instance; stops when dropped (or with [`TestInstance::stop`]). It can also be
/// halted and started again on the same port, data and environment
/// ([`TestInstance::halt`], [`TestInstance::restart`]), as after a crash or a redeploy.
pub struct TestInstance {
    /// The instance's public URL (`API_DOMAIN` with the port): what its items carry.
    pub base_url: String,
    /// `http://127.0.0.1:<port>` of its own listener: reaches it even when `base_url` names
    /// a proxy in front of it.
    pub local_url: String,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    /// Where it listens, kept for a restart.
    addr: SocketAddr,
    /// The complete environment it booted with, kept for a restart.
    vars: HashMap<String, String>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Environment of an instance: the embedded default plus `overrides`.
#[derive(Debug, Clone, Default)]
pub struct InstanceEnv {
    pub vars: HashMap<String, String>,
}

impl InstanceEnv {
    pub fn new() -> Self {
        InstanceEnv::default()
    }

    pub fn set(mut self, name: &str, value: impl Into<String>) -> Self {
        self.vars.insert(name.to_string(), value.into());
        self
    }
}

/// The bundled development network document, for tests that write their own variant.
pub fn dev_network() -> serde_json::Value {
    serde_json::from_str(dpg_app::config::BUNDLED_NETWORK).unwrap_or(serde_json::Value::Null)
}

pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl TestInstance {
    /// Starts an instance whose data directory is `data_dir` (SQLite and schema copy live
    /// there unless `env` selects PostgreSQL). Fails when it does not boot.
    pub async fn start(data_dir: PathBuf, env: InstanceEnv) -> anyhow::Result<TestInstance> {
        let listener = Listening::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        TestInstance::start_on(listener, data_dir, env).await
    }

    /// Like [`TestInstance::start`], on a listener bound beforehand (so that its port can go
    /// into a network document or a proxy before the instance boots).
    pub async fn start_on(
        listener: Listening,
        data_dir: PathBuf,
        env: InstanceEnv,
    ) -> anyhow::Result<TestInstance> {
        install_crypto_provider();
        let addr = listener.local_addr;
        let port = addr.port();
        let local_url = format!("http://{}", listener.local_addr);
        let mut vars = env.vars;
        vars.entry("DPG_DATA_DIR".into())
            .or_insert_with(|| data_dir.display().to_string());
        vars.insert("API_PORT".into(), port.to_string());
        vars.entry("API_DOMAIN".into())
            .or_insert_with(|| "http://127.0.0.1".into());
        vars.entry("NETWORK_CONFIG_LOCAL_FILE".into())
            .or_insert_with(|| repo_path("examples/dev.network.json"));
        vars.entry("LOG_FORMAT".into())
            .or_insert_with(|| "pretty".into());
        let (base_url, shutdown, task) = boot(listener, &vars).await?;
        Ok(TestInstance {
            base_url,
            local_url,
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .context("http client")?,
            data_dir,
            addr,
            vars,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// `path` on this instance's own listener.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.local_url)
    }

    /// Stops gracefully and waits until the server has drained.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.halt().await
    }

    /// Stops gracefully and waits until the server has drained, keeping the port, the data
    /// and the environment for [`TestInstance::restart`]. Its peers now find nobody
    /// listening (connection refused).
    pub async fn halt(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.context("server task panicked")??;
        }
        Ok(())
    }

    /// Whether it is serving (not halted).
    pub fn is_running(&self) -> bool {
        self.task.is_some()
    }

    /// Boots it again after [`TestInstance::halt`], on the same port, data directory (or
    /// database) and environment. Binding is retried for a few seconds while the old socket
    /// is still being released.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            bail!("instance {} is still running", self.local_url);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match Listening::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => return Err(err.context("rebinding the port of a halted instance")),
            }
        };
        let (base_url, shutdown, task) = boot(listener, &self.vars).await?;
        if base_url != self.base_url {
            bail!("restarted as {base_url} instead of {}", self.base_url);
        }
        self.shutdown = Some(shutdown);
        self.task = Some(task);
        Ok(())
    }
}

type ServerTask = JoinHandle<anyhow::Result<()>>;

/// Builds an instance from its complete environment and serves it on `listener` until the
/// returned sender fires (or is dropped).
async fn boot(
    listener: Listening,
    vars: &HashMap<String, String>,
) -> anyhow::Result<(String, oneshot::Sender<()>, ServerTask)> {
    let config = Config::from_lookup(|name| vars.get(name).cloned()).map_err(anyhow::Error::msg)?;
    let base_url = config.base_url.clone();
    let instance = Instance::build(config)
        .await
        .context("instance did not boot")?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(instance.serve(listener, async move {
        let _ = rx.await;
    }));
    Ok((base_url, tx, task))
}

impl Drop for TestInstance {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A path inside the repository, independent of the test's working directory.
pub fn repo_path(relative: &str) -> String {
    format!("{}/../{relative}", env!("CARGO_MANIFEST_DIR"))
}
