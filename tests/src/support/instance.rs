//! Real instances in the test process, on loopback port 0, each with its own data.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use dpg_app::{Config, Instance, Listening};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running instance; stops when dropped (or with [`TestInstance::stop`]).
pub struct TestInstance {
    /// The instance's public URL (`API_DOMAIN` with the port): what its items carry.
    pub base_url: String,
    /// `http://127.0.0.1:<port>` of its own listener: reaches it even when `base_url` names
    /// a proxy in front of it.
    pub local_url: String,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
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
        let port = listener.local_addr.port();
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
        let config =
            Config::from_lookup(|name| vars.get(name).cloned()).map_err(anyhow::Error::msg)?;
        let base_url = config.base_url.clone();
        let instance = Instance::build(config)
            .await
            .context("instance did not boot")?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(instance.serve(listener, async move {
            let _ = rx.await;
        }));
        Ok(TestInstance {
            base_url,
            local_url,
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .context("http client")?,
            data_dir,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `path` on this instance's own listener.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.local_url)
    }

    /// Stops gracefully and waits until the server has drained.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.context("server task panicked")??;
        }
        Ok(())
    }
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
