//! `bench --actions`: actions across two signed instances on PostgreSQL + Redis.
//!
//! Instance A serves students (the source of every action), instance B tutors (the target,
//! whose transactional outbox delivers every event back to A). Measured: cross-instance
//! perform and update-status under load, the time B takes to drain a large backlog to A
//! once A returns from a stop, and how fast a small backlog converges after a stop long
//! enough for B's retry backoff to have grown, with and without A contacting B.
//!
//! Everything goes through the public HTTP API: users are development identities
//! (`x-dev-user-id`), B's outbox is read from `GET /api/v1/admin/outbox` (and its
//! `dpg_outbox_entries` gauge), the events each side holds from `GET /api/v1/event/fetch`
//! summed over the users of that side.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use dpg_adapters::system::SystemClock;
use dpg_core::ports::Clock;
use dpg_tests::support::keys::{INSTANCE_KEY_ENV, InstanceKey};
use serde_json::{Value, json};
use tempfile::TempDir;
use uuid::Uuid;

use super::child::DpgChild;
use super::db::ScratchDatabase;
use super::load::{self, Measured, Until};

pub const NETWORK: &str = "yellow_dot";
pub const STUDENT: &str = "student";
pub const TUTOR: &str = "tutor";
const CREATE: &str = "/api/v1/item/create";
pub const PERFORM: &str = "/api/v1/action/perform";
pub const UPDATE_STATUS: &str = "/api/v1/action/update-status";
const EVENT_FETCH: &str = "/api/v1/event/fetch";
const ADMIN_OUTBOX: &str = "/api/v1/admin/outbox";
/// Students on A and tutors on B, each its own user.
pub const STUDENTS: usize = 10;
pub const TUTORS: usize = 10;
/// Events created on B for each convergence case while A is down.
pub const CONVERGENCE_EVENTS: u64 = 200;
/// The statuses update-status cycles through (the `connect` event schema's enum).
const STATUSES: [&str; 3] = ["accepted", "rejected", "pending"];
/// How often B's outbox (and then A's events) are read while waiting for delivery.
const POLL: Duration = Duration::from_millis(100);
/// Longest wait for the backlog to drain, or for the load phases' events to settle.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest wait for B's `dpg_outbox_entries` gauge (refreshed every 10 s) to show the
/// backlog.
const GAUGE_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy)]
pub struct ActionsSettings {
    pub concurrency: usize,
    pub seconds: u64,
    pub backlog: u64,
    /// `OUTBOX_BACKOFF_CAP_SECONDS` of B for the whole run.
    pub backoff_cap: u64,
    /// `OUTBOX_CONCURRENCY_PER_PEER` of B, when set (else its default, 4).
    pub outbox_concurrency: Option<u64>,
}

impl ActionsSettings {
    /// How long A stays down in each convergence case: long enough for B's probe delay
    /// (1 s doubling per failure, full jitter) to reach the cap several times over.
    pub fn down_seconds(&self) -> u64 {
        (self.backoff_cap * 3).max(20)
    }
}

/// Rows of the measurement table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Perform,
    UpdateStatus,
    BacklogUpdate,
    Contact,
}

impl Op {
    pub fn label(self) -> &'static str {
        match self {
            Op::Perform => "POST /api/v1/action/perform on A (cross-instance, signed)",
            Op::UpdateStatus => "POST /api/v1/action/update-status on B (A up)",
            Op::BacklogUpdate => "POST /api/v1/action/update-status on B (A stopped: backlog)",
            Op::Contact => "POST /api/v1/action/perform on A right after its restart (contact)",
        }
    }
}

/// One wait for B's pending events to reach A.
#[derive(Debug, Clone, Default)]
pub struct Arrival {
    /// Events A must hold in the end.
    pub expected: u64,
    /// Events A held when the wait ended.
    pub held: u64,
    /// When B's pending count first read 0 (from the start of the wait).
    pub pending_zero: Option<Duration>,
    /// When A held every event (B pending 0 and A's total = expected).
    pub all_held: Option<Duration>,
    /// B's pending and dead counts at the end.
    pub pending_left: u64,
    pub dead: u64,
}

/// The backlog drain (phase 2).
#[derive(Debug, Clone, Default)]
pub struct Drain {
    /// Successful update-status calls while A was down.
    pub events: u64,
    /// How long A was down, and its restart (spawn to ready).
    pub down: Duration,
    pub restart: Duration,
    /// B's earliest next attempt to A, seconds after the restart began (negative: overdue).
    pub next_attempt_in: Option<f64>,
    pub arrival: Arrival,
}

/// One convergence case (phase 3).
#[derive(Debug, Clone, Default)]
pub struct Convergence {
    pub contact: bool,
    pub events: u64,
    pub down: Duration,
    pub restart: Duration,
    pub next_attempt_in: Option<f64>,
    /// Most failed attempts of one pending entry when A restarted.
    pub attempts: Option<u64>,
    pub arrival: Arrival,
}

#[derive(Debug, Default)]
pub struct ActionsReport {
    pub measurements: Vec<(Op, Measured)>,
    /// Actions created by the perform phase.
    pub actions: usize,
    /// Events delivered after the load phases: how long until A held them all.
    pub settle: Option<Arrival>,
    pub drain: Option<Drain>,
    pub convergence: Vec<Convergence>,
    pub notes: Vec<String>,
}

impl ActionsReport {
    pub fn get(&self, op: Op) -> Option<&Measured> {
        self.measurements
            .iter()
            .rev()
            .find(|(o, _)| *o == op)
            .map(|(_, m)| m)
    }
}

/// One side of the network: its storage, variables and (while it runs) its process.
struct Side {
    name: &'static str,
    port: u16,
    env: Vec<(String, String)>,
    database: ScratchDatabase,
    key_prefix: String,
    child: Option<DpgChild>,
}

impl Side {
    fn child(&self) -> anyhow::Result<&DpgChild> {
        self.child
            .as_ref()
            .ok_or_else(|| anyhow!("instance {} is not running", self.name))
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Instances A (students) and B (tutors) reading one signed document.
struct Pair {
    a: Side,
    b: Side,
    document: PathBuf,
    _document_dir: TempDir,
}

/// An item created for the run: its id and its owner.
#[derive(Debug, Clone)]
struct Owned {
    item_id: String,
    user: String,
}

/// An action created by the perform phase: its id and the user who owns its target.
#[derive(Debug, Clone)]
struct Performed {
    action_id: String,
    tutor_user: String,
}

/// Runs the three phases; storage is created here and removed at the end, also on failure.
pub async fn measure(
    dpg: &Path,
    dev_network: &Path,
    postgres_url: &str,
    redis_url: &str,
    client: &reqwest::Client,
    settings: ActionsSettings,
    report: &mut ActionsReport,
) -> anyhow::Result<()> {
    super::check_redis(redis_url).await?;
    let plan = Plan::new(dev_network)?;
    let database_a = ScratchDatabase::create(postgres_url, "_a").await?;
    let database_b = match ScratchDatabase::create(postgres_url, "_b").await {
        Ok(database) => database,
        Err(error) => {
            let _ = database_a.drop_now().await;
            return Err(error);
        }
    };
    let mut pair = plan.into_pair(database_a, database_b, redis_url, settings);
    eprintln!(
        "[actions] databases {} (A) and {} (B), Redis prefixes {} and {}",
        pair.a.database.name, pair.b.database.name, pair.a.key_prefix, pair.b.key_prefix
    );
    let measured = phases(&mut pair, dpg, client, settings, report).await;
    if measured.is_err() {
        for side in [&pair.a, &pair.b] {
            if let Some(child) = &side.child {
                eprintln!(
                    "[actions] last lines of {}'s log:\n{}",
                    side.name,
                    child.log_tail(20)
                );
            }
        }
    }
    for side in [&pair.a, &pair.b] {
        if let Some(child) = &side.child {
            report
                .notes
                .extend(outbox_log_problems(side.name, &child.log_tail(usize::MAX)));
        }
    }
    let stopped = pair.stop().await;
    let mut cleanup = Vec::new();
    for side in [pair.a, pair.b] {
        if let Err(error) = side.database.drop_now().await {
            cleanup.push(format!("{error:#}"));
        }
        if let Err(error) = super::clear_redis(redis_url, &side.key_prefix).await {
            cleanup.push(format!("{error:#}"));
        }
    }
    measured?;
    stopped?;
    if !cleanup.is_empty() {
        bail!("clean-up failed: {}", cleanup.join("; "));
    }
    Ok(())
}

/// Ports, keys and the signed document, before any storage exists.
struct Plan {
    ports: Vec<u16>,
    urls: Vec<String>,
    keys: [InstanceKey; 2],
    document: PathBuf,
    document_dir: TempDir,
}

impl Plan {
    fn new(dev_network: &Path) -> anyhow::Result<Plan> {
        let ports = free_ports(2)?;
        let urls: Vec<String> = ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        let keys = [
            InstanceKey::generate("bench-a-key"),
            InstanceKey::generate("bench-b-key"),
        ];
        let document = signed_document(dev_network, &urls, &keys)?;
        let document_dir = tempfile::Builder::new()
            .prefix("dpg-bench-actions-")
            .tempdir()
            .context("could not create a temporary directory")?;
        let path = document_dir.path().join("network.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&document)?)
            .with_context(|| format!("could not write {}", path.display()))?;
        Ok(Plan {
            ports,
            urls,
            keys,
            document: path,
            document_dir,
        })
    }

    fn into_pair(
        self,
        database_a: ScratchDatabase,
        database_b: ScratchDatabase,
        redis_url: &str,
        settings: ActionsSettings,
    ) -> Pair {
        let run = Uuid::new_v4().simple().to_string();
        let side = |name: &'static str,
                    index: usize,
                    domain: &str,
                    database: ScratchDatabase,
                    extra: &[(&str, String)]| {
            let key_prefix = format!("dpg-bench:{run}:{name}:");
            let env: Vec<(String, String)> = [
                ("API_DOMAIN", self.urls[index].clone()),
                ("SERVED_DOMAINS", format!("{NETWORK}/{domain}")),
                ("INSTANCE_NAME", format!("bench-{name}")),
                ("AUTH_MIDDLEWARE_ENABLED", "false".to_string()),
                ("DATABASE_URL", database.url.to_string()),
                ("REDIS_URL", redis_url.to_string()),
                ("REDIS_KEY_PREFIX", key_prefix.clone()),
                (INSTANCE_KEY_ENV, self.keys[index].env_value()),
            ]
            .into_iter()
            .chain(extra.iter().cloned())
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            Side {
                name,
                port: self.ports[index],
                env,
                database,
                key_prefix,
                child: None,
            }
        };
        let a = side("A", 0, STUDENT, database_a, &[]);
        let mut b_env = vec![(
            "OUTBOX_BACKOFF_CAP_SECONDS",
            settings.backoff_cap.to_string(),
        )];
        if let Some(concurrency) = settings.outbox_concurrency {
            b_env.push(("OUTBOX_CONCURRENCY_PER_PEER", concurrency.to_string()));
        }
        let b = side("B", 1, TUTOR, database_b, &b_env);
        Pair {
            a,
            b,
            document: self.document,
            _document_dir: self.document_dir,
        }
    }
}

impl Pair {
    /// Starts A (`a == true`) or B; returns how long it took to be ready.
    async fn start(
        &mut self,
        a: bool,
        dpg: &Path,
        client: &reqwest::Client,
    ) -> anyhow::Result<Duration> {
        let document = self.document.clone();
        let side = if a { &mut self.a } else { &mut self.b };
        if side.child.is_some() {
            bail!("instance {} is already running", side.name);
        }
        let started = Instant::now();
        let child = DpgChild::start_on(dpg, &document, side.port, &side.env, client)
            .await
            .with_context(|| format!("instance {} did not start", side.name))?;
        let took = started.elapsed();
        eprintln!(
            "[actions] {} ready at {} (pid {}) after {:.2} s",
            side.name,
            child.base_url,
            child.pid(),
            took.as_secs_f64()
        );
        side.child = Some(child);
        Ok(took)
    }

    /// SIGTERM to A and wait for it to exit.
    async fn stop_a(&mut self) -> anyhow::Result<()> {
        let child = self
            .a
            .child
            .take()
            .ok_or_else(|| anyhow!("instance A is not running"))?;
        let tail = child.log_tail(10);
        let how = child.stop().await?;
        eprintln!("[actions] A {how}");
        if how.contains("killed") {
            eprintln!("[actions] last lines of A's log:\n{tail}");
        }
        Ok(())
    }

    async fn stop(&mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        for side in [&mut self.a, &mut self.b] {
            if let Some(child) = side.child.take() {
                let tail = child.log_tail(10);
                match child.stop().await {
                    Ok(how) => eprintln!("[actions] {} {how}", side.name),
                    Err(error) => {
                        eprintln!(
                            "[actions] {} could not be stopped: {error:#}\nlast lines of its \
                             log:\n{tail}",
                            side.name
                        );
                        first_error.get_or_insert(error);
                    }
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// `examples/dev.network.json` with A listed for `student` and B for `tutor`, each with its
/// key, and `peer_auth: required`.
fn signed_document(
    dev_network: &Path,
    urls: &[String],
    keys: &[InstanceKey; 2],
) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(dev_network)
        .with_context(|| format!("could not read {}", dev_network.display()))?;
    let mut document: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", dev_network.display()))?;
    let object = document
        .as_object_mut()
        .ok_or_else(|| anyhow!("{} is not a JSON object", dev_network.display()))?;
    let instances = [(STUDENT, "A"), (TUTOR, "B")]
        .iter()
        .zip(urls.iter().zip(keys))
        .map(|((domain, name), (url, key))| {
            json!({
                "domain_name": domain,
                "instance_name": format!("Bench {domain} instance {name}"),
                "instance_url": url,
                "custom_item_schema_urls": {},
                "keys": [key.listing()]
            })
        })
        .collect();
    object.insert("instances".to_string(), Value::Array(instances));
    object.insert("peer_auth".to_string(), json!("required"));
    object.insert(
        "description".to_string(),
        json!("Generated by the actions benchmark."),
    );
    Ok(document)
}

fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| {
            std::net::TcpListener::bind(("127.0.0.1", 0))
                .context("could not find a free loopback port")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

/// What the load phases created and the later phases use.
struct Cast {
    students: Vec<Owned>,
    tutors: Vec<Owned>,
    performed: Arc<Vec<Performed>>,
}

async fn phases(
    pair: &mut Pair,
    dpg: &Path,
    client: &reqwest::Client,
    settings: ActionsSettings,
    report: &mut ActionsReport,
) -> anyhow::Result<()> {
    eprintln!("[actions] starting B (tutors) and A (students) ...");
    pair.start(false, dpg, client).await?;
    pair.start(true, dpg, client).await?;

    let (students, tutors) = seed(pair, client).await?;

    // Phase 1: perform on A, then update-status on B.
    eprintln!(
        "[actions] perform on A: {} s at concurrency {} ...",
        settings.seconds, settings.concurrency
    );
    let performed = perform_phase(pair, client, settings, &students, &tutors, report).await?;
    report.actions = performed.len();
    if performed.is_empty() {
        let sample = report
            .get(Op::Perform)
            .and_then(|m| m.error_samples.first().cloned())
            .unwrap_or_default();
        bail!("no perform succeeded, nothing to update (first failure: {sample})");
    }
    let cast = Cast {
        students,
        tutors,
        performed: Arc::new(performed),
    };
    eprintln!(
        "[actions] update-status on B: {} s at concurrency {} over {} actions ...",
        settings.seconds,
        settings.concurrency,
        cast.performed.len()
    );
    let measured = update_phase(
        pair,
        client,
        settings.concurrency,
        Until::Elapsed(Duration::from_secs(settings.seconds)),
        &cast.performed,
        "load",
    )
    .await?;
    report.measurements.push((Op::UpdateStatus, measured));

    eprintln!("[actions] waiting for B to deliver every event of the load phases to A ...");
    let expected = events_total(pair.b.child()?, client, &tutor_users()).await?;
    let settle = wait_arrival(pair, client, expected, 0, Instant::now(), DRAIN_TIMEOUT).await?;
    let settled = settle.all_held.is_some();
    report.settle = Some(settle);
    if !settled {
        bail!(
            "the events of the load phases did not all reach A within {} s",
            DRAIN_TIMEOUT.as_secs()
        );
    }

    // Phase 2: backlog drain.
    drain_phase(pair, dpg, client, settings, &cast, report).await?;

    // Phase 3: convergence after a longer stop, with and without contact.
    for contact_b in [true, false] {
        convergence_phase(pair, dpg, client, settings, &cast, contact_b, report).await?;
    }
    Ok(())
}

fn student_users() -> Vec<String> {
    (0..STUDENTS).map(|k| format!("student-{k}")).collect()
}

fn tutor_users() -> Vec<String> {
    (0..TUTORS).map(|k| format!("tutor-{k}")).collect()
}

/// One student per student user on A, one tutor per tutor user on B, one at a time.
async fn seed(pair: &Pair, client: &reqwest::Client) -> anyhow::Result<(Vec<Owned>, Vec<Owned>)> {
    eprintln!("[actions] seeding {STUDENTS} students on A and {TUTORS} tutors on B ...");
    let mut students = Vec::with_capacity(STUDENTS);
    for (k, user) in student_users().into_iter().enumerate() {
        let body = json!({
            "item_network": NETWORK, "item_domain": STUDENT, "item_type": "profile_1.0",
            "item_state": {"name": format!("Student {k}"), "grade": "10", "city": "Pune"}
        });
        let item_id = create(pair.a.child()?, client, &user, &body).await?;
        students.push(Owned { item_id, user });
    }
    let mut tutors = Vec::with_capacity(TUTORS);
    for (k, user) in tutor_users().into_iter().enumerate() {
        let body = json!({
            "item_network": NETWORK, "item_domain": TUTOR, "item_type": "profile_1.0",
            "item_state": {"name": format!("Tutor {k}"), "subjects": ["maths"],
                           "experience_years": 4}
        });
        let item_id = create(pair.b.child()?, client, &user, &body).await?;
        tutors.push(Owned { item_id, user });
    }
    Ok((students, tutors))
}

/// `POST /api/v1/item/create` as `user`; the new item's id.
async fn create(
    child: &DpgChild,
    client: &reqwest::Client,
    user: &str,
    body: &Value,
) -> anyhow::Result<String> {
    let url = child.url(CREATE);
    let response = client
        .post(&url)
        .header("x-dev-user-id", user)
        .json(body)
        .send()
        .await
        .with_context(|| format!("POST {url} failed"))?;
    let status = response.status();
    let text = response.text().await.context("body not read")?;
    if !status.is_success() {
        bail!("POST {url}: HTTP {status}: {}", clip(&text));
    }
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("POST {url}: not JSON"))?;
    value["item_id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("POST {url}: no item_id in {}", clip(&text)))
}

fn perform_body(student: &Owned, tutor: &Owned, tutor_url: &str) -> Value {
    json!({
        "action_name": "connect",
        "source_item": {"item_network": NETWORK, "item_domain": STUDENT,
                        "item_type": "profile_1.0", "item_id": student.item_id},
        "target_item": {"item_network": NETWORK, "item_domain": TUTOR,
                        "item_type": "profile_1.0", "item_id": tutor.item_id,
                        "item_instance_url": tutor_url},
        "requirements_snapshot": {"subject": "maths", "goal": "board exam"}
    })
}

/// `--seconds` of performs on A, every one with its own Idempotency-Key; returns the actions
/// created.
async fn perform_phase(
    pair: &Pair,
    client: &reqwest::Client,
    settings: ActionsSettings,
    students: &[Owned],
    tutors: &[Owned],
    report: &mut ActionsReport,
) -> anyhow::Result<Vec<Performed>> {
    let url = pair.a.child()?.url(PERFORM);
    let tutor_url = pair.b.url();
    let run = Uuid::new_v4().simple().to_string();
    let bodies: Arc<Vec<(String, Value)>> = Arc::new(
        (0..students.len() * tutors.len())
            .map(|k| {
                let student = &students[k % students.len()];
                let tutor = &tutors[(k / students.len()) % tutors.len()];
                (
                    student.user.clone(),
                    perform_body(student, tutor, &tutor_url),
                )
            })
            .collect(),
    );
    let owners: Arc<HashMap<String, String>> = Arc::new(
        tutors
            .iter()
            .map(|t| (t.item_id.clone(), t.user.clone()))
            .collect(),
    );
    let created: Arc<Mutex<Vec<Performed>>> = Arc::default();
    let sink = Arc::clone(&created);
    let measured = load::run_inspected(
        client,
        settings.concurrency,
        Until::Elapsed(Duration::from_secs(settings.seconds)),
        move |client, n| {
            let index = usize::try_from(n).unwrap_or(0) % bodies.len().max(1);
            let (user, body) = &bodies[index];
            client
                .post(&url)
                .header("x-dev-user-id", user)
                .header("idempotency-key", format!("bench-{run}-{n}"))
                .json(body)
        },
        move |body| {
            let performed = parse_performed(body, &owners)?;
            if let Ok(mut all) = sink.lock() {
                all.push(performed);
            }
            Ok(None)
        },
    )
    .await?;
    report.measurements.push((Op::Perform, measured));
    let created = created
        .lock()
        .map_err(|_| anyhow!("the perform results are poisoned"))?
        .clone();
    Ok(created)
}

fn parse_performed(body: &[u8], owners: &HashMap<String, String>) -> Result<Performed, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let action_id = value["action_id"]
        .as_str()
        .ok_or_else(|| format!("no action_id in {value}"))?;
    let target = value["target_item_id"]
        .as_str()
        .ok_or_else(|| format!("no target_item_id in {value}"))?;
    let tutor_user = owners
        .get(target)
        .ok_or_else(|| format!("unknown target_item_id {target}"))?;
    Ok(Performed {
        action_id: action_id.to_string(),
        tutor_user: tutor_user.clone(),
    })
}

/// update-status on B over the performed actions (each call by the tutor who owns the
/// action's target), statuses in turn.
async fn update_phase(
    pair: &Pair,
    client: &reqwest::Client,
    concurrency: usize,
    until: Until,
    performed: &Arc<Vec<Performed>>,
    tag: &'static str,
) -> anyhow::Result<Measured> {
    let url = pair.b.child()?.url(UPDATE_STATUS);
    let performed = Arc::clone(performed);
    load::run(client, concurrency, until, move |client, n| {
        let index = usize::try_from(n).unwrap_or(0) % performed.len().max(1);
        let status = STATUSES[usize::try_from(n % 3).unwrap_or(0)];
        let (action_id, user) = performed
            .get(index)
            .map_or(("", ""), |p| (p.action_id.as_str(), p.tutor_user.as_str()));
        client
            .post(&url)
            .header("x-dev-user-id", user)
            .json(&json!({"action_id": action_id, "action_status": status,
                          "remarks": format!("bench {tag} {n}")}))
    })
    .await
}

/// Events `users` see on `child` (`meta.total` of `GET /api/v1/event/fetch`, summed).
async fn events_total(
    child: &DpgChild,
    client: &reqwest::Client,
    users: &[String],
) -> anyhow::Result<u64> {
    let url = child.url(&format!("{EVENT_FETCH}?limit=1"));
    let reads = users.iter().map(|user| {
        let url = url.clone();
        async move {
            let value = get_json(client, &url, user).await?;
            value["meta"]["total"]
                .as_u64()
                .ok_or_else(|| anyhow!("no meta.total in the event fetch answer: {value}"))
        }
    });
    let totals = futures::future::try_join_all(reads).await?;
    Ok(totals.into_iter().sum())
}

async fn get_json(client: &reqwest::Client, url: &str, user: &str) -> anyhow::Result<Value> {
    let response = client
        .get(url)
        .header("x-dev-user-id", user)
        .send()
        .await
        .with_context(|| format!("GET {url} failed"))?;
    let status = response.status();
    let text = response.text().await.context("body not read")?;
    if !status.is_success() {
        bail!("GET {url}: HTTP {status}: {}", clip(&text));
    }
    serde_json::from_str(&text).with_context(|| format!("GET {url}: not JSON: {}", clip(&text)))
}

fn clip(text: &str) -> String {
    text.chars().take(300).collect()
}

/// B's outbox as its admin route shows it.
#[derive(Debug, Clone, Default)]
struct OutboxView {
    pending: u64,
    dead: u64,
    /// Earliest `next_attempt_at` of the pending entries listed, in seconds from now.
    next_attempt_in: Option<f64>,
    /// Most failed attempts of a listed pending entry.
    attempts: Option<u64>,
}

async fn outbox(b: &DpgChild, client: &reqwest::Client, limit: u32) -> anyhow::Result<OutboxView> {
    let value = get_json(
        client,
        &b.url(&format!("{ADMIN_OUTBOX}?limit={limit}")),
        "bench-admin",
    )
    .await?;
    let counts = &value["counts"];
    let pending = counts["pending"]
        .as_u64()
        .ok_or_else(|| anyhow!("no counts.pending in {}", clip(&value.to_string())))?;
    let now = SystemClock.now();
    let mut next_attempt_in: Option<f64> = None;
    let mut attempts: Option<u64> = None;
    for entry in value["undelivered"].as_array().into_iter().flatten() {
        if entry["state"] != "pending" {
            continue;
        }
        if let Some(at) = entry["next_attempt_at"]
            .as_str()
            .and_then(|text| parse_like(&now, text))
        {
            let seconds = (at - now).num_milliseconds() as f64 / 1000.0;
            next_attempt_in = Some(next_attempt_in.map_or(seconds, |s| s.min(seconds)));
        }
        if let Some(n) = entry["attempts"].as_u64() {
            attempts = Some(attempts.map_or(n, |a| a.max(n)));
        }
    }
    Ok(OutboxView {
        pending,
        dead: counts["dead"].as_u64().unwrap_or(0),
        next_attempt_in,
        attempts,
    })
}

/// Parses `text` as a value of the type of `like` (a time, here).
fn parse_like<T: std::str::FromStr>(_like: &T, text: &str) -> Option<T> {
    text.parse().ok()
}

/// Waits until B has nothing pending and A holds `expected` events; times are from
/// `started`. Those checks read both databases (B's outbox counts scan a table that a
/// backlog has bloated), so while A's `/metrics` shows fewer than `stores_needed` event
/// stores received since its start (each event sent while A was down needs one), only that
/// counter is polled: a check every 100 ms would otherwise load the machine being measured.
async fn wait_arrival(
    pair: &Pair,
    client: &reqwest::Client,
    expected: u64,
    stores_needed: u64,
    started: Instant,
    timeout: Duration,
) -> anyhow::Result<Arrival> {
    let students = student_users();
    let a = pair.a.child()?;
    let b = pair.b.child()?;
    let mut arrival = Arrival {
        expected,
        ..Arrival::default()
    };
    loop {
        // Events, not requests: a batch carries many. A build without the events counter
        // receives one event per request.
        let requests = a
            .counter(client, "dpg_http_requests_total", "/api/v1/event/store\"")
            .await
            .unwrap_or(0);
        let events = a
            .counter(client, "dpg_events_received_total", "")
            .await
            .unwrap_or(0);
        let stores = requests.max(events);
        if stores < stores_needed && started.elapsed() < timeout {
            tokio::time::sleep(POLL).await;
            continue;
        }
        let view = outbox(b, client, 1).await?;
        arrival.pending_left = view.pending;
        arrival.dead = view.dead;
        if view.pending == 0 {
            arrival.pending_zero.get_or_insert(started.elapsed());
            arrival.held = events_total(a, client, &students).await?;
            if arrival.held >= expected {
                arrival.all_held = Some(started.elapsed());
                return Ok(arrival);
            }
        }
        if started.elapsed() >= timeout {
            if view.pending > 0 {
                arrival.held = events_total(a, client, &students).await?;
            }
            return Ok(arrival);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One perform from A (a signed request to B, which resets B's backoff for A and sends A's
/// backlog at once); its latency goes into the [`Op::Contact`] row.
async fn contact(
    pair: &Pair,
    client: &reqwest::Client,
    cast: &Cast,
    report: &mut ActionsReport,
) -> anyhow::Result<()> {
    let (student, tutor) = cast
        .students
        .first()
        .zip(cast.tutors.first())
        .ok_or_else(|| anyhow!("no student or tutor was seeded"))?;
    let body = perform_body(student, tutor, &pair.b.url());
    let user = student.user.clone();
    let url = pair.a.child()?.url(PERFORM);
    let key = format!("bench-contact-{}", Uuid::new_v4().simple());
    let measured = load::run(client, 1, Until::Requests(1), move |client, _| {
        client
            .post(&url)
            .header("x-dev-user-id", &user)
            .header("idempotency-key", &key)
            .json(&body)
    })
    .await?;
    let failed = measured.errors > 0;
    let sample = measured.error_samples.first().cloned().unwrap_or_default();
    match report
        .measurements
        .iter_mut()
        .find(|(op, _)| *op == Op::Contact)
    {
        Some((_, all)) => {
            all.requests += measured.requests;
            all.errors += measured.errors;
            all.elapsed += measured.elapsed;
            all.latencies_us.extend_from_slice(&measured.latencies_us);
            all.latencies_us.sort_unstable();
            all.error_samples.extend(measured.error_samples);
        }
        None => report.measurements.push((Op::Contact, measured)),
    }
    if failed {
        bail!("the contact perform from A failed: {sample}");
    }
    Ok(())
}

/// A stopped, `count` events made on B meanwhile, A kept down until `down` has passed and
/// started again on the same database.
struct Outage {
    updates: Measured,
    /// B's outbox just before the restart.
    before_restart: OutboxView,
    /// B's pending gauge just before the restart, when asked for.
    gauge: Option<u64>,
    down: Duration,
    /// Spawn to ready.
    restart: Duration,
    /// When A answered ready.
    ready: Instant,
}

/// How an [`outage`] goes.
struct OutagePlan {
    /// update-status calls on B while A is down, and at what concurrency.
    count: u64,
    concurrency: usize,
    /// A stays down at least this long.
    down: Duration,
    /// Goes into the remarks of the updates.
    tag: &'static str,
    /// Read B's pending gauge before the restart.
    read_gauge: bool,
}

async fn outage(
    pair: &mut Pair,
    dpg: &Path,
    client: &reqwest::Client,
    cast: &Cast,
    plan: OutagePlan,
) -> anyhow::Result<Outage> {
    let OutagePlan {
        count,
        concurrency,
        down,
        tag,
        read_gauge,
    } = plan;
    eprintln!("[actions] stopping A (SIGTERM) ...");
    pair.stop_a().await?;
    let stopped = Instant::now();
    eprintln!(
        "[actions] {count} update-status calls on B while A is down, concurrency \
         {concurrency} ..."
    );
    let updates = update_phase(
        pair,
        client,
        concurrency,
        Until::Requests(count),
        &cast.performed,
        tag,
    )
    .await?;
    let left = down.saturating_sub(stopped.elapsed());
    if !left.is_zero() {
        eprintln!(
            "[actions] keeping A down {:.0} s more (B's retry backoff grows) ...",
            left.as_secs_f64()
        );
        tokio::time::sleep(left).await;
    }
    let before_restart = outbox(pair.b.child()?, client, 1000).await?;
    let gauge = if read_gauge {
        eprintln!("[actions] reading B's pending gauge (refreshed every 10 s) ...");
        wait_gauge(pair.b.child()?, client, before_restart.pending).await
    } else {
        None
    };
    let down = stopped.elapsed();
    eprintln!("[actions] restarting A on the same database ...");
    let restart = pair.start(true, dpg, client).await?;
    Ok(Outage {
        updates,
        before_restart,
        gauge,
        down,
        restart,
        ready: Instant::now(),
    })
}

async fn drain_phase(
    pair: &mut Pair,
    dpg: &Path,
    client: &reqwest::Client,
    settings: ActionsSettings,
    cast: &Cast,
    report: &mut ActionsReport,
) -> anyhow::Result<()> {
    let tutors = tutor_users();
    let before = events_total(pair.b.child()?, client, &tutors).await?;
    let pending_before = outbox(pair.b.child()?, client, 1).await?.pending;
    // No extra down time: B's backoff does not matter here, A contacts B on its return.
    let outage = outage(
        pair,
        dpg,
        client,
        cast,
        OutagePlan {
            count: settings.backlog,
            concurrency: settings.concurrency,
            down: Duration::ZERO,
            tag: "backlog",
            read_gauge: true,
        },
    )
    .await?;
    let started = outage.ready;
    contact(pair, client, cast, report).await?;
    let events = outage.updates.requests - outage.updates.errors;
    let expected = before + events + 1;
    let arrival = wait_arrival(pair, client, expected, events, started, DRAIN_TIMEOUT).await?;
    let gauge = outage.gauge;
    let pending = outage.before_restart.pending;
    let backlog = pending.saturating_sub(pending_before);
    report.notes.push(format!(
        "Backlog: {events} successful update-status calls on B while A was down; just before \
         A restarted, B's outbox held {pending} pending entries by GET /api/v1/admin/outbox \
         ({pending_before} before A stopped): {}; its dpg_outbox_entries{{state=\"pending\"}} \
         gauge (refreshed every 10 s) read {}.",
        if backlog == events {
            "exactly the backlog".to_string()
        } else {
            format!("MISMATCH, {backlog} new pending entries for {events} events")
        },
        gauge.map_or_else(|| "nothing".to_string(), |g| g.to_string()),
    ));
    let on_b = events_total(pair.b.child()?, client, &tutors).await?;
    if on_b != expected {
        report.notes.push(format!(
            "Backlog drain: B holds {on_b} events in all, {expected} were expected."
        ));
    }
    report
        .measurements
        .push((Op::BacklogUpdate, outage.updates));
    report.drain = Some(Drain {
        events,
        down: outage.down,
        restart: outage.restart,
        next_attempt_in: outage
            .before_restart
            .next_attempt_in
            .map(|s| s - outage.restart.as_secs_f64()),
        arrival,
    });
    Ok(())
}

async fn convergence_phase(
    pair: &mut Pair,
    dpg: &Path,
    client: &reqwest::Client,
    settings: ActionsSettings,
    cast: &Cast,
    contact_b: bool,
    report: &mut ActionsReport,
) -> anyhow::Result<()> {
    let before = events_total(pair.b.child()?, client, &tutor_users()).await?;
    let tag = if contact_b { "contact" } else { "no-contact" };
    eprintln!(
        "[actions] convergence {}: A down {} s ...",
        if contact_b {
            "with contact"
        } else {
            "without contact"
        },
        settings.down_seconds()
    );
    let outage = outage(
        pair,
        dpg,
        client,
        cast,
        OutagePlan {
            count: CONVERGENCE_EVENTS,
            concurrency: settings.concurrency.min(8),
            down: Duration::from_secs(settings.down_seconds()),
            tag,
            read_gauge: false,
        },
    )
    .await?;
    let mut expected = before + outage.updates.requests - outage.updates.errors;
    if contact_b {
        contact(pair, client, cast, report).await?;
        expected += 1;
    }
    let timeout = Duration::from_secs(settings.backoff_cap + 60);
    let sent_while_down = outage.updates.requests - outage.updates.errors;
    let arrival = wait_arrival(
        pair,
        client,
        expected,
        sent_while_down,
        outage.ready,
        timeout,
    )
    .await?;
    if outage.updates.errors > 0 {
        report.notes.push(format!(
            "Convergence ({tag}): {} of {} update-status calls failed (first: {}).",
            outage.updates.errors,
            outage.updates.requests,
            outage
                .updates
                .error_samples
                .first()
                .map_or("", String::as_str)
        ));
    }
    report.convergence.push(Convergence {
        contact: contact_b,
        events: outage.updates.requests - outage.updates.errors,
        down: outage.down,
        restart: outage.restart,
        next_attempt_in: outage
            .before_restart
            .next_attempt_in
            .map(|s| s - outage.restart.as_secs_f64()),
        attempts: outage.before_restart.attempts,
        arrival,
    });
    Ok(())
}

/// What an instance's log (warnings and errors only, `RUST_LOG=warn`) says went wrong with
/// its outbox storage (a failed release, deferral or record of an attempt leaves entries
/// claimed until their lease ends, which delays delivery), as report notes.
fn outbox_log_problems(name: &str, log: &str) -> Vec<String> {
    const SIGNS: [&str; 4] = [
        "cannot release outbox claims",
        "cannot defer an outbox destination",
        "cannot record an outbox attempt",
        "cannot wake an outbox destination",
    ];
    let mut notes = Vec::new();
    for sign in SIGNS {
        let lines: Vec<&str> = log.lines().filter(|line| line.contains(sign)).collect();
        if let Some(first) = lines.first() {
            notes.push(format!(
                "{name}'s log: {} line(s) \"{sign}\" (first: `{}`).",
                lines.len(),
                clip(&strip_ansi(first))
            ));
        }
    }
    let deadlocks = log.lines().filter(|line| line.contains("deadlock")).count();
    if deadlocks > 0 {
        notes.push(format!(
            "{name}'s log: {deadlocks} line(s) mention a PostgreSQL deadlock."
        ));
    }
    notes
}

/// `text` without terminal colour sequences (the children log with `LOG_FORMAT=pretty`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for end in chars.by_ref() {
                if end.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Reads B's `dpg_outbox_entries{state="pending"}` until it shows at least `pending` (the
/// gauge is refreshed every 10 s) or [`GAUGE_WAIT`] has passed; the last value read.
async fn wait_gauge(b: &DpgChild, client: &reqwest::Client, pending: u64) -> Option<u64> {
    let started = Instant::now();
    loop {
        let value = b
            .counter(client, "dpg_outbox_entries", "state=\"pending\"")
            .await;
        if value.is_some_and(|v| v >= pending) || started.elapsed() >= GAUGE_WAIT {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_storage_failures_in_a_log_become_notes() {
        let log = "\u{1b}[2m2026\u{1b}[0m ERROR database operation failed error=deadlock detected\n\
                   2026 WARN cannot defer an outbox destination error=internal\n\
                   2026 WARN cannot release outbox claims; their lease will\n\
                   2026 WARN cannot release outbox claims; their lease will\n";
        let notes = outbox_log_problems("B", log);
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes[0].starts_with("B's log: 2 line(s) \"cannot release outbox claims\""));
        assert!(notes[2].contains("1 line(s) mention a PostgreSQL deadlock"));
        assert!(outbox_log_problems("A", "all fine\n").is_empty());
        assert_eq!(strip_ansi("\u{1b}[2mtime\u{1b}[0m x"), "time x");
    }
}
