//! Several real instances of one network in the test process, each with its own data, all
//! reading one generated network document that lists every one of them.
//!
//! Every instance serves `yellow_dot/student`; instance 0 also serves `yellow_dot/tutor`.
//! An instance may sit behind a [`FaultProxy`]: its public URL (`API_DOMAIN`, its URL in the
//! document, the `item_instance_url` of its items) is then the proxy's, so its peers reach
//! it only through the proxy, while the test still reaches it directly.

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dpg_app::Listening;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::fault_proxy::FaultProxy;
use super::instance::{InstanceEnv, TestInstance, dev_network, install_crypto_provider};
use super::keys::{INSTANCE_KEY_ENV, InstanceKey, signed_post_headers};
use super::postgres::TestPostgres;
use super::redis::{redis_url, unique_namespace};
use super::tls_proxy::{TestCa, TlsProxy};
use dpg_core::services::PeerSigner;

pub const NETWORK: &str = "yellow_dot";
pub const STUDENT: &str = "student";
pub const TUTOR: &str = "tutor";
pub const COUNT_LOCAL: &str = "/api/v1/network/item/count_local";
pub const FETCH_LOCAL: &str = "/api/v1/network/item/fetch_local";
pub const NETWORK_FETCH: &str = "/api/v1/network/item/fetch";

/// Where the instances keep their data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An own SQLite file and the in-process cache.
    Embedded,
    /// An own fresh PostgreSQL database and an own Redis key prefix.
    PostgresRedis,
}

/// How to build a [`TestNetwork`]; see [`TestNetwork::builder`].
#[derive(Debug, Clone)]
pub struct NetworkBuilder {
    size: usize,
    backend: Backend,
    proxied: BTreeSet<usize>,
    alias: Option<usize>,
    private_fields: Vec<(String, String)>,
    minimum_cache_ttl_seconds: Option<u64>,
    common_env: InstanceEnv,
    env: HashMap<usize, InstanceEnv>,
    /// Every instance signs with its own key, listed in the document, and the network
    /// requires signatures.
    signed: bool,
    /// The network's `peer_auth` mode when not the default of a (un)signed network.
    peer_auth: Option<&'static str>,
    /// Instances reached through a TLS-terminating proxy (`https://localhost:<port>`).
    tls: BTreeSet<usize>,
    /// Instances that are not given the test CA (`PEER_CA_FILE`).
    untrusting: BTreeSet<usize>,
}

impl NetworkBuilder {
    /// PostgreSQL + Redis instead of the embedded default.
    pub fn postgres_redis(mut self) -> Self {
        self.backend = Backend::PostgresRedis;
        self
    }

    /// Gives every instance a fresh Ed25519 key, lists the keys in the document and sets
    /// `peer_auth: required` (the default).
    pub fn signed(mut self) -> Self {
        self.signed = true;
        self
    }

    /// No keys and the document's default `peer_auth` (`permissive`): instances call each
    /// other unsigned, as TypeScript peers do.
    pub fn unsigned(mut self) -> Self {
        self.signed = false;
        self
    }

    /// Sets the document's `peer_auth` mode (`off`, `permissive`, `required`).
    pub fn peer_auth(mut self, mode: &'static str) -> Self {
        self.peer_auth = Some(mode);
        self
    }

    /// Puts a TLS-terminating proxy with a certificate of a test CA in front of instance
    /// `index`; its URL becomes `https://localhost:<port>` and every other instance trusts
    /// the CA through `PEER_CA_FILE` (unless [`NetworkBuilder::untrusting`]).
    pub fn tls(mut self, index: usize) -> Self {
        self.tls.insert(index);
        self
    }

    /// Instance `index` is not given the test CA of [`NetworkBuilder::tls`].
    pub fn untrusting(mut self, index: usize) -> Self {
        self.untrusting.insert(index);
        self
    }

    /// Puts a [`FaultProxy`] in front of instance `index`.
    pub fn proxied(mut self, index: usize) -> Self {
        self.proxied.insert(index);
        self
    }

    /// Lists instance `index` a second time for `student`, as `http://localhost:<port>`.
    pub fn alias(mut self, index: usize) -> Self {
        self.alias = Some(index);
        self
    }

    /// Marks `field` `"private": true` in every item schema of `domain` that has it.
    pub fn private_field(mut self, domain: &str, field: &str) -> Self {
        self.private_fields
            .push((domain.to_string(), field.to_string()));
        self
    }

    /// Sets every domain's `minimum_cache_ttl_seconds` (the bundled document says 300).
    pub fn minimum_cache_ttl_seconds(mut self, seconds: u64) -> Self {
        self.minimum_cache_ttl_seconds = Some(seconds);
        self
    }

    /// An environment variable of every instance.
    pub fn env_all(mut self, name: &str, value: impl Into<String>) -> Self {
        self.common_env = self.common_env.set(name, value);
        self
    }

    /// An environment variable of instance `index` only (wins over [`Self::env_all`]).
    pub fn env(mut self, index: usize, name: &str, value: impl Into<String>) -> Self {
        let env = self.env.remove(&index).unwrap_or_default();
        self.env.insert(index, env.set(name, value));
        self
    }

    /// Binds every listener (and proxy), writes the document, boots every instance.
    pub async fn start(self) -> anyhow::Result<TestNetwork> {
        install_crypto_provider();
        if self.size < 3 {
            bail!("a test network has at least 3 instances, not {}", self.size);
        }
        if let Some(index) = self
            .proxied
            .iter()
            .chain(self.alias.iter())
            .chain(self.tls.iter())
            .chain(self.untrusting.iter())
            .chain(self.env.keys())
            .find(|index| **index >= self.size)
        {
            bail!("instance {index} is not among the {} instances", self.size);
        }
        if let Some(index) = self.tls.intersection(&self.proxied).next() {
            bail!("instance {index} cannot be behind both a fault proxy and a TLS proxy");
        }
        let document_dir = tempfile::tempdir().context("temporary directory")?;
        let ca = match self.tls.is_empty() {
            true => None,
            false => Some(TestCa::generate()?),
        };
        let ca_path = document_dir.path().join("peer-ca.pem");
        if let Some(ca) = &ca {
            std::fs::write(&ca_path, ca.pem()).context("writing the test CA")?;
        }
        let mut listeners = Vec::with_capacity(self.size);
        let mut proxies = Vec::with_capacity(self.size);
        let mut tls_proxies = Vec::with_capacity(self.size);
        let mut urls = Vec::with_capacity(self.size);
        for index in 0..self.size {
            let listener = Listening::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
            let proxy = if self.proxied.contains(&index) {
                Some(FaultProxy::start(listener.local_addr).await?)
            } else {
                None
            };
            let tls_proxy = match (&ca, self.tls.contains(&index)) {
                (Some(ca), true) => Some(TlsProxy::start(listener.local_addr, ca).await?),
                _ => None,
            };
            urls.push(match (&proxy, &tls_proxy) {
                (Some(proxy), _) => proxy.url(),
                (_, Some(tls)) => tls.url(),
                _ => format!("http://{}", listener.local_addr),
            });
            listeners.push(listener);
            proxies.push(proxy);
            tls_proxies.push(tls_proxy);
        }
        let alias = match self.alias {
            Some(index) => Some(localhost_alias(&urls[index])?),
            None => None,
        };
        let keys: Vec<Option<InstanceKey>> = (0..self.size)
            .map(|index| {
                self.signed
                    .then(|| InstanceKey::generate(format!("member{index}-key")))
            })
            .collect();
        let listings: Vec<Option<Value>> = keys
            .iter()
            .map(|key| key.as_ref().map(InstanceKey::listing))
            .collect();
        let document = self.document(&urls, alias.as_deref(), &listings)?;
        let document_path = document_dir.path().join("network.json");
        std::fs::write(&document_path, serde_json::to_vec_pretty(&document)?)
            .context("writing the network document")?;

        let mut databases = Vec::with_capacity(self.size);
        for _ in 0..self.size {
            databases.push(match self.backend {
                Backend::Embedded => None,
                Backend::PostgresRedis => Some(
                    TestPostgres::create()
                        .await
                        .context("PostgreSQL must be reachable")?,
                ),
            });
        }
        let mut boots = Vec::with_capacity(self.size);
        let mut data_dirs = Vec::with_capacity(self.size);
        for (index, listener) in listeners.into_iter().enumerate() {
            let data_dir = tempfile::tempdir().context("temporary directory")?;
            let mut env = self.common_env.clone();
            env = env
                .set(
                    "NETWORK_CONFIG_LOCAL_FILE",
                    document_path.display().to_string(),
                )
                .set("SERVED_DOMAINS", served(index).join(","))
                .set("API_DOMAIN", urls[index].clone())
                .set("INSTANCE_NAME", format!("member{index}"));
            if ca.is_some() && !self.untrusting.contains(&index) {
                env = env.set("PEER_CA_FILE", ca_path.display().to_string());
            }
            if let Some(key) = &keys[index] {
                env = env.set(INSTANCE_KEY_ENV, key.env_value());
            }
            if let Some(database) = &databases[index] {
                env = env
                    .set("DATABASE_URL", database.url())
                    .set("REDIS_URL", redis_url())
                    .set(
                        "REDIS_KEY_PREFIX",
                        unique_namespace(&format!("federation{index}")),
                    );
            }
            if let Some(own) = self.env.get(&index) {
                env.vars
                    .extend(own.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            boots.push(TestInstance::start_on(
                listener,
                data_dir.path().to_path_buf(),
                env,
            ));
            data_dirs.push(data_dir);
        }
        let instances = futures::future::join_all(boots).await;
        let mut members = Vec::with_capacity(self.size);
        for (index, ((instance, proxy), (data_dir, database))) in instances
            .into_iter()
            .zip(proxies)
            .zip(data_dirs.into_iter().zip(databases))
            .enumerate()
        {
            let instance = instance.with_context(|| format!("instance {index} did not boot"))?;
            if instance.base_url != urls[index] {
                bail!(
                    "instance {index} calls itself {} instead of {}",
                    instance.base_url,
                    urls[index]
                );
            }
            members.push(Member {
                instance,
                url: urls[index].clone(),
                domains: served(index)
                    .iter()
                    .filter_map(|b| b.split('/').nth(1).map(str::to_string))
                    .collect(),
                proxy,
                _data_dir: data_dir,
                _database: database,
            });
        }
        let signers = keys
            .iter()
            .map(|key| key.as_ref().map(InstanceKey::signer))
            .collect();
        Ok(TestNetwork {
            members,
            document,
            alias,
            signers,
            _tls_proxies: tls_proxies.into_iter().flatten().collect(),
            _document_dir: document_dir,
        })
    }

    /// The bundled development document with this network's instances and options.
    fn document(
        &self,
        urls: &[String],
        alias: Option<&str>,
        keys: &[Option<Value>],
    ) -> anyhow::Result<Value> {
        let mut document = dev_network();
        let domains = document["domains"]
            .as_array_mut()
            .context("the bundled document has no domains")?;
        for domain in domains {
            if let Some(seconds) = self.minimum_cache_ttl_seconds {
                domain["minimum_cache_ttl_seconds"] = json!(seconds);
            }
            let name = domain["name"].as_str().unwrap_or_default().to_string();
            let Some(schemas) = domain["item_schemas"].as_object_mut() else {
                continue;
            };
            for schema in schemas.values_mut() {
                for (_, field) in self.private_fields.iter().filter(|(d, _)| *d == name) {
                    if let Some(property) = schema["properties"]
                        .as_object_mut()
                        .and_then(|p| p.get_mut(field))
                        .and_then(Value::as_object_mut)
                    {
                        property.insert("private".into(), Value::Bool(true));
                    }
                }
            }
        }
        let entry = |domain: &str, name: String, url: &str, index: usize| {
            let mut entry = json!({
                "domain_name": domain,
                "instance_name": name,
                "instance_url": url,
                "custom_item_schema_urls": {}
            });
            if let Some(Some(key)) = keys.get(index) {
                entry["keys"] = json!([key]);
            }
            entry
        };
        let mut instances: Vec<Value> = urls
            .iter()
            .enumerate()
            .map(|(index, url)| entry(STUDENT, format!("Student member {index}"), url, index))
            .collect();
        if let (Some(index), Some(alias)) = (self.alias, alias) {
            instances.push(entry(
                STUDENT,
                format!("Student member {index} (alias)"),
                alias,
                index,
            ));
        }
        instances.push(entry(TUTOR, "Tutor member 0".to_string(), &urls[0], 0));
        document["instances"] = Value::Array(instances);
        match (self.peer_auth, self.signed) {
            (Some(mode), _) => document["peer_auth"] = json!(mode),
            (None, true) => document["peer_auth"] = json!("required"),
            (None, false) => {}
        }
        document["description"] = json!("Generated for the federation tests.");
        Ok(document)
    }
}

/// Bindings served by instance `index`.
fn served(index: usize) -> Vec<String> {
    let mut bindings = vec![format!("{NETWORK}/{STUDENT}")];
    if index == 0 {
        bindings.push(format!("{NETWORK}/{TUTOR}"));
    }
    bindings
}

/// `http://127.0.0.1:<port>` spelled `http://localhost:<port>`.
fn localhost_alias(url: &str) -> anyhow::Result<String> {
    let mut parsed = url::Url::parse(url).context("instance URL")?;
    parsed
        .set_host(Some("localhost"))
        .context("instance URL host")?;
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

/// One instance of the network.
pub struct Member {
    pub instance: TestInstance,
    /// The URL its peers call and its items carry (the proxy's when proxied).
    pub url: String,
    /// Domains of `yellow_dot` it serves.
    pub domains: Vec<String>,
    pub proxy: Option<FaultProxy>,
    _data_dir: TempDir,
    _database: Option<TestPostgres>,
}

impl Member {
    pub fn serves(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d == domain)
    }
}

/// A running network; every instance stops when it is dropped.
pub struct TestNetwork {
    pub members: Vec<Member>,
    /// The generated network document every instance reads.
    pub document: Value,
    /// The `http://localhost:<port>` spelling listed besides one instance, if any.
    pub alias: Option<String>,
    /// Each instance's signing identity, in a signed network.
    signers: Vec<Option<PeerSigner>>,
    _tls_proxies: Vec<TlsProxy>,
    _document_dir: TempDir,
}

/// An HTTP answer, its body parsed as JSON when it is JSON.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub elapsed: Duration,
}

impl TestNetwork {
    /// `size` (at least 3) embedded instances, signed (`peer_auth: required`), no proxy, no
    /// alias, the bundled TTLs.
    pub fn builder(size: usize) -> NetworkBuilder {
        NetworkBuilder {
            size,
            backend: Backend::Embedded,
            proxied: BTreeSet::new(),
            alias: None,
            private_fields: Vec::new(),
            minimum_cache_ttl_seconds: None,
            common_env: InstanceEnv::new(),
            env: HashMap::new(),
            signed: true,
            peer_auth: None,
            tls: BTreeSet::new(),
            untrusting: BTreeSet::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn instance(&self, index: usize) -> &TestInstance {
        &self.members[index].instance
    }

    /// The URL peers call for instance `index` (and its items' `item_instance_url`).
    pub fn url(&self, index: usize) -> &str {
        &self.members[index].url
    }

    /// The key instance `index` signs with, in a [`NetworkBuilder::signed`] network: lets a
    /// test forge or tamper with requests as that instance.
    pub fn signer(&self, index: usize) -> Option<&PeerSigner> {
        self.signers[index].as_ref()
    }

    /// Stops instance `index` gracefully (its peers find nobody listening), keeping its
    /// port, data and environment for [`TestNetwork::restart_instance`].
    pub async fn halt_instance(&mut self, index: usize) -> anyhow::Result<()> {
        self.members[index]
            .instance
            .halt()
            .await
            .with_context(|| format!("halting instance {index}"))
    }

    /// Starts instance `index` again after [`TestNetwork::halt_instance`], on the same port
    /// with the same data (SQLite file or PostgreSQL database) and environment.
    pub async fn restart_instance(&mut self, index: usize) -> anyhow::Result<()> {
        self.members[index]
            .instance
            .restart()
            .await
            .with_context(|| format!("restarting instance {index}"))
    }

    /// The proxy in front of instance `index`, when it has one.
    pub fn proxy(&self, index: usize) -> Option<&FaultProxy> {
        self.members[index].proxy.as_ref()
    }

    /// `GET path_and_query` on instance `index`, directly.
    pub async fn get(&self, index: usize, path_and_query: &str) -> anyhow::Result<Reply> {
        let instance = self.instance(index);
        send(instance.client.get(instance.url(path_and_query))).await
    }

    /// The text of `GET /metrics` on instance `index`. The in-process instances of one test
    /// binary share the metrics recorder, so it counts for all of them.
    pub async fn metrics_text(&self, index: usize) -> anyhow::Result<String> {
        let instance = self.instance(index);
        let response = instance.client.get(instance.url("/metrics")).send().await?;
        Ok(response.error_for_status()?.text().await?)
    }

    /// `GET path_and_query` on instance `index` through its public URL (its proxy, when it
    /// has one), as its peers reach it.
    pub async fn get_public(&self, index: usize, path_and_query: &str) -> anyhow::Result<Reply> {
        let instance = self.instance(index);
        send(
            instance
                .client
                .get(format!("{}{path_and_query}", self.url(index))),
        )
        .await
    }

    /// `POST path` with a JSON body on instance `index`, directly, as its peer `from` calls
    /// it: signed with `from`'s key in a signed network.
    pub async fn peer_post(
        &self,
        from: usize,
        index: usize,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<Reply> {
        let bytes = body.to_string().into_bytes();
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if let Some(signer) = self.signer(from) {
            let target = format!("{}{path}", self.url(index));
            headers.extend(signed_post_headers(signer, &target, &bytes)?);
        }
        self.post_raw(index, path, &headers, bytes).await
    }

    /// `POST path` on instance `index`, directly, with exactly these headers and bytes (for
    /// signed, forged and tampered peer requests).
    pub async fn post_raw(
        &self,
        index: usize,
        path: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> anyhow::Result<Reply> {
        let instance = self.instance(index);
        let mut request = instance.client.post(instance.url(path));
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        send(request.body(body)).await
    }

    /// `GET /api/v1/network/item/fetch?item_network=yellow_dot&item_domain=<domain><query>`
    /// on instance `index`; `query` starts with `&` when not empty.
    pub async fn network_fetch(
        &self,
        index: usize,
        domain: &str,
        query: &str,
    ) -> anyhow::Result<Reply> {
        self.get(
            index,
            &format!("{NETWORK_FETCH}?item_network={NETWORK}&item_domain={domain}{query}"),
        )
        .await
    }

    /// Creates one item through instance `index`'s HTTP API as `user`; returns the item.
    pub async fn create(&self, index: usize, user: &str, body: &Value) -> anyhow::Result<Value> {
        let instance = self.instance(index);
        let reply = send(
            instance
                .client
                .post(instance.url("/api/v1/item/create"))
                .header("x-dev-user-id", user)
                .json(body),
        )
        .await?;
        if reply.status != 201 {
            bail!(
                "creating an item on instance {index} answered {}: {}",
                reply.status,
                reply.body
            );
        }
        Ok(reply.body)
    }

    /// Creates `count` items of `domain`, item `k` from `body(k)`, through the instances
    /// serving the domain in turn (so creation times interleave across instances), each by
    /// a user of its own. Returns the instance index of every item, by `k`.
    pub async fn seed_round_robin(
        &self,
        domain: &str,
        count: usize,
        body: impl Fn(usize) -> Value,
    ) -> anyhow::Result<Vec<usize>> {
        let serving: Vec<usize> = (0..self.len())
            .filter(|i| self.members[*i].serves(domain))
            .collect();
        if serving.is_empty() {
            bail!("no instance serves {domain}");
        }
        let mut placed = Vec::with_capacity(count);
        for k in 0..count {
            let index = serving[k % serving.len()];
            self.create(index, &format!("user-{}", k % 5), &body(k))
                .await?;
            placed.push(index);
        }
        Ok(placed)
    }

    /// Every item of `domain` on every instance serving it, read with `fetch_local` (limit
    /// 100, offset by offset), in the global order: `created_at` desc, then `item_id` desc.
    pub async fn all_items(&self, domain: &str) -> anyhow::Result<Vec<Value>> {
        let mut all = Vec::new();
        for index in (0..self.len()).filter(|i| self.members[*i].serves(domain)) {
            all.extend(self.local_items(index, domain).await?);
        }
        sort_global(&mut all);
        Ok(all)
    }

    /// Every item of `domain` held by instance `index`, through its `fetch_local`.
    pub async fn local_items(&self, index: usize, domain: &str) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            let reply = self
                .peer_post(
                    (index + 1) % self.len(),
                    index,
                    FETCH_LOCAL,
                    &json!({"item_network": NETWORK, "item_domain": domain,
                            "limit": 100, "offset": items.len()}),
                )
                .await?;
            if reply.status != 200 {
                bail!(
                    "fetch_local on instance {index} answered {}: {}",
                    reply.status,
                    reply.body
                );
            }
            let page = reply.body["items"]
                .as_array()
                .context("fetch_local answered no items array")?;
            let done = page.len() < 100;
            items.extend(page.iter().cloned());
            if done {
                return Ok(items);
            }
        }
    }

    /// Stops every instance gracefully (before their databases go).
    pub async fn stop(self) -> anyhow::Result<()> {
        for (index, member) in self.members.into_iter().enumerate() {
            member
                .instance
                .stop()
                .await
                .with_context(|| format!("stopping instance {index}"))?;
        }
        Ok(())
    }
}

/// Sorts items into the global order: `created_at` desc, then `item_id` desc (both compare
/// as text: fixed-width UTC milliseconds and lower-case UUIDs).
pub fn sort_global(items: &mut [Value]) {
    items.sort_by(|a, b| {
        let key = |v: &Value| {
            (
                v["created_at"].as_str().unwrap_or_default().to_string(),
                v["item_id"].as_str().unwrap_or_default().to_string(),
            )
        };
        key(b).cmp(&key(a))
    });
}

/// The `item_id`s of a list of items, to compare orders readably.
pub fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| {
            item["item_id"]
                .as_str()
                .unwrap_or("<no item_id>")
                .to_string()
        })
        .collect()
}

async fn send(request: reqwest::RequestBuilder) -> anyhow::Result<Reply> {
    let started = Instant::now();
    let response = request.send().await.context("request not answered")?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.context("answer body")?;
    let elapsed = started.elapsed();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok(Reply {
        status,
        headers,
        body,
        elapsed,
    })
}
