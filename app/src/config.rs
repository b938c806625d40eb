//! Typed configuration from the environment, with the reference's variable names so that an
//! operator's existing `.env` keeps working, and the embedded default when nothing is set.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use dpg_core::model::{ServedBindings, base_url};
use dpg_core::ports::SchemaLocation;
use dpg_core::services::OutboxSettings;

/// The bundled network document of the embedded default (yellow_dot, this instance only).
pub const DEFAULT_NETWORK_FILE: &str = "examples/dev.network.json";
pub const BUNDLED_NETWORK: &str = include_str!("../../examples/dev.network.json");
/// `API_PORT` when unset (the reference's port).
pub const DEFAULT_PORT: u16 = 2742;
const DEFAULT_SERVED_DOMAINS: &str = "yellow_dot/student,yellow_dot/tutor";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseConfig {
    Postgres { url: Secret },
    Sqlite { path: PathBuf },
}

impl DatabaseConfig {
    pub fn url(&self) -> String {
        match self {
            DatabaseConfig::Postgres { url } => url.expose().to_string(),
            DatabaseConfig::Sqlite { path } => format!("sqlite://{}?mode=rwc", path.display()),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            DatabaseConfig::Postgres { .. } => "postgresql",
            DatabaseConfig::Sqlite { .. } => "sqlite",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheConfig {
    Redis { url: Secret, key_prefix: String },
    Memory,
}

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where this instance's signing key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceKeySource {
    /// `DPG_INSTANCE_KEY_FILE`: a PKCS#8 PEM file (`dpg keygen` writes one).
    File(PathBuf),
    /// `DPG_INSTANCE_KEY`: the base64 32-byte seed.
    Seed(Secret),
}

/// Calls to other instances and network-wide reads.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerConfig {
    /// One peer call, connection included (`PEER_TIMEOUT_MS`).
    pub call_timeout: Duration,
    /// Connecting to a peer (`PEER_CONNECT_TIMEOUT_MS`).
    pub connect_timeout: Duration,
    /// Largest peer answer read (`PEER_MAX_BODY_BYTES`).
    pub max_body_bytes: u64,
    /// One whole network read (`NETWORK_FETCH_DEADLINE_MS`).
    pub total_deadline: Duration,
    /// Upper bound of a client's `cache_ttl_seconds` (`NETWORK_CACHE_MAX_TTL_SECONDS`).
    pub max_cache_ttl: Duration,
    /// Age limit of the page served when no instance answers (`NETWORK_STALE_LIMIT_SECONDS`).
    pub stale_limit: Duration,
    /// Failures that open a peer's circuit breaker (`PEER_BREAKER_FAILURES`).
    pub breaker_failures: u32,
    /// How long an open breaker waits before one probe (`PEER_BREAKER_OPEN_SECONDS`).
    pub breaker_open: Duration,
    /// Network-read cache misses one client may cause per minute (`NETWORK_FETCH_BUDGET_PER_MINUTE`).
    pub client_budget_per_minute: u32,
    /// This instance's signing key; without one peer requests go unsigned.
    pub instance_key: Option<InstanceKeySource>,
    /// An extra trust anchor for peers' TLS certificates (`PEER_CA_FILE`).
    pub ca_file: Option<PathBuf>,
    /// Sign reads with the pair key this instance shares with a peer instead of its
    /// Ed25519 key (`PEER_PAIR_KEY_READS`, default true).
    pub pair_key_reads: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub instance_name: String,
    pub environment: Environment,
    /// True when `INSTANCE_ENV` was not set (development assumed, logged loudly).
    pub environment_defaulted: bool,
    pub base_url: String,
    pub bind: IpAddr,
    pub port: u16,
    pub served: ServedBindings,
    pub network_config_source: String,
    pub schema_locations: Vec<SchemaLocation>,
    pub allow_extra_schema_data: bool,
    pub schema_refresh_interval: Duration,
    pub schema_fetch_allow_private: bool,
    pub schema_fetch_allowed_cidrs: Vec<String>,
    pub data_dir: PathBuf,
    pub database: DatabaseConfig,
    /// Most database connections (`DATABASE_POOL_SIZE`); `None` = the backend's default.
    pub database_pool_size: Option<u32>,
    pub cache: CacheConfig,
    pub auth_enabled: bool,
    /// Anyone may open an account (`AUTH_SIGNUP_ENABLED`); otherwise only administrators.
    pub signup_enabled: bool,
    /// What API keys start with (`API_KEY_PREFIX`, default `<instance name>_`).
    pub api_key_prefix: String,
    /// `ALLOWED_ORIGINS`; empty = the reference's localhost defaults.
    pub allowed_origins: Vec<String>,
    /// Hourly write budget of one API key (`API_KEY_WRITES_PER_HOUR`).
    pub api_key_writes_per_hour: u32,
    /// Believe `X-Forwarded-For` for the client address (`TRUST_PROXY=true`).
    pub trust_proxy: bool,
    /// Created (or promoted) as administrator at start-up (`DPG_ADMIN_EMAIL`, `DPG_ADMIN_PASSWORD`).
    pub bootstrap_admin: Option<(String, Secret)>,
    pub peers: PeerConfig,
    /// Delivery of events to source instances (`OUTBOX_*`).
    pub outbox: OutboxSettings,
    pub body_limit_bytes: usize,
    pub json_max_depth: usize,
    pub local_fetch_cache_ttl: Duration,
    pub log_json: bool,
}

impl Config {
    /// Reads the process environment (after `.env`, which never overrides set variables).
    pub fn from_process_env() -> Result<Config, String> {
        let _ = dotenvy::dotenv();
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from a variable lookup; errors name the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let (environment, environment_defaulted) = match get("INSTANCE_ENV").as_deref() {
            None => (Environment::Development, true),
            Some("development") => (Environment::Development, false),
            Some("production") => (Environment::Production, false),
            Some(other) => {
                return Err(format!(
                    "INSTANCE_ENV must be development or production, not \"{other}\""
                ));
            }
        };
        let development = environment == Environment::Development;
        let port = parse_or("API_PORT", get("API_PORT"), DEFAULT_PORT)?;
        let api_domain = get("API_DOMAIN").unwrap_or_else(|| "http://127.0.0.1".to_string());
        let base_url = base_url(&api_domain, port, development)?;
        let default_bind = if development { "127.0.0.1" } else { "0.0.0.0" };
        let bind = parse_or(
            "API_BIND",
            get("API_BIND"),
            default_bind.parse::<IpAddr>().map_err(|e| e.to_string())?,
        )?;
        let served = ServedBindings::parse(
            &get("SERVED_DOMAINS").unwrap_or_else(|| DEFAULT_SERVED_DOMAINS.to_string()),
        )?;
        let data_dir = PathBuf::from(get("DPG_DATA_DIR").unwrap_or_else(|| "data".to_string()));
        let instance_name = get("INSTANCE_NAME").unwrap_or_else(|| "dpg".to_string());
        let api_key_prefix =
            get("API_KEY_PREFIX").unwrap_or_else(|| api_key_prefix_of(&instance_name));

        let network_config_source =
            get("NETWORK_CONFIG_SOURCE").unwrap_or_else(|| "local".to_string());
        let schema_locations = match network_config_source.as_str() {
            "local" => get("NETWORK_CONFIG_LOCAL_FILE")
                .unwrap_or_else(|| DEFAULT_NETWORK_FILE.to_string())
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|path| SchemaLocation::File(path.to_string()))
                .collect(),
            "remote" => remote_locations(
                get("NETWORK_CONFIG_URLS"),
                get("SCHEMA_REGISTRY_URL"),
                &served,
            )?,
            other => {
                return Err(format!(
                    "NETWORK_CONFIG_SOURCE must be local or remote, not \"{other}\""
                ));
            }
        };
        if schema_locations.is_empty() {
            return Err("NETWORK_CONFIG_LOCAL_FILE lists no file".to_string());
        }

        let auth_enabled = match (environment, get("AUTH_MIDDLEWARE_ENABLED").as_deref()) {
            (Environment::Production, Some(v)) if v != "true" => {
                return Err(
                    "AUTH_MIDDLEWARE_ENABLED cannot be turned off in production".to_string()
                );
            }
            (Environment::Production, _) => true,
            (Environment::Development, value) => value == Some("true"),
        };

        let config = Config {
            database: database_config(&get, &data_dir)?,
            database_pool_size: get("DATABASE_POOL_SIZE")
                .map(|raw| parse_or("DATABASE_POOL_SIZE", Some(raw), 0u32))
                .transpose()?
                .filter(|size| *size > 0),
            cache: cache_config(&get, &instance_name),
            instance_name,
            environment,
            environment_defaulted,
            base_url,
            bind,
            port,
            served,
            network_config_source,
            schema_locations,
            allow_extra_schema_data: get("ALLOW_EXTRA_SCHEMA_DATA").as_deref() == Some("true"),
            schema_refresh_interval: Duration::from_secs(parse_or(
                "SCHEMA_REFRESH_INTERVAL_SECONDS",
                get("SCHEMA_REFRESH_INTERVAL_SECONDS"),
                300u64,
            )?),
            schema_fetch_allow_private: match get("SCHEMA_FETCH_ALLOW_PRIVATE") {
                Some(v) => v == "true",
                None => development,
            },
            schema_fetch_allowed_cidrs: get("SCHEMA_FETCH_ALLOWED_CIDRS")
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            data_dir,
            peers: PeerConfig {
                call_timeout: Duration::from_millis(parse_or(
                    "PEER_TIMEOUT_MS",
                    get("PEER_TIMEOUT_MS"),
                    2000u64,
                )?),
                connect_timeout: Duration::from_millis(parse_or(
                    "PEER_CONNECT_TIMEOUT_MS",
                    get("PEER_CONNECT_TIMEOUT_MS"),
                    1000u64,
                )?),
                max_body_bytes: parse_or(
                    "PEER_MAX_BODY_BYTES",
                    get("PEER_MAX_BODY_BYTES"),
                    4 * 1024 * 1024u64,
                )?,
                total_deadline: Duration::from_millis(parse_or(
                    "NETWORK_FETCH_DEADLINE_MS",
                    get("NETWORK_FETCH_DEADLINE_MS"),
                    5000u64,
                )?),
                max_cache_ttl: Duration::from_secs(parse_or(
                    "NETWORK_CACHE_MAX_TTL_SECONDS",
                    get("NETWORK_CACHE_MAX_TTL_SECONDS"),
                    3600u64,
                )?),
                stale_limit: Duration::from_secs(parse_or(
                    "NETWORK_STALE_LIMIT_SECONDS",
                    get("NETWORK_STALE_LIMIT_SECONDS"),
                    3600u64,
                )?),
                breaker_failures: parse_or(
                    "PEER_BREAKER_FAILURES",
                    get("PEER_BREAKER_FAILURES"),
                    5u32,
                )?
                .max(1),
                breaker_open: Duration::from_secs(parse_or(
                    "PEER_BREAKER_OPEN_SECONDS",
                    get("PEER_BREAKER_OPEN_SECONDS"),
                    10u64,
                )?),
                client_budget_per_minute: parse_or(
                    "NETWORK_FETCH_BUDGET_PER_MINUTE",
                    get("NETWORK_FETCH_BUDGET_PER_MINUTE"),
                    120u32,
                )?,
                instance_key: match (get("DPG_INSTANCE_KEY_FILE"), get("DPG_INSTANCE_KEY")) {
                    (Some(path), None) => Some(InstanceKeySource::File(PathBuf::from(path))),
                    (None, Some(seed)) => Some(InstanceKeySource::Seed(Secret::new(seed))),
                    (None, None) => None,
                    (Some(_), Some(_)) => {
                        return Err(
                            "set DPG_INSTANCE_KEY_FILE or DPG_INSTANCE_KEY, not both".to_string()
                        );
                    }
                },
                ca_file: get("PEER_CA_FILE").map(PathBuf::from),
                pair_key_reads: match get("PEER_PAIR_KEY_READS").as_deref() {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(other) => {
                        return Err(format!(
                            "PEER_PAIR_KEY_READS must be true or false, not {other:?}"
                        ));
                    }
                },
            },
            outbox: outbox_settings(&get)?,
            auth_enabled,
            signup_enabled: match get("AUTH_SIGNUP_ENABLED") {
                Some(v) => v == "true",
                None => true,
            },
            api_key_prefix,
            allowed_origins: get("ALLOWED_ORIGINS")
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            trust_proxy: get("TRUST_PROXY").as_deref() == Some("true"),
            api_key_writes_per_hour: parse_or(
                "API_KEY_WRITES_PER_HOUR",
                get("API_KEY_WRITES_PER_HOUR"),
                10_000u32,
            )?,
            bootstrap_admin: match (get("DPG_ADMIN_EMAIL"), get("DPG_ADMIN_PASSWORD")) {
                (Some(email), Some(password)) => Some((email, Secret::new(password))),
                (None, None) => None,
                _ => return Err("DPG_ADMIN_EMAIL and DPG_ADMIN_PASSWORD go together".to_string()),
            },
            body_limit_bytes: parse_or(
                "BODY_LIMIT_BYTES",
                get("BODY_LIMIT_BYTES"),
                1024 * 1024usize,
            )?,
            json_max_depth: parse_or("JSON_MAX_DEPTH", get("JSON_MAX_DEPTH"), 32usize)?,
            local_fetch_cache_ttl: Duration::from_millis(parse_or(
                "LOCAL_FETCH_CACHE_TTL_MS",
                get("LOCAL_FETCH_CACHE_TTL_MS"),
                1000u64,
            )?),
            log_json: get("LOG_FORMAT").as_deref() != Some("pretty"),
        };
        // A lease shorter than one delivery would let another replica send the same event
        // while the first attempt is still running.
        if config.outbox.lease <= config.peers.call_timeout {
            return Err(format!(
                "OUTBOX_LEASE_SECONDS ({} s) must be longer than PEER_TIMEOUT_MS ({} ms)",
                config.outbox.lease.as_secs(),
                config.peers.call_timeout.as_millis()
            ));
        }
        Ok(config)
    }

    pub fn is_development(&self) -> bool {
        self.environment == Environment::Development
    }
}

/// The reference's key prefix: the instance name lower-cased, plus `_` (letters, digits and
/// `_` kept, so keys stay one token).
fn api_key_prefix_of(instance_name: &str) -> String {
    let cleaned: String = instance_name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let cleaned = if cleaned.is_empty() {
        "dpg".to_string()
    } else {
        cleaned
    };
    format!("{cleaned}_")
}

fn outbox_settings(get: &impl Fn(&str) -> Option<String>) -> Result<OutboxSettings, String> {
    let defaults = OutboxSettings::default();
    let millis = |name: &str, default: Duration| -> Result<Duration, String> {
        let ms = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
        Ok(Duration::from_millis(parse_or(name, get(name), ms)?))
    };
    let seconds = |name: &str, unit: u64, default: Duration| -> Result<Duration, String> {
        let value = parse_or(name, get(name), default.as_secs() / unit)?;
        Ok(Duration::from_secs(value.saturating_mul(unit)))
    };
    Ok(OutboxSettings {
        poll_interval: millis("OUTBOX_POLL_INTERVAL_MS", defaults.poll_interval)?
            .max(Duration::from_millis(10)),
        concurrency_per_destination: parse_or(
            "OUTBOX_CONCURRENCY_PER_PEER",
            get("OUTBOX_CONCURRENCY_PER_PEER"),
            defaults.concurrency_per_destination,
        )?
        .max(1),
        // At most 100: the receiver's limit per request.
        batch_events: parse_or(
            "OUTBOX_BATCH_EVENTS",
            get("OUTBOX_BATCH_EVENTS"),
            defaults.batch_events,
        )?
        .clamp(1, 100),
        backoff_base: millis("OUTBOX_BACKOFF_BASE_MS", defaults.backoff_base)?
            .max(Duration::from_millis(1)),
        backoff_cap_young: seconds("OUTBOX_BACKOFF_CAP_SECONDS", 1, defaults.backoff_cap_young)?,
        backoff_cap_old: seconds(
            "OUTBOX_BACKOFF_LATE_CAP_SECONDS",
            1,
            defaults.backoff_cap_old,
        )?,
        lease: seconds("OUTBOX_LEASE_SECONDS", 1, defaults.lease)?.max(Duration::from_secs(1)),
        horizon: seconds("OUTBOX_HORIZON_HOURS", 3600, defaults.horizon)?,
        retention: seconds("OUTBOX_RETENTION_DAYS", 86_400, defaults.retention)?,
        drain_timeout: seconds("OUTBOX_DRAIN_TIMEOUT_SECONDS", 1, defaults.drain_timeout)?,
        ..defaults
    })
}

fn parse_or<T: std::str::FromStr>(
    name: &str,
    value: Option<String>,
    default: T,
) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match value {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .map_err(|e| format!("{name}=\"{raw}\" is invalid: {e}")),
    }
}

/// `DATABASE_URL`, `POSTGRES_URL` or the split `POSTGRES_*` variables select PostgreSQL;
/// nothing selects the embedded SQLite file.
fn database_config(
    get: &impl Fn(&str) -> Option<String>,
    data_dir: &std::path::Path,
) -> Result<DatabaseConfig, String> {
    if let Some(url) = get("DATABASE_URL") {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseConfig::Postgres {
                url: Secret::new(url),
            });
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            return Ok(DatabaseConfig::Sqlite {
                path: PathBuf::from(path),
            });
        }
        return Err(
            "DATABASE_URL must start with postgres://, postgresql:// or sqlite://".to_string(),
        );
    }
    if let Some(url) = get("POSTGRES_URL") {
        return Ok(DatabaseConfig::Postgres {
            url: Secret::new(url),
        });
    }
    let split = [
        "POSTGRES_HOST",
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
        "POSTGRES_DB",
        "POSTGRES_PORT",
    ];
    if split.iter().any(|name| get(name).is_some()) {
        let user = get("POSTGRES_USER")
            .ok_or("POSTGRES_USER is required with the POSTGRES_* variables")?;
        let db =
            get("POSTGRES_DB").ok_or("POSTGRES_DB is required with the POSTGRES_* variables")?;
        let host = get("POSTGRES_HOST").unwrap_or_else(|| "127.0.0.1".to_string());
        let port = get("POSTGRES_PORT")
            .or_else(|| get("DATABASE_PORT"))
            .unwrap_or_else(|| "5432".to_string());
        let password = get("POSTGRES_PASSWORD")
            .map(|p| format!(":{}", percent_encode(&p)))
            .unwrap_or_default();
        return Ok(DatabaseConfig::Postgres {
            url: Secret::new(format!(
                "postgres://{}{password}@{host}:{port}/{db}",
                percent_encode(&user)
            )),
        });
    }
    Ok(DatabaseConfig::Sqlite {
        path: data_dir.join("dpg.db"),
    })
}

/// `REDIS_URL` or `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD` select Redis; else in-process.
fn cache_config(get: &impl Fn(&str) -> Option<String>, instance_name: &str) -> CacheConfig {
    let key_prefix = get("REDIS_KEY_PREFIX").unwrap_or_else(|| format!("dpg:{instance_name}:"));
    if let Some(url) = get("REDIS_URL") {
        return CacheConfig::Redis {
            url: Secret::new(url),
            key_prefix,
        };
    }
    if get("REDIS_HOST").is_some() || get("REDIS_PORT").is_some() || get("REDIS_PASSWORD").is_some()
    {
        let host = get("REDIS_HOST").unwrap_or_else(|| "127.0.0.1".to_string());
        let port = get("REDIS_PORT").unwrap_or_else(|| "6379".to_string());
        let auth = get("REDIS_PASSWORD")
            .map(|p| format!(":{}@", percent_encode(&p)))
            .unwrap_or_default();
        return CacheConfig::Redis {
            url: Secret::new(format!("redis://{auth}{host}:{port}")),
            key_prefix,
        };
    }
    CacheConfig::Memory
}

/// The reference's remote list: `NETWORK_CONFIG_URLS` (`net=url,...`), else
/// `SCHEMA_REGISTRY_URL` as a base URL (one document per served network) or a `net=url` list.
fn remote_locations(
    urls: Option<String>,
    registry: Option<String>,
    served: &ServedBindings,
) -> Result<Vec<SchemaLocation>, String> {
    let (variable, list) = match (urls, registry) {
        (Some(list), _) => ("NETWORK_CONFIG_URLS", list),
        (None, Some(list)) => ("SCHEMA_REGISTRY_URL", list),
        (None, None) => {
            return Err("NETWORK_CONFIG_URLS or SCHEMA_REGISTRY_URL is required when NETWORK_CONFIG_SOURCE=remote".to_string());
        }
    };
    let entries: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    if variable == "SCHEMA_REGISTRY_URL" && entries.iter().all(|e| !e.contains('=')) {
        let [base] = entries.as_slice() else {
            return Err(
                "SCHEMA_REGISTRY_URL must be one base URL or a list of network=url entries"
                    .to_string(),
            );
        };
        let base = url::Url::parse(&format!("{}/", base.trim_end_matches('/')))
            .map_err(|e| format!("SCHEMA_REGISTRY_URL is not a valid URL: {e}"))?;
        let networks = served.networks();
        if networks.is_empty() {
            return Err("SCHEMA_REGISTRY_URL as a base URL needs SERVED_DOMAINS".to_string());
        }
        return networks
            .iter()
            .map(|network| {
                base.join(&format!("{network}/network.json"))
                    .map(|u| SchemaLocation::Url(u.to_string()))
                    .map_err(|e| format!("SCHEMA_REGISTRY_URL: {e}"))
            })
            .collect();
    }
    entries
        .into_iter()
        .map(|entry| {
            let (_, url) = entry.split_once('=').ok_or_else(|| {
                format!("Invalid {variable} entry \"{entry}\". Expected \"network=url\".")
            })?;
            let url = url.trim();
            let normalized = if url.ends_with(".json") {
                url.to_string()
            } else {
                format!("{}/network.json", url.trim_end_matches('/'))
            };
            url::Url::parse(&normalized)
                .map(|u| SchemaLocation::Url(u.to_string()))
                .map_err(|e| format!("Invalid {variable} entry \"{entry}\": {e}"))
        })
        .collect()
}

fn percent_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn nothing_set_is_the_embedded_default() {
        let c = config(&[]).expect("defaults");
        assert_eq!(c.environment, Environment::Development);
        assert!(c.environment_defaulted);
        assert_eq!(c.base_url, "http://127.0.0.1:2742");
        assert_eq!(c.bind.to_string(), "127.0.0.1");
        assert_eq!(
            c.database,
            DatabaseConfig::Sqlite {
                path: PathBuf::from("data/dpg.db")
            }
        );
        assert_eq!(c.cache, CacheConfig::Memory);
        assert!(!c.auth_enabled);
        assert_eq!(
            c.schema_locations,
            vec![SchemaLocation::File(DEFAULT_NETWORK_FILE.into())]
        );
        assert_eq!(c.served.iter().count(), 2);
        assert!(c.signup_enabled);
        assert_eq!(c.api_key_prefix, "dpg_");
        assert!(c.allowed_origins.is_empty());
        assert_eq!(c.bootstrap_admin, None);
        assert_eq!(c.outbox, OutboxSettings::default());
        assert!(c.peers.pair_key_reads);
    }

    #[test]
    fn pair_key_reads_can_be_switched_off_and_nothing_else() {
        let off = config(&[("PEER_PAIR_KEY_READS", "false")]).expect("off");
        assert!(!off.peers.pair_key_reads);
        let on = config(&[("PEER_PAIR_KEY_READS", "true")]).expect("on");
        assert!(on.peers.pair_key_reads);
        let error = config(&[("PEER_PAIR_KEY_READS", "no")]).expect_err("refused");
        assert!(error.contains("PEER_PAIR_KEY_READS"), "{error}");
    }

    #[test]
    fn outbox_settings() {
        let c = config(&[
            ("OUTBOX_POLL_INTERVAL_MS", "250"),
            ("OUTBOX_CONCURRENCY_PER_PEER", "0"),
            ("OUTBOX_BATCH_EVENTS", "500"),
            ("OUTBOX_BACKOFF_BASE_MS", "500"),
            ("OUTBOX_HORIZON_HOURS", "24"),
            ("OUTBOX_RETENTION_DAYS", "2"),
        ])
        .expect("outbox");
        assert_eq!(c.outbox.poll_interval, Duration::from_millis(250));
        assert_eq!(c.outbox.concurrency_per_destination, 1);
        assert_eq!(c.outbox.batch_events, 100, "the receivers' limit");
        assert_eq!(c.outbox.backoff_base, Duration::from_millis(500));
        assert_eq!(c.outbox.horizon, Duration::from_secs(24 * 3600));
        assert_eq!(c.outbox.retention, Duration::from_secs(2 * 86_400));
        assert_eq!(c.outbox.backoff_cap_young, Duration::from_secs(60));
        let err = config(&[("OUTBOX_HORIZON_HOURS", "soon")]).expect_err("invalid");
        assert!(err.contains("OUTBOX_HORIZON_HOURS"), "{err}");
        let err = config(&[("OUTBOX_LEASE_SECONDS", "2"), ("PEER_TIMEOUT_MS", "5000")])
            .expect_err("lease too short");
        assert!(err.contains("OUTBOX_LEASE_SECONDS"), "{err}");
    }

    #[test]
    fn account_settings() {
        let c = config(&[
            ("INSTANCE_NAME", "DPG-A"),
            ("AUTH_SIGNUP_ENABLED", "false"),
            (
                "ALLOWED_ORIGINS",
                "https://ui.example.org, http://localhost:3000",
            ),
            ("DPG_ADMIN_EMAIL", "root@example.org"),
            ("DPG_ADMIN_PASSWORD", "a long password"),
        ])
        .expect("valid");
        assert!(!c.signup_enabled);
        assert_eq!(c.api_key_prefix, "dpga_");
        assert_eq!(
            c.allowed_origins,
            vec!["https://ui.example.org", "http://localhost:3000"]
        );
        assert!(c.bootstrap_admin.is_some());
        assert!(config(&[("DPG_ADMIN_EMAIL", "root@example.org")]).is_err());
    }

    #[test]
    fn production_enforces_auth_and_refuses_the_switch() {
        let c = config(&[
            ("INSTANCE_ENV", "production"),
            ("API_DOMAIN", "https://api.example.org"),
        ])
        .expect("prod");
        assert!(c.auth_enabled);
        assert!(!c.schema_fetch_allow_private);
        assert_eq!(c.base_url, "https://api.example.org");
        assert!(
            config(&[
                ("INSTANCE_ENV", "production"),
                ("AUTH_MIDDLEWARE_ENABLED", "false")
            ])
            .is_err()
        );
        assert!(config(&[("INSTANCE_ENV", "staging")]).is_err());
    }

    #[test]
    fn storage_selection_follows_the_reference_variables() {
        let c = config(&[("POSTGRES_URL", "postgres://u@h/db")]).expect("pg");
        assert_eq!(c.database.kind(), "postgresql");
        let c = config(&[
            ("POSTGRES_USER", "u"),
            ("POSTGRES_PASSWORD", "p@ss"),
            ("POSTGRES_DB", "d"),
            ("DATABASE_PORT", "6000"),
        ])
        .expect("split");
        assert_eq!(c.database.url(), "postgres://u:p%40ss@127.0.0.1:6000/d");
        let c = config(&[("REDIS_HOST", "r"), ("REDIS_PASSWORD", "")]).expect("redis");
        assert_eq!(
            c.cache,
            CacheConfig::Redis {
                url: Secret::new("redis://r:6379"),
                key_prefix: "dpg:dpg:".into()
            }
        );
        assert!(config(&[("DATABASE_URL", "mysql://x")]).is_err());
    }

    #[test]
    fn remote_sources_follow_the_reference_rules() {
        let c = config(&[
            ("NETWORK_CONFIG_SOURCE", "remote"),
            (
                "SCHEMA_REGISTRY_URL",
                "https://registry.example.com/schemas",
            ),
            ("SERVED_DOMAINS", "yellow_dot/student,blue_dot/seeker"),
        ])
        .expect("registry base");
        assert_eq!(
            c.schema_locations,
            vec![
                SchemaLocation::Url(
                    "https://registry.example.com/schemas/yellow_dot/network.json".into()
                ),
                SchemaLocation::Url(
                    "https://registry.example.com/schemas/blue_dot/network.json".into()
                ),
            ]
        );
        let c = config(&[
            ("NETWORK_CONFIG_SOURCE", "remote"),
            (
                "NETWORK_CONFIG_URLS",
                "a=https://r.example/a.json, b=https://r.example/b",
            ),
        ])
        .expect("urls");
        assert_eq!(
            c.schema_locations,
            vec![
                SchemaLocation::Url("https://r.example/a.json".into()),
                SchemaLocation::Url("https://r.example/b/network.json".into()),
            ]
        );
        let err = config(&[
            ("NETWORK_CONFIG_SOURCE", "remote"),
            ("NETWORK_CONFIG_URLS", "https://r.example/a.json"),
        ])
        .expect_err("entry without name");
        assert!(err.contains("Expected \"network=url\""), "{err}");
        assert!(config(&[("NETWORK_CONFIG_SOURCE", "remote")]).is_err());
    }

    #[test]
    fn local_file_accepts_a_comma_list() {
        let c = config(&[("NETWORK_CONFIG_LOCAL_FILE", "a.json, b.json")]).expect("list");
        assert_eq!(
            c.schema_locations,
            vec![
                SchemaLocation::File("a.json".into()),
                SchemaLocation::File("b.json".into())
            ]
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let c = config(&[("POSTGRES_URL", "postgres://u:hunter2@h/db")]).expect("pg");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
