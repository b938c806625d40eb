//! `dpg devnet` end to end: three instances come up with keys and sample data, federation
//! works across them (a network read, the seeded action's events on the student's
//! instance), Ctrl-C stops every instance, and a restart keeps the data without seeding
//! twice.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Start-up includes three migrations and the seeding over HTTP.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The `dpg` binary next to this test's executable (`target/<profile>/dpg`).
fn dpg_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let binary = profile_dir.join("dpg");
    assert!(
        binary.exists(),
        "{} is missing: build the workspace first (`cargo build -p dpg-app`)",
        binary.display()
    );
    binary
}

/// A base port with the next two free as well.
fn three_free_ports() -> u16 {
    for _ in 0..200 {
        let base = 20_000 + (rand_u16() % 30_000);
        let all_free = (0..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no three consecutive free loopback ports");
}

fn rand_u16() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    (nanos ^ std::process::id()) as u16
}

/// Starts `dpg devnet` and waits for its walkthrough; returns the child and what it printed.
async fn start(dir: &std::path::Path, base_port: u16, reset: bool) -> (Child, String) {
    let mut command = Command::new(dpg_binary());
    command
        .args(["devnet", "--base-port", &base_port.to_string(), "--dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if reset {
        command.arg("--reset");
    }
    let mut child = command.spawn().expect("dpg devnet starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = String::new();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("devnet was not up within {START_TIMEOUT:?}:\n{printed}"))
            .expect("read stdout");
        let Some(line) = line else {
            panic!("devnet exited before it was up:\n{printed}");
        };
        printed.push_str(&line);
        printed.push('\n');
        if line.contains("Ctrl-C stops every instance") {
            // Keep draining so the child never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (child, printed);
        }
    }
}

/// SIGINT, as Ctrl-C in a terminal; every instance must stop and the command exit cleanly.
async fn interrupt(mut child: Child, base_port: u16) {
    let pid = child.id().expect("pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("devnet stops within 60 s of Ctrl-C")
        .expect("exit status");
    assert!(exit.success(), "devnet exit: {exit}");
    for port in base_port..base_port + 3 {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is still taken: an instance outlived devnet"
        );
    }
}

async fn get(client: &reqwest::Client, url: &str, user: &str) -> Value {
    let response = client
        .get(url)
        .header("x-dev-user-id", user)
        .send()
        .await
        .expect("answer");
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.expect("json")
}

async fn students(client: &reqwest::Client, base_port: u16) -> Value {
    // A distinct cache_ttl_seconds each time, so the read is a fresh fan-out.
    let ttl = 300 + rand_u16() % 1000;
    get(
        client,
        &format!(
            "http://127.0.0.1:{base_port}/api/v1/network/item/fetch?item_network=yellow_dot&item_domain=student&limit=50&cache_ttl_seconds={ttl}"
        ),
        "anyone",
    )
    .await
}

#[tokio::test]
async fn devnet_starts_a_seeded_signed_network_stops_on_ctrl_c_and_keeps_its_data() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let base_port = three_free_ports();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");

    let (child, printed) = start(dir.path(), base_port, true).await;
    for port in base_port..base_port + 3 {
        assert!(
            printed.contains(&format!("http://127.0.0.1:{port}")),
            "{printed}"
        );
    }
    assert!(
        printed.contains("/docs"),
        "Swagger UI is printed: {printed}"
    );
    assert_eq!(
        printed.matches("curl ").count(),
        3,
        "three commands: {printed}"
    );

    let document: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("yellow_dot.devnet.json")).expect("document"),
    )
    .expect("json");
    assert_eq!(document["peer_auth"], "required");
    assert!(
        document["instances"]
            .as_array()
            .expect("instances")
            .iter()
            .all(|i| i["keys"][0]["public_key"]
                .as_str()
                .is_some_and(|k| k.len() == 43)),
        "every instance publishes its key"
    );

    let page = students(&client, base_port).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(4), "{page}");
    assert_eq!(page["meta"]["partial"], false, "{page}");
    let instances: std::collections::BTreeSet<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|item| item["item_instance_url"].as_str())
        .collect();
    assert_eq!(instances.len(), 2, "students live on two instances: {page}");

    // The tutor's status update reaches the student's instance through the outbox.
    let seeded: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("seeded")).expect("seed record"))
            .expect("json");
    let action_id = seeded["action_id"].as_str().expect("action id").to_string();
    let events_url =
        format!("http://127.0.0.1:{base_port}/api/v1/event/fetch?action_id={action_id}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let statuses = loop {
        let events = get(&client, &events_url, "asha").await;
        let statuses: Vec<String> = events["events"]
            .as_array()
            .map(|events| {
                events
                    .iter()
                    .filter_map(|e| e["action_status"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if statuses.len() >= 2 || Instant::now() > deadline {
            break statuses;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec!["accepted", "created"],
        "events on the student's instance"
    );

    interrupt(child, base_port).await;

    // Restart without --reset: same keys and data, no second seeding.
    let (child, _) = start(dir.path(), base_port, false).await;
    let page = students(&client, base_port).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(4), "{page}");
    kill_outright(child, base_port).await;
}

/// SIGKILL gives devnet no chance to stop its instances: they must end on their own.
async fn kill_outright(mut child: Child, base_port: u16) {
    child.kill().await.expect("SIGKILL");
    let deadline = Instant::now() + Duration::from_secs(30);
    for port in base_port..base_port + 3 {
        while std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "port {port} is still taken 30 s after devnet was killed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
