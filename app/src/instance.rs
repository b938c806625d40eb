//! The composition root: adapters wired into the core services, the HTTP app, background
//! workers, start-up and graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dpg_adapters::crypto::{Argon2PasswordHasher, OsSecretGenerator};
use dpg_adapters::fs::{DiskSchemaStore, FileSchemaSource, MirroredSchemaStore};
use dpg_adapters::http::{HttpSchemaSource, HttpSourceConfig, SchemaSourceRouter};
use dpg_adapters::identity::DevelopmentAuthenticator;
use dpg_adapters::memory::MemoryCache;
use dpg_adapters::metered_cache::MeteredCache;
use dpg_adapters::peer_http::{HttpPeerTransport, PeerHttpConfig};
use dpg_adapters::redis::RedisCache;
use dpg_adapters::sql::{
    PoolSettings, SqlActionRepository, SqlApiKeyRepository, SqlDatabase, SqlItemRepository,
    SqlOutbox, SqlSchemaStore, SqlSessionRepository, SqlUserRepository,
};
use dpg_adapters::system::{SystemClock, SystemRandom, TokioTimer, UuidV7Generator};
use dpg_core::model::InstanceIdentity;
use dpg_core::network::{CatalogHandle, CatalogOrigin, NetworkCatalog, SchemaCompiler};
use dpg_core::ports::{
    ActionRepository, Authenticator, Cache, Clock, ItemRepository, Outbox, PeerTransport,
    SchemaLocation,
};
use dpg_core::services::auth::AuthLimits;
use dpg_core::services::network_fetch::BreakerSettings;
use dpg_core::services::rate_limit::Limit;
use dpg_core::services::{
    ActionService, ActionServiceDeps, AuthService, AuthServiceDeps, AuthSettings, HealthService,
    ItemService, ItemServiceDeps, NetworkFetchDeps, NetworkFetchService, NetworkFetchSettings,
    NetworkSchemaService, OutboxAdmin, OutboxDeps, OutboxDispatcher, PeerItemsService, PeerSigner,
    PeerTrustService, SchemaServiceDeps,
};
use dpg_openapi::cors::CorsPolicy;
use dpg_openapi::state::{CookieSettings, PublicKeyOut};
use dpg_openapi::{ApiState, BodyLimits, HttpSettings};
use poem::endpoint::BoxEndpoint;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{EndpointExt, Response, Server};

use crate::config::{BUNDLED_NETWORK, CacheConfig, Config, DEFAULT_NETWORK_FILE};
use crate::telemetry;

/// A wired instance, ready to serve.
pub struct Instance {
    pub config: Config,
    pub database: SqlDatabase,
    pub schemas: Arc<NetworkSchemaService>,
    /// Delivers stored events to other instances (when this instance has an outbox).
    pub outbox: Option<Arc<OutboxDispatcher>>,
    app: BoxEndpoint<'static, Response>,
}

impl Instance {
    /// Connects storage, runs migrations, loads the network documents and builds the app.
    pub async fn build(mut config: Config) -> anyhow::Result<Instance> {
        if config.environment_defaulted {
            tracing::warn!(
                "INSTANCE_ENV is not set: running in DEVELOPMENT mode (auth off unless AUTH_MIDDLEWARE_ENABLED=true)"
            );
        }
        use_bundled_network_when_absent(&mut config)?;
        tracing::info!(
            database = config.database.kind(),
            cache = match config.cache { CacheConfig::Redis { .. } => "redis", CacheConfig::Memory => "memory" },
            base_url = %config.base_url,
            served = ?config.served.iter().map(|b| b.key()).collect::<Vec<_>>(),
            "starting instance"
        );

        let pool = PoolSettings {
            max_connections: config.database_pool_size,
            ..PoolSettings::default()
        };
        let database = SqlDatabase::connect_with(&config.database.url(), &pool)
            .await
            .with_context(|| format!("cannot open the {} database", config.database.kind()))?;
        database
            .migrate()
            .await
            .context("database migration failed")?;

        let cache: Arc<dyn Cache> = match &config.cache {
            CacheConfig::Redis { url, key_prefix } => Arc::new(MeteredCache::new(
                RedisCache::new(url.expose(), key_prefix.clone())
                    .context("invalid Redis configuration")?,
                "redis",
            )),
            CacheConfig::Memory => Arc::new(MeteredCache::new(MemoryCache::new(), "memory")),
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let identity = Arc::new(InstanceIdentity {
            base_url: config.base_url.clone(),
            name: config.instance_name.clone(),
            served: config.served.clone(),
        });
        let catalog = Arc::new(CatalogHandle::new(NetworkCatalog::empty(clock.now())));
        let http_source = HttpSchemaSource::new(HttpSourceConfig {
            allow_private: config.schema_fetch_allow_private,
            allowed_cidrs: config
                .schema_fetch_allowed_cidrs
                .iter()
                .map(|cidr| cidr.parse())
                .collect::<Result<_, _>>()
                .context("SCHEMA_FETCH_ALLOWED_CIDRS must list CIDR blocks")?,
            ..HttpSourceConfig::default()
        })?;
        let source = Arc::new(SchemaSourceRouter::new(
            Arc::new(FileSchemaSource::new()),
            Arc::new(http_source),
        ));
        let store = Arc::new(MirroredSchemaStore::new(
            Arc::new(SqlSchemaStore::new(&database)),
            DiskSchemaStore::new(config.data_dir.join("schema-cache")),
        ));
        let schemas = Arc::new(NetworkSchemaService::new(SchemaServiceDeps {
            source,
            store,
            clock: clock.clone(),
            identity: identity.clone(),
            catalog: catalog.clone(),
            compiler: SchemaCompiler::new(config.allow_extra_schema_data),
            locations: config.schema_locations.clone(),
        }));
        match schemas
            .boot()
            .await
            .context("no network document could be loaded")?
        {
            CatalogOrigin::Sources => tracing::info!("network documents loaded from their sources"),
            CatalogOrigin::LastGoodCopy { saved_at } => {
                tracing::warn!(%saved_at, "BOOTED FROM THE LAST GOOD COPY of the network documents")
            }
        }

        let instance_key = match &config.peers.instance_key {
            Some(source) => Some(crate::keys::load(source)?),
            None => None,
        };
        let signer = instance_key.map(|key| {
            let signer = crate::keys::signer(key, &catalog.current(), &config.base_url);
            match config.peers.pair_key_reads {
                true => signer.with_pair_reads(catalog.clone()),
                false => signer,
            }
        });
        // Shared by the signer and the verifier: each pair key is derived once.
        let pair_keys = signer.as_ref().map(PeerSigner::pair_keys);
        if signer.is_none() && catalog.current().requires_signatures() {
            anyhow::bail!(
                "a network requires signed peer requests (peer_auth: required) but this instance has no key: \
                 set DPG_INSTANCE_KEY_FILE (see `dpg keygen`)"
            );
        }
        let public_keys = signer
            .iter()
            .map(|s| PublicKeyOut {
                kid: s.kid().to_string(),
                alg: "ed25519".to_string(),
                public_key: s.public_key_b64url(),
            })
            .collect();
        let extra_root_ca_pem = match &config.peers.ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .with_context(|| format!("cannot read PEER_CA_FILE {}", path.display()))?,
            ),
            None => None,
        };
        let mut transport = HttpPeerTransport::new(PeerHttpConfig {
            call_timeout: config.peers.call_timeout,
            connect_timeout: config.peers.connect_timeout,
            max_body_bytes: config.peers.max_body_bytes,
            extra_root_ca_pem,
            require_https: !config.is_development(),
        })?;
        match &signer {
            Some(signer) if catalog.current().signs_requests() => {
                tracing::info!(kid = signer.kid(), "peer requests are signed");
                transport = transport.with_signer(signer.clone());
            }
            Some(_) => tracing::info!("peer_auth is off in every network: requests are not signed"),
            None => tracing::warn!("no instance key: peer requests are not signed"),
        }
        let transport: Arc<dyn PeerTransport> = Arc::new(transport);
        let outbox_store = outbox_store(&database);
        let dispatcher = outbox_store.clone().map(|outbox| {
            Arc::new(OutboxDispatcher::new(
                OutboxDeps {
                    outbox,
                    transport: transport.clone(),
                    clock: clock.clone(),
                    timer: Arc::new(TokioTimer),
                    random: Arc::new(SystemRandom),
                },
                config.outbox.clone(),
            ))
        });
        let outbox_admin = match (&outbox_store, &dispatcher) {
            (Some(store), Some(dispatcher)) => Some(Arc::new(
                OutboxAdmin::new(store.clone(), clock.clone(), dispatcher.notifier())
                    .with_dispatcher(dispatcher.clone()),
            )),
            _ => None,
        };
        let mut peer_trust = PeerTrustService::new(
            catalog.clone(),
            identity.clone(),
            cache.clone(),
            clock.clone(),
        );
        if let Some(dispatcher) = &dispatcher {
            // A peer that proves itself is up: its waiting events go at once.
            peer_trust = peer_trust.with_contacts(dispatcher.clone());
        }
        if let Some(keys) = pair_keys {
            peer_trust = peer_trust.with_pair_keys(keys);
        }
        let peer_trust = Arc::new(peer_trust);

        let repository: Arc<dyn ItemRepository> = Arc::new(SqlItemRepository::new(&database));
        let items = Arc::new(ItemService::new(ItemServiceDeps {
            repository: repository.clone(),
            cache: cache.clone(),
            catalog: catalog.clone(),
            clock: clock.clone(),
            ids: Arc::new(UuidV7Generator),
            identity: identity.clone(),
            local_fetch_ttl: config.local_fetch_cache_ttl,
        }));
        let peer_items = Arc::new(PeerItemsService::new(
            repository.clone(),
            cache.clone(),
            catalog.clone(),
            identity.clone(),
        ));
        let network = Arc::new(NetworkFetchService::new(
            NetworkFetchDeps {
                repository: repository.clone(),
                catalog: catalog.clone(),
                identity: identity.clone(),
                transport: transport.clone(),
                cache: cache.clone(),
                clock: clock.clone(),
                timer: Arc::new(TokioTimer),
            },
            NetworkFetchSettings {
                max_cache_ttl: config.peers.max_cache_ttl,
                partial_ttl: Duration::from_secs(5),
                stale_limit: config.peers.stale_limit,
                total_deadline: config.peers.total_deadline,
                breaker: BreakerSettings {
                    failure_threshold: config.peers.breaker_failures,
                    open_for: config.peers.breaker_open,
                },
                client_budget: Limit::per(
                    config.peers.client_budget_per_minute,
                    Duration::from_secs(60),
                ),
            },
        ));
        let action_repository: Arc<dyn ActionRepository> =
            Arc::new(SqlActionRepository::new(&database));
        let actions = Arc::new(ActionService::new(ActionServiceDeps {
            actions: action_repository,
            items: repository.clone(),
            transport,
            catalog: catalog.clone(),
            peer_trust: peer_trust.clone(),
            clock: clock.clone(),
            ids: Arc::new(UuidV7Generator),
            identity: identity.clone(),
            compiler: SchemaCompiler::new(config.allow_extra_schema_data),
        }));
        let accounts = Arc::new(accounts_service(
            &config,
            &database,
            cache.clone(),
            clock.clone(),
        ));
        if let Some((email, password)) = &config.bootstrap_admin {
            let (admin, _) = accounts
                .ensure_admin(email, password.expose(), "Administrator")
                .await
                .context("could not create the administrator of DPG_ADMIN_EMAIL")?;
            tracing::info!(user_id = %admin.id, "administrator account ready");
        }
        let authenticator: Arc<dyn Authenticator> = if config.auth_enabled {
            accounts.clone()
        } else {
            tracing::warn!("authentication is OFF: every caller is the development identity");
            Arc::new(DevelopmentAuthenticator)
        };
        let state = Arc::new(ApiState {
            items,
            actions,
            peer_items,
            network: network.clone(),
            peer_trust,
            public_keys,
            schemas: schemas.clone(),
            health: Arc::new(HealthService::new(repository, cache, catalog)),
            outbox: outbox_admin,
            accounts,
            identity,
            authenticator,
            network_config_source: config.network_config_source.clone(),
            cookies: CookieSettings {
                secure: !config.is_development(),
                max_age_secs: AuthSettings::default().session_ttl.as_secs(),
            },
            cors: Arc::new(CorsPolicy::new(config.allowed_origins.clone())),
            trust_forwarded_for: config.trust_proxy,
        });
        let metrics = telemetry::metrics_handle();
        let pool_db = database.clone();
        let outbox_metrics = dispatcher.clone();
        let app = dpg_openapi::app(
            state,
            HttpSettings {
                limits: BodyLimits {
                    max_bytes: config.body_limit_bytes,
                    max_depth: config.json_max_depth,
                },
                server_url: config.base_url.clone(),
                metrics: Some(Arc::new(move || {
                    for (peer, state) in network.breaker_states() {
                        for candidate in ["closed", "open", "half_open"] {
                            let value = if candidate == state { 1.0 } else { 0.0 };
                            metrics::gauge!("dpg_peer_breaker_state", "peer" => peer.clone(), "state" => candidate).set(value);
                        }
                    }
                    let stats = pool_db.pool_stats();
                    metrics::gauge!("dpg_db_pool_connections", "state" => "in_use")
                        .set(stats.in_use);
                    metrics::gauge!("dpg_db_pool_connections", "state" => "idle").set(stats.idle);
                    metrics::gauge!("dpg_db_pool_connections", "state" => "max").set(stats.max);
                    if let Some(dispatcher) = &outbox_metrics {
                        record_outbox_metrics(&dispatcher.stats());
                    }
                    metrics.render()
                })),
            },
        );
        Ok(Instance {
            config,
            database,
            schemas,
            outbox: dispatcher,
            app: app.boxed(),
        })
    }

    /// Serves on `listener` until `shutdown` resolves, then drains in-flight requests
    /// (bounded) and closes the database pool. The schema refresher runs meanwhile.
    pub async fn serve(
        self,
        listener: Listening,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let refresher = tokio::spawn(refresh_periodically(
            self.schemas.clone(),
            self.config.schema_refresh_interval,
        ));
        let (stop_outbox, outbox_stopped) = futures::channel::oneshot::channel::<()>();
        let outbox = self.outbox.clone().map(|dispatcher| {
            tokio::spawn(async move {
                dispatcher
                    .run(async {
                        let _ = outbox_stopped.await;
                    })
                    .await
            })
        });
        tracing::info!(address = %listener.local_addr, base_url = %self.config.base_url, "listening");
        let result = Server::new_with_acceptor(listener.acceptor)
            .run_with_graceful_shutdown(self.app, shutdown, Some(Duration::from_secs(10)))
            .await;
        refresher.abort();
        // Requests are drained (they may have written outbox rows); now the outbox: stop
        // claiming, finish what is in flight within its bound, give back the rest.
        let _ = stop_outbox.send(());
        if let Some(outbox) = outbox {
            match outbox.await {
                Ok(report) => tracing::info!(
                    released = report.released,
                    abandoned = report.abandoned,
                    "outbox drained"
                ),
                Err(err) => tracing::warn!(error = %err, "the outbox dispatcher failed"),
            }
        }
        self.database.close().await;
        tracing::info!("stopped");
        result.context("server error")
    }
}

/// A bound listening socket; bind first to learn the port (port 0 picks a free one).
pub struct Listening {
    acceptor: poem::listener::TcpAcceptor,
    pub local_addr: SocketAddr,
}

impl Listening {
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Listening> {
        let acceptor = TcpListener::bind(addr.to_string())
            .into_acceptor()
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local_addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .context("listener has no socket address")?;
        Ok(Listening {
            acceptor,
            local_addr,
        })
    }
}

/// The account service on this instance's database.
pub fn accounts_service(
    config: &Config,
    database: &SqlDatabase,
    cache: Arc<dyn Cache>,
    clock: Arc<dyn Clock>,
) -> AuthService {
    AuthService::new(
        AuthServiceDeps {
            users: Arc::new(SqlUserRepository::new(database)),
            sessions: Arc::new(SqlSessionRepository::new(database)),
            api_keys: Arc::new(SqlApiKeyRepository::new(database)),
            hasher: Arc::new(Argon2PasswordHasher::new()),
            secrets: Arc::new(OsSecretGenerator::new()),
            cache,
            credentials: Arc::new(MeteredCache::new(
                MemoryCache::with_max_bytes(16 * 1024 * 1024),
                "memory",
            )),
            clock,
            ids: Arc::new(UuidV7Generator),
        },
        AuthSettings {
            signup_enabled: config.signup_enabled,
            api_key_prefix: config.api_key_prefix.clone(),
            limits: AuthLimits {
                writes_per_key: Limit::per(
                    config.api_key_writes_per_hour,
                    Duration::from_secs(3600),
                ),
                ..AuthLimits::default()
            },
            ..AuthSettings::default()
        },
    )
}

/// The event outbox on this instance's database (an `Option` so that an instance without
/// one runs no dispatcher and its admin routes answer 503).
pub fn outbox_store(database: &SqlDatabase) -> Option<Arc<dyn Outbox>> {
    Some(Arc::new(SqlOutbox::new(database)))
}

/// Outbox gauges and attempt counters for `/metrics` (read at scrape time).
fn record_outbox_metrics(stats: &dpg_core::services::outbox::OutboxStats) {
    if let Some(counts) = stats.counts {
        for (state, value) in [
            ("pending", counts.pending),
            ("delivered", counts.delivered),
            ("dead", counts.dead),
        ] {
            metrics::gauge!("dpg_outbox_entries", "state" => state).set(value as f64);
        }
        metrics::gauge!("dpg_outbox_oldest_pending_seconds")
            .set(counts.oldest_pending_seconds.unwrap_or(0) as f64);
    }
    for (outcome, value) in [
        ("delivered", stats.attempts_delivered),
        ("retry", stats.attempts_retried),
        ("dead", stats.attempts_dead),
        ("expired", stats.expired),
    ] {
        metrics::counter!("dpg_outbox_delivery_attempts_total", "outcome" => outcome)
            .absolute(value);
    }
    metrics::gauge!("dpg_outbox_in_flight").set(stats.in_flight as f64);
}

/// Reloads the network documents with conditional requests at a fixed interval. A failure
/// keeps the documents in force (the core service guarantees it) and is logged.
async fn refresh_periodically(schemas: Arc<NetworkSchemaService>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        match schemas.refresh().await {
            Ok(report) => {
                metrics::counter!("dpg_schema_reloads_total", "outcome" => if report.changed { "changed" } else { "unchanged" })
                    .increment(1);
            }
            Err(err) => {
                metrics::counter!("dpg_schema_reloads_total", "outcome" => "failed").increment(1);
                tracing::warn!(error = %err, "network document refresh failed; the previous documents stay in force");
            }
        }
    }
}

/// `cargo run` from anywhere: when the default network file is not where it is expected,
/// the copy compiled into the binary is written to the data directory and used.
fn use_bundled_network_when_absent(config: &mut Config) -> anyhow::Result<()> {
    let default = [SchemaLocation::File(DEFAULT_NETWORK_FILE.to_string())];
    if config.schema_locations != default || PathBuf::from(DEFAULT_NETWORK_FILE).exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let path = config.data_dir.join("dev.network.json");
    std::fs::write(&path, BUNDLED_NETWORK)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(path = %path.display(), "using the bundled development network document");
    config.schema_locations = vec![SchemaLocation::File(path.display().to_string())];
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}
