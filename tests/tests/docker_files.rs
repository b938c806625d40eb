//! Static checks of the deployment files under `docker/` (no Docker engine runs here): they
//! parse, the services, volumes, health checks and start order are there, only the API port
//! is published, and every variable handed to the API is one the app reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|err| panic!("cannot read {relative}: {err}"))
}

fn compose(relative: &str) -> Value {
    serde_yaml::from_str(&read(relative)).unwrap_or_else(|err| panic!("{relative}: {err}"))
}

/// Every environment variable name the `dpg` binary reads, from its source.
fn names_the_app_reads() -> BTreeSet<String> {
    let pattern = regex::Regex::new(r#"(?:get|var|lookup)\("([A-Z][A-Z0-9_]+)"\)"#).expect("re");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(repo().join("app/src")).expect("app/src") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("source");
            names.extend(pattern.captures_iter(&text).map(|c| c[1].to_string()));
        }
    }
    // Read by the log filter (tracing-subscriber's EnvFilter::from_default_env).
    names.insert("RUST_LOG".to_string());
    assert!(
        names.len() > 30 && names.contains("API_DOMAIN") && names.contains("POSTGRES_HOST"),
        "the scan of app/src found too little: {names:?}"
    );
    names
}

/// `NAME=value` lines of an env file, commented-out examples (`# NAME=...`) included.
fn env_file(relative: &str) -> BTreeMap<String, String> {
    let assignment = regex::Regex::new(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$").expect("re");
    read(relative)
        .lines()
        .filter_map(|line| assignment.captures(line.trim()))
        .map(|c| (c[1].to_string(), c[2].to_string()))
        .collect()
}

fn service<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["services"]
        .get(name)
        .unwrap_or_else(|| panic!("no service {name}"))
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_mapping()
        .map(|map| {
            map.iter()
                .map(|(k, v)| {
                    let value = match v {
                        Value::String(s) => s.clone(),
                        other => serde_yaml::to_string(other)
                            .expect("yaml")
                            .trim()
                            .to_string(),
                    };
                    (k.as_str().expect("name").to_string(), value)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn assert_health_check(service: &Value, name: &str, probe: &str) {
    let test = &service["healthcheck"]["test"];
    let words: Vec<&str> = test
        .as_sequence()
        .unwrap_or_else(|| panic!("{name} has no health check"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        words.join(" ").contains(probe),
        "{name}'s health check {words:?} does not run {probe}"
    );
    assert!(service["healthcheck"]["interval"].is_string(), "{name}");
}

fn assert_waits_for_healthy(service: &Value, name: &str, dependencies: &[&str]) {
    for dependency in dependencies {
        assert_eq!(
            service["depends_on"][*dependency]["condition"].as_str(),
            Some("service_healthy"),
            "{name} must start after {dependency} is healthy"
        );
    }
}

fn assert_volume(doc: &Value, service: &Value, volume: &str, mount: &str) {
    let mounts: Vec<&str> = service["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        mounts.contains(&format!("{volume}:{mount}").as_str()),
        "{volume} is not mounted at {mount}: {mounts:?}"
    );
    assert!(
        doc["volumes"].get(volume).is_some(),
        "{volume} is not declared at the top level"
    );
}

fn published_ports(service: &Value) -> Vec<String> {
    service["ports"]
        .as_sequence()
        .map(|ports| {
            ports
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn assert_reads_every_name(service_env: &BTreeMap<String, String>, who: &str) {
    let known = names_the_app_reads();
    let unknown: Vec<&String> = service_env.keys().filter(|n| !known.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "{who} sets variables dpg never reads: {unknown:?}"
    );
}

#[test]
fn one_instance_compose_has_api_database_and_cache_on_a_private_network() {
    let doc = compose("docker/docker-compose.yml");
    let api = service(&doc, "dpg-api");
    let db = service(&doc, "dpg-db");
    let redis = service(&doc, "dpg-redis");

    assert_eq!(
        api["build"]["dockerfile"].as_str(),
        Some("docker/Dockerfile")
    );
    assert_eq!(api["env_file"].as_str(), Some(".env"));
    assert_health_check(api, "dpg-api", "dpg healthcheck");
    assert_health_check(db, "dpg-db", "pg_isready");
    assert_health_check(redis, "dpg-redis", "redis-cli ping");
    assert_waits_for_healthy(api, "dpg-api", &["dpg-db", "dpg-redis"]);

    assert_volume(&doc, api, "dpg-data", "/var/lib/dpg/data");
    assert_volume(&doc, db, "dpg-db-data", "/var/lib/postgresql/data");
    assert_volume(&doc, redis, "dpg-redis-data", "/data");

    assert_eq!(published_ports(api), vec!["${API_PORT:-2742}:2742"]);
    for (name, other) in [("dpg-db", db), ("dpg-redis", redis)] {
        assert!(
            published_ports(other).is_empty(),
            "{name} must not be published"
        );
    }
    for (name, s) in [("dpg-api", api), ("dpg-db", db), ("dpg-redis", redis)] {
        assert_eq!(s["networks"][0].as_str(), Some("dpg-private"), "{name}");
    }
    assert!(doc["networks"].get("dpg-private").is_some());

    let env = environment(api);
    assert_eq!(env.get("POSTGRES_HOST").map(String::as_str), Some("dpg-db"));
    assert_eq!(
        env.get("REDIS_URL").map(String::as_str),
        Some("redis://dpg-redis:6379")
    );
    assert_reads_every_name(&env, "dpg-api's environment");
}

#[test]
fn the_env_example_names_only_variables_the_app_reads_and_makes_a_valid_configuration() {
    let example = env_file("docker/.env.example");
    assert_reads_every_name(&example, "docker/.env.example");
    assert_eq!(
        example.get("INSTANCE_ENV").map(String::as_str),
        Some("production")
    );

    // What the API container sees: the example's active lines under compose's environment.
    let active: BTreeMap<String, String> = read("docker/.env.example")
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let doc = compose("docker/docker-compose.yml");
    let mut seen = active.clone();
    for (name, value) in environment(service(&doc, "dpg-api")) {
        let resolved = if value.starts_with("${") {
            let variable = value
                .trim_start_matches("${")
                .split([':', '}'])
                .next()
                .expect("name")
                .to_string();
            active.get(&variable).cloned().unwrap_or_default()
        } else {
            value
        };
        seen.insert(name, resolved);
    }
    let config = dpg_app::Config::from_lookup(|name| seen.get(name).cloned())
        .unwrap_or_else(|err| panic!("the example does not configure an instance: {err}"));
    assert!(!config.is_development());
    assert_eq!(config.database.kind(), "postgresql");
}

#[test]
fn the_network_compose_runs_three_instances_that_list_each_other() {
    let doc = compose("docker/docker-compose.network.yml");
    let document: serde_json::Value =
        serde_json::from_str(&read("docker/network/yellow_dot.compose.json")).expect("json");
    let listed: BTreeSet<&str> = document["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter_map(|i| i["instance_url"].as_str())
        .collect();
    let mut host_ports = BTreeSet::new();
    for name in ["dpg-a", "dpg-b", "dpg-c"] {
        let api = service(&doc, name);
        let db_name = format!("{name}-db");
        let redis_name = format!("{name}-redis");
        assert_health_check(api, name, "dpg healthcheck");
        assert_health_check(service(&doc, &db_name), &db_name, "pg_isready");
        assert_health_check(service(&doc, &redis_name), &redis_name, "redis-cli ping");
        assert_waits_for_healthy(api, name, &[&db_name, &redis_name]);
        assert_volume(&doc, api, &format!("{name}-data"), "/var/lib/dpg/data");
        assert_volume(
            &doc,
            service(&doc, &db_name),
            &format!("{name}-db-data"),
            "/var/lib/postgresql/data",
        );
        assert!(published_ports(service(&doc, &db_name)).is_empty());
        assert!(published_ports(service(&doc, &redis_name)).is_empty());
        let ports = published_ports(api);
        assert_eq!(ports.len(), 1, "{name} publishes only its API port");
        host_ports.insert(ports[0].clone());

        let env = environment(api);
        assert_reads_every_name(&env, name);
        assert_eq!(env["POSTGRES_HOST"], db_name);
        let url = &env["API_DOMAIN"];
        assert!(listed.contains(url.as_str()), "{url} is not in the network");
        let config = dpg_app::Config::from_lookup(|n| env.get(n).cloned())
            .unwrap_or_else(|err| panic!("{name} is not configured: {err}"));
        assert_eq!(config.database.kind(), "postgresql");
    }
    assert_eq!(host_ports.len(), 3, "distinct host ports");
}

#[test]
fn the_image_is_multi_stage_non_root_and_probes_itself() {
    let dockerfile = read("docker/Dockerfile");
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(stages.len(), 2, "build and runtime stages: {stages:?}");
    let version = regex::Regex::new(r"FROM rust:1\.(\d+)")
        .expect("re")
        .captures(stages[0])
        .map(|c| c[1].parse::<u32>().expect("minor"))
        .expect("the build stage uses the rust image");
    let workspace = read("Cargo.toml");
    let required = regex::Regex::new(r#"rust-version = "1\.(\d+)""#)
        .expect("re")
        .captures(&workspace)
        .map(|c| c[1].parse::<u32>().expect("minor"))
        .expect("rust-version");
    assert!(version >= required, "rust:1.{version} < 1.{required}");
    assert!(dockerfile.contains("USER dpg"), "runs as a non-root user");
    assert!(dockerfile.contains("API_PORT=2742"));
    assert!(dockerfile.contains("EXPOSE 2742"));
    assert!(
        dockerfile.contains(r#"CMD ["/usr/local/bin/dpg", "healthcheck"]"#),
        "HEALTHCHECK through the binary"
    );
    assert!(
        !dockerfile
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("curl")),
        "no curl in the image"
    );
    assert!(
        dockerfile.contains("COPY --from=build /src/examples"),
        "bundles the example network"
    );
}
