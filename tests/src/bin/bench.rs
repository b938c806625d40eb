//! `bench`: throughput, latency and memory of the release `dpg` binary, next to what this
//! machine's PostgreSQL and HTTP stack can do. The numbers are outputs, never assertions.

#[path = "../bench/actions.rs"]
mod actions;
#[path = "../bench/actions_report.rs"]
mod actions_report;
#[path = "../bench/child.rs"]
mod child;
#[path = "../bench/db.rs"]
mod db;
#[path = "../bench/load.rs"]
mod load;
#[path = "../bench/network.rs"]
mod network;
#[path = "../bench/network_report.rs"]
mod network_report;
#[path = "../bench/peer_auth.rs"]
mod peer_auth;
#[path = "../bench/peer_auth_report.rs"]
mod peer_auth_report;
#[path = "../bench/pgbench.rs"]
mod pgbench;
#[path = "../bench/phases.rs"]
mod phases;
#[path = "../bench/report.rs"]
mod report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use dpg_adapters::redis::RedisCache;
use dpg_core::ports::Cache;
use uuid::Uuid;

use child::DpgChild;
use db::ScratchDatabase;
use phases::{BackendReport, Credential, Settings};

/// As in `dpg`: the load generator allocates per request, and glibc's allocator took a
/// visible share of the machine's CPU from the instances under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ABOUT: &str = "Benchmark the release dpg binary against this machine's own limits";

const LONG_ABOUT: &str = "\
Benchmark the release dpg binary against this machine's own limits.

Builds nothing: it runs target/release/dpg (next to this binary), so build it first with
  cargo build --release -p dpg-app
and run this command in release mode too (the load generator runs in this process):
  cargo run --release -p dpg-tests --bin bench -- [OPTIONS]

For each backend it starts dpg as a child process on a free loopback port with its own
temporary data directory (INSTANCE_ENV=development, LOG_FORMAT=pretty, RUST_LOG=warn,
NETWORK_CONFIG_LOCAL_FILE=examples/dev.network.json):
  embedded  SQLite in the data directory and the in-process cache (no DATABASE_URL/REDIS_URL);
  postgres  a fresh database dpg_bench_<random> (dropped at the end) and Redis under a unique
            REDIS_KEY_PREFIX (its keys removed at the end).
Then, with --concurrency keep-alive workers: GET /health/live for --seconds (the HTTP stack's
ceiling), --items POST /api/v1/item/create of profile_1.0 students over 10 users, cold
GET /api/v1/item/fetch for --seconds (every query distinct, so the 1 s fetch cache misses),
warm GET /api/v1/item/fetch (one query) for --seconds; VmRSS right after ready and after
the load. Then, for the authentication overhead, two more instances on fresh storage each
(new data directory; new database and Redis prefix), with AUTH_MIDDLEWARE_ENABLED=true and
API_KEY_WRITES_PER_HOUR=100000000: each signs up one account and creates an API key, takes
GET /health/live for --seconds (not recorded), then the same --items creates with
`x-api-key` (the first) or `Authorization: Bearer <session token>` (the second). Every create
phase thus starts from an empty item table; the overhead is 1 - (authenticated rate /
auth-off rate). pgbench (-c <concurrency> -j 2 -T <seconds>) measures a single-row jsonb INSERT and
a primary-key SELECT on a scratch database.

Prints a markdown table (requests/s, p50, p99, errors per measurement) and the project's
goals. Failed requests are reported, never hidden; the command fails only when something
could not run (dpg or pgbench missing, an instance that does not start, PostgreSQL down).

Network-read mode (--network; neither PostgreSQL nor pgbench is used):
  cargo run --release -p dpg-tests --bin bench -- --network \
    [--items-per-instance 10000] [--concurrency 64] [--seconds 10]
starts 3 dpg children (embedded storage, own data directories, RUST_LOG=warn) on free
loopback ports, all reading ONE network document generated from examples/dev.network.json
that lists the 3 for `student`; each has API_DOMAIN=http://127.0.0.1:<port>,
SERVED_DOMAINS=yellow_dot/student, NETWORK_FETCH_BUDGET_PER_MINUTE=1000000000 (not
throttled) and NETWORK_CACHE_MAX_TTL_SECONDS=1000000000 (so every request can carry its own
cache_ttl_seconds, which is part of the page's cache key); the peer deadline and breaker
keep their defaults (PEER_TIMEOUT_MS=2000, PEER_BREAKER_FAILURES=5,
PEER_BREAKER_OPEN_SECONDS=10). Instance 3 sits behind an in-process fault proxy (its
API_DOMAIN and document URL are the proxy's). --items-per-instance profile_1.0 students are
created on EACH instance through POST /api/v1/item/create, interleaved across instances.
Then, against instance 1 as aggregator, at --concurrency for --seconds each:
  - POST /api/v1/network/item/fetch_local limit 20 offset 0 on each instance directly
    (distinct bodies): every instance's own local page;
  - GET /api/v1/network/item/fetch?item_network=yellow_dot&item_domain=student&limit=20,
    cache hit (one query), cache miss (distinct cache_ttl_seconds; the peers' counts stay
    cached) and cache miss with distinct item_state[name] filters (counts miss too), with
    the aggregator's network-page cache misses read from /metrics;
  - 20 cursor walks of 100 pages (limit 20, by meta.next_cursor), one after the other, each
    walk its own cache_ttl_seconds: latency of page 1 and page 100; page 100 by
    offset=1980, 20 times, for comparison;
  - instance 3 black-holed (the proxy accepts and never answers): cache misses tagged by
    instance 3's status in meta.peers (`timeout`: it was called and waited for, before the
    breaker opens; `circuit_open`: skipped, after), partial-page fraction; once with
    distinct cache_ttl_seconds, then (breaker closed again) with distinct name filters.
Then 10 children, --items-per-instance-x10 items each (default: the same total as the
three), and the cache miss (distinct cache_ttl_seconds) again, for 3 versus 10 instances.
Prints the same kind of markdown table and the project's network-read goals.

Peer-signature mode (--peer-auth; neither PostgreSQL nor pgbench is used):
  cargo run --release -p dpg-tests --bin bench -- --peer-auth [--concurrency 64] [--seconds 10]
    [--rounds 2]
First in this process, one thread, 20,000 timed iterations each after 1,000 untimed: sign a
fetch_local request of instance 1 to instance 2 of a generated 3-instance signed network
(page 2 of a filtered read: item_state filter and peer cursor in the JSON body) with
PeerSigner::headers, then verify every one as instance 2's PeerTrustService::authenticate
and authorize do (a read; again as a write, which spends the nonce in the in-process cache
and is not authorized here), the
RFC 9421 verify_request alone, and the body's Content-Digest alone: p50, p99, mean in us.
Then end to end, --rounds rounds: in each, two networks of 3 dpg children set up as in
--network (no fault proxy), --items-per-instance 2000 each, both up at once: one in a document
with peer_auth: off and no keys (unsigned), one with a fresh Ed25519 key per instance listed in
instances[].keys (DPG_INSTANCE_KEY) and peer_auth: required (signed). Before seeding, an
unsigned fetch_local straight to instance 2 must get 401 in the signed network (200 in the
unsigned one) and one signed with instance 1's key 200. Each network: 2 s of cache misses
(not recorded). Then for --seconds per network each GET network fetch cache misses with
distinct cache_ttl_seconds (the aggregator calls fetch_local on both peers) and with
distinct item_id filters (count_local on both peers), first at --concurrency (CPU-bound on a
small machine), then both again one request at a time; every phase runs in turns of 500 ms
that alternate between the two networks (A B, B A, ...), so that drift of the machine falls
on both kinds alike;
dpg_peer_requests_received_total on every instance must show only signed peer requests in
a signed round, only unsigned ones in an unsigned round; the instances' CPU time (utime +
stime from /proc/<pid>/stat) is read around every phase. Prints the in-process table, the
rounds' measurement table, signed versus unsigned per round, pooled, and each kind's drift
between rounds (requests/s, p50, p99, instances' CPU per request), and the two goals
(verification under 100 us; the signed network fetch's median within 10% of the unsigned
one's). The command fails when a check fails.

Actions mode (--actions; PostgreSQL and Redis must answer, pgbench is not used):
  cargo run --release -p dpg-tests --bin bench -- --actions \
    [--seconds 10] [--concurrency 32] [--backlog 10000] [--backoff-cap 10] \
    [--outbox-concurrency N]
starts 2 dpg children on PostgreSQL + Redis (a fresh database and Redis key prefix each,
removed at the end) in a signed network (one document from examples/dev.network.json,
peer_auth: required, a fresh key per instance): A serves yellow_dot/student, B
yellow_dot/tutor, with B's OUTBOX_BACKOFF_CAP_SECONDS=--backoff-cap (and
OUTBOX_CONCURRENCY_PER_PEER=--outbox-concurrency when given). 10 students on A and
10 tutors on B, each its own development user (x-dev-user-id). Then:
  1. POST /api/v1/action/perform (connect, student on A to tutor on B; a distinct
     Idempotency-Key each) on A for --seconds at --concurrency, then POST
     /api/v1/action/update-status on B over the actions created, by their tutors; then
     the wait until B's outbox has nothing pending and A holds as many events as B
     (GET /api/v1/event/fetch, meta.total summed over the users of each side);
  2. backlog drain: A stopped (SIGTERM), --backlog update-status calls on B, B's pending
     outbox read from GET /api/v1/admin/outbox and dpg_outbox_entries{state=\"pending\"},
     A restarted on the same database; as soon as it is ready it performs once (a signed
     request to B, which resets B's backoff for A): time from A ready until B has nothing
     pending and A holds every event (checked every 100 ms once A's /metrics shows an
     event store received for each event made while it was down; before that only
     /metrics is read, since B's outbox counts scan a bloated table);
  3. convergence: A stopped again for 3 x --backoff-cap s (at least 20) while 200 events
     are made on B, so that B's retry delay for A has grown; restarted (a) with the same
     contact, (b) without any: time from A ready until A holds every event.
Prints the measurements, the deliveries (with B's next attempt to A as its admin route
showed it just before the restart) and the goals: drain of 10,000 events under 10 s;
convergence within 5 s with contact, within the backoff cap + 5 s without. Outbox storage
failures in the instances' logs (failed release, deferral or record; PostgreSQL deadlocks)
are listed under the deliveries, since they leave entries claimed until their lease ends.
The command
fails when a phase cannot run (then the tables show what was measured).";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendChoice {
    Embedded,
    Postgres,
    Both,
}

/// `--concurrency` unless given: the default run, and the network-read and peer-signature
/// modes.
const DEFAULT_CONCURRENCY: u64 = 32;
const DEFAULT_NETWORK_CONCURRENCY: u64 = 64;

#[derive(Debug, Parser)]
#[command(name = "bench", about = ABOUT, long_about = LONG_ABOUT)]
struct Args {
    /// Items to create (spread over 10 users).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    items: u64,
    /// Concurrent keep-alive workers (and pgbench clients) [default: 32; 64 with --network or
    /// --peer-auth].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000))]
    concurrency: Option<u64>,
    /// Duration of every timed phase (baseline, cold fetch, warm fetch, each pgbench run).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
    /// Which storage to run dpg on.
    #[arg(long, value_enum, default_value_t = BackendChoice::Both)]
    backend: BackendChoice,
    /// PostgreSQL server (any existing database) for the scratch databases.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// Redis of the postgres backend.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// The dpg binary (default: `dpg` next to this binary, else <repo>/target/release/dpg).
    #[arg(long)]
    dpg: Option<PathBuf>,
    /// Network-read mode: networks of 3 and 10 embedded instances instead of the default run
    /// (see below).
    #[arg(long, conflicts_with_all = ["items", "backend", "postgres_url", "redis_url"])]
    network: bool,
    /// With --network: items created on EACH instance of the network of 3.
    #[arg(long, default_value_t = 10_000, requires = "network",
          value_parser = clap::value_parser!(u64).range(1..))]
    items_per_instance: u64,
    /// With --network: items created on each instance of the network of 10 [default: the
    /// same total as the network of 3].
    #[arg(long, requires = "network", value_parser = clap::value_parser!(u64).range(1..))]
    items_per_instance_x10: Option<u64>,
    /// Peer-signature mode: signing and verification in process, then networks of 3
    /// embedded instances unsigned and signed, taking turns (see below).
    #[arg(long, conflicts_with_all = ["items", "backend", "postgres_url", "redis_url", "network"])]
    peer_auth: bool,
    /// With --peer-auth: rounds, each an unsigned and a signed network taking turns
    /// [default: 2].
    #[arg(long, requires = "peer_auth", value_parser = clap::value_parser!(u64).range(1..=20))]
    rounds: Option<u64>,
    /// Actions mode: perform and update-status across two signed PostgreSQL + Redis
    /// instances, then the outbox's backlog drain and convergence (see below).
    #[arg(long, conflicts_with_all = ["items", "backend", "network", "peer_auth"])]
    actions: bool,
    /// With --actions: events created on the target while the source is down.
    #[arg(long, default_value_t = 10_000, requires = "actions",
          value_parser = clap::value_parser!(u64).range(1..))]
    backlog: u64,
    /// With --actions: the target's OUTBOX_BACKOFF_CAP_SECONDS for the whole run (the
    /// default 60 s would make the convergence case without contact take minutes).
    #[arg(long, default_value_t = 10, requires = "actions",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    backoff_cap: u64,
    /// With --actions: the target's OUTBOX_CONCURRENCY_PER_PEER (deliveries in flight to one
    /// instance) [default: not set, so the dispatcher's default of 4].
    #[arg(long, requires = "actions", value_parser = clap::value_parser!(u64).range(1..=1000))]
    outbox_concurrency: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    dpg_tests::support::instance::install_crypto_provider();
    if args.network {
        return run_network(args).await;
    }
    if args.peer_auth {
        return run_peer_auth(args).await;
    }
    if args.actions {
        return run_actions(args).await;
    }
    let command: Vec<String> = std::env::args().collect();
    let concurrency = args.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    println!("# dpg benchmark\n");
    println!("- command: `{}`", command.join(" "));
    println!(
        "- settings: --items {} --concurrency {} --seconds {} --backend {}",
        args.items,
        concurrency,
        args.seconds,
        args.backend
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_string())
    );
    println!("- machine: {}", report::machine());
    if cfg!(debug_assertions) {
        println!("- WARNING: this is a debug build of the load generator; use --release");
    }

    let dpg = dpg_binary(args.dpg.as_deref())?;
    println!("- dpg binary: {}", dpg.display());
    let network = repo_root()?.join("examples/dev.network.json");
    let pgbench = pgbench::locate()
        .context("pgbench was not found (/usr/bin/pgbench or PATH); install postgresql-client")?;
    println!("- pgbench: {}\n", pgbench.display());

    let concurrency = usize::try_from(concurrency)?;
    let settings = Settings {
        items: args.items,
        concurrency,
        seconds: args.seconds,
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("could not build the HTTP client")?;

    let mut failures: Vec<String> = Vec::new();
    eprintln!("[pgbench] INSERT and SELECT, {} s each ...", args.seconds);
    let pgbench_runs =
        match pgbench::run_all(&pgbench, &args.postgres_url, concurrency, args.seconds).await {
            Ok(runs) => runs,
            Err(error) => {
                failures.push(format!("pgbench: {error:#}"));
                Vec::new()
            }
        };

    let mut reports = Vec::new();
    for backend in match args.backend {
        BackendChoice::Embedded => vec!["embedded"],
        BackendChoice::Postgres => vec!["postgres"],
        BackendChoice::Both => vec!["embedded", "postgres"],
    } {
        let mut report = BackendReport {
            backend,
            ..BackendReport::default()
        };
        for run in [
            Run::AuthOff,
            Run::Authenticated(Credential::ApiKey),
            Run::Authenticated(Credential::Session),
        ] {
            let outcome = if backend == "postgres" {
                run_postgres(&args, &dpg, &network, &client, settings, run, &mut report).await
            } else {
                run_instance(&dpg, &network, &[], &client, settings, run, &mut report).await
            };
            if let Err(error) = outcome {
                failures.push(format!("{backend} ({}): {error:#}", run.describe()));
            }
        }
        reports.push(report);
    }

    let rows = report::rows(&pgbench_runs, &reports, args.seconds);
    println!("## Measurements\n");
    println!("{}", report::measurement_table(&rows));
    println!("{}", report::authentication_notes());
    println!("## Goals\n");
    println!("{}", report::goals_table(&pgbench_runs, &reports));
    let errors = report::errors_section(&pgbench_runs, &reports);
    print_errors("non-2xx or failed requests", &errors);
    could_not_run(&failures)
}

/// `--network`: the network-read benchmark on 3, then 10 instances.
async fn run_network(args: Args) -> anyhow::Result<()> {
    let command: Vec<String> = std::env::args().collect();
    let concurrency = args.concurrency.unwrap_or(DEFAULT_NETWORK_CONCURRENCY);
    let x10_items = args
        .items_per_instance_x10
        .unwrap_or_else(|| (args.items_per_instance * 3).div_ceil(10));
    println!("# dpg network-read benchmark\n");
    println!("- command: `{}`", command.join(" "));
    println!(
        "- settings: --network --items-per-instance {} --items-per-instance-x10 {x10_items} \
         --concurrency {concurrency} --seconds {}",
        args.items_per_instance, args.seconds
    );
    println!("- machine: {}", report::machine());
    if cfg!(debug_assertions) {
        println!("- WARNING: this is a debug build of the load generator; use --release");
    }
    let dpg = dpg_binary(args.dpg.as_deref())?;
    println!("- dpg binary: {}", dpg.display());
    println!(
        "- instances: embedded storage, own temporary data directories, RUST_LOG=warn, \
         SERVED_DOMAINS=yellow_dot/student, NETWORK_FETCH_BUDGET_PER_MINUTE={}, \
         NETWORK_CACHE_MAX_TTL_SECONDS={}, defaults PEER_TIMEOUT_MS={}, \
         PEER_BREAKER_FAILURES={}, PEER_BREAKER_OPEN_SECONDS={}; one document from \
         examples/dev.network.json listing every instance for `student`; instance 1 is the \
         aggregator; instance 3 of the network of 3 is behind a fault proxy",
        network::FETCH_BUDGET_PER_MINUTE,
        network::MAX_CACHE_TTL_SECONDS,
        network::PEER_TIMEOUT_MS,
        network::PEER_BREAKER_FAILURES,
        network::PEER_BREAKER_OPEN_SECONDS
    );
    println!("- load generator: this process, {concurrency} keep-alive connections");
    println!(
        "- /proc/loadavg at the start: {} (other processes on this machine share its CPUs)\n",
        load_average()
    );

    let dev_network = repo_root()?.join("examples/dev.network.json");
    let concurrency = usize::try_from(concurrency)?;
    let settings = network::NetworkSettings {
        items_per_instance: args.items_per_instance,
        x10_items_per_instance: x10_items,
        concurrency,
        seconds: args.seconds,
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("could not build the HTTP client")?;

    let mut failures: Vec<String> = Vec::new();
    let mut reports = Vec::new();
    let mut three = network::NetworkReport {
        name: "network x3".to_string(),
        instances: 3,
        items_per_instance: settings.items_per_instance,
        ..network::NetworkReport::default()
    };
    if let Err(error) =
        network::measure_three(&dpg, &dev_network, &client, settings, &mut three).await
    {
        failures.push(format!("network x3: {error:#}"));
    }
    reports.push(three);
    let mut ten = network::NetworkReport {
        name: "network x10".to_string(),
        instances: 10,
        items_per_instance: settings.x10_items_per_instance,
        ..network::NetworkReport::default()
    };
    if let Err(error) = network::measure_ten(&dpg, &dev_network, &client, settings, &mut ten).await
    {
        failures.push(format!("network x10: {error:#}"));
    }
    reports.push(ten);

    println!("## Measurements\n");
    println!("{}", network_report::measurement_table(&reports));
    let notes: Vec<&String> = reports.iter().flat_map(|r| &r.notes).collect();
    if !notes.is_empty() {
        for note in notes {
            println!("- {note}");
        }
        println!();
    }
    println!("## Goals\n");
    println!("{}", network_report::goals_table(&reports, concurrency));
    println!("/proc/loadavg at the end: {}\n", load_average());
    let errors = network_report::errors_section(&reports);
    print_errors("non-2xx, failed or malformed answers", &errors);
    could_not_run(&failures)
}

/// `--peer-auth`: signing and verification in process, then unsigned and signed networks of
/// three, interleaved.
async fn run_peer_auth(args: Args) -> anyhow::Result<()> {
    let command: Vec<String> = std::env::args().collect();
    let concurrency = args.concurrency.unwrap_or(DEFAULT_NETWORK_CONCURRENCY);
    let per_kind = match args.rounds {
        Some(rounds) => usize::try_from(rounds)?,
        None => peer_auth::DEFAULT_ROUNDS,
    };
    let planned = peer_auth::rounds(per_kind);
    println!("# dpg peer-signature benchmark\n");
    println!("- command: `{}`", command.join(" "));
    println!(
        "- settings: --peer-auth --concurrency {concurrency} --seconds {} --rounds {per_kind}; {} \
         items per instance; in process {} timed iterations per measurement",
        args.seconds,
        peer_auth::ITEMS_PER_INSTANCE,
        peer_auth::MICRO_ITERATIONS
    );
    println!("- machine: {}", report::machine());
    if cfg!(debug_assertions) {
        println!("- WARNING: this is a debug build of the load generator; use --release");
    }
    let dpg = dpg_binary(args.dpg.as_deref())?;
    println!("- dpg binary: {}", dpg.display());
    println!(
        "- instances: 3, embedded storage, own temporary data directories, RUST_LOG=warn, \
         SERVED_DOMAINS=yellow_dot/student, NETWORK_FETCH_BUDGET_PER_MINUTE={}, \
         NETWORK_CACHE_MAX_TTL_SECONDS={}; one document from examples/dev.network.json \
         listing the 3 for `student`; instance 1 is the aggregator. Unsigned: `peer_auth: \
         off`, no keys. Signed: `peer_auth: required`, a fresh Ed25519 key per instance \
         (DPG_INSTANCE_KEY) listed in `instances[].keys`",
        network::FETCH_BUDGET_PER_MINUTE,
        network::MAX_CACHE_TTL_SECONDS,
    );
    println!(
        "- load generator: this process, {concurrency} keep-alive connections; both networks \
         of a round up at once, every phase in 500 ms turns alternating between them; \
         rounds: {}",
        planned
            .iter()
            .map(|(trust, n)| peer_auth_report::round_name(*trust, *n))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "- /proc/loadavg at the start: {} (other processes on this machine share its CPUs)\n",
        load_average()
    );

    let dev_network = repo_root()?.join("examples/dev.network.json");
    let mut failures: Vec<String> = Vec::new();

    eprintln!(
        "[in process] signing and verifying a fetch_local request, {} times each ...",
        peer_auth::MICRO_ITERATIONS
    );
    let micro = match peer_auth::measure_micro(&dev_network).await {
        Ok(micro) => Some(micro),
        Err(error) => {
            failures.push(format!("in process: {error:#}"));
            None
        }
    };

    let concurrency = usize::try_from(concurrency)?;
    let settings = network::NetworkSettings {
        items_per_instance: peer_auth::ITEMS_PER_INSTANCE,
        x10_items_per_instance: peer_auth::ITEMS_PER_INSTANCE,
        concurrency,
        seconds: args.seconds,
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("could not build the HTTP client")?;
    let mut reports = Vec::new();
    let mut cpus = Vec::new();
    for pair in planned.chunks(2) {
        let [(first, number), (second, _)] = pair else {
            bail!("rounds come in pairs of an unsigned and a signed network");
        };
        let report = |trust| network::NetworkReport {
            name: peer_auth_report::round_name(trust, *number),
            instances: 3,
            items_per_instance: settings.items_per_instance,
            ..network::NetworkReport::default()
        };
        let (mut first_report, mut second_report) = (report(*first), report(*second));
        let (mut first_cpu, mut second_cpu) = (Vec::new(), Vec::new());
        let mut sides = [
            peer_auth::Side {
                trust: *first,
                report: &mut first_report,
                cpu: &mut first_cpu,
            },
            peer_auth::Side {
                trust: *second,
                report: &mut second_report,
                cpu: &mut second_cpu,
            },
        ];
        let outcome =
            peer_auth::measure_paired_round(&dpg, &dev_network, &client, settings, &mut sides)
                .await;
        let name = format!("{} and {}", first_report.name, second_report.name);
        reports.extend([first_report, second_report]);
        cpus.extend([first_cpu, second_cpu]);
        if let Err(error) = outcome {
            eprintln!("[{name}] FAILED: {error:#}");
            failures.push(format!("{name}: {error:#}"));
            // Later rounds would compare against a round that did not run as meant.
            break;
        }
    }

    println!("## In process: one fetch_local request signed and verified\n");
    match &micro {
        Some(micro) => {
            println!("{}", peer_auth_report::micro_table(micro));
            println!(
                "Body ({} bytes): `{}`. One thread of this process, timed per call with \
                 `Instant`, while the machine runs other work.\n",
                micro.body.len(),
                micro.body
            );
        }
        None => println!("Not measured (see \"Could not run\").\n"),
    }
    let rounds: Vec<peer_auth_report::Round> = planned
        .iter()
        .zip(reports.iter().zip(&cpus))
        .map(|((trust, number), (report, cpu))| peer_auth_report::Round {
            trust: *trust,
            number: *number,
            report,
            cpu,
        })
        .collect();
    println!("## End to end: network of 3, unsigned and signed rounds\n");
    println!("{}", network_report::measurement_table(&reports));
    for note in reports.iter().flat_map(|report| &report.notes) {
        println!("- {note}");
    }
    println!("\n## Signed versus unsigned\n");
    println!(
        "{}",
        peer_auth_report::comparison_table(&rounds, concurrency)
    );
    println!("## Goals\n");
    println!(
        "{}",
        peer_auth_report::goals_table(micro.as_ref(), &rounds, concurrency)
    );
    println!("/proc/loadavg at the end: {}\n", load_average());
    let errors = network_report::errors_section(&reports);
    print_errors("non-2xx, failed or malformed answers", &errors);
    could_not_run(&failures)
}

/// `--actions`: perform and update-status across two signed PostgreSQL + Redis instances,
/// the backlog drain and the convergence after a source returns.
async fn run_actions(args: Args) -> anyhow::Result<()> {
    let command: Vec<String> = std::env::args().collect();
    let concurrency = args.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    let settings = actions::ActionsSettings {
        concurrency: usize::try_from(concurrency)?,
        seconds: args.seconds,
        backlog: args.backlog,
        backoff_cap: args.backoff_cap,
        outbox_concurrency: args.outbox_concurrency,
    };
    println!("# dpg actions benchmark\n");
    println!("- command: `{}`", command.join(" "));
    println!(
        "- settings: --actions --concurrency {concurrency} --seconds {} --backlog {} \
         --backoff-cap {}{}; A down {} s in each convergence case",
        args.seconds,
        args.backlog,
        args.backoff_cap,
        args.outbox_concurrency
            .map_or_else(String::new, |n| format!(" --outbox-concurrency {n}")),
        settings.down_seconds()
    );
    println!("- machine: {}", report::machine());
    if cfg!(debug_assertions) {
        println!("- WARNING: this is a debug build of the load generator; use --release");
    }
    let dpg = dpg_binary(args.dpg.as_deref())?;
    println!("- dpg binary: {}", dpg.display());
    println!(
        "- instances: A serves yellow_dot/student (source of every action), B \
         yellow_dot/tutor (target); each a fresh PostgreSQL database dpg_bench_<random>_a/_b \
         and its own Redis key prefix; RUST_LOG=warn, INSTANCE_ENV=development, \
         AUTH_MIDDLEWARE_ENABLED=false (users by x-dev-user-id: {} students on A, {} tutors on \
         B, one item each); one document from examples/dev.network.json listing A for \
         student and B for tutor, each with a fresh Ed25519 key, peer_auth: required; B has \
         OUTBOX_BACKOFF_CAP_SECONDS={} (reduced from 60 for the run), {}, every other \
         OUTBOX_* at its default (1 s base, 30 s lease)",
        actions::STUDENTS,
        actions::TUTORS,
        args.backoff_cap,
        args.outbox_concurrency.map_or_else(
            || "OUTBOX_CONCURRENCY_PER_PEER at its default (4 deliveries in flight per peer)"
                .to_string(),
            |n| format!("OUTBOX_CONCURRENCY_PER_PEER={n}")
        )
    );
    println!("- load generator: this process, {concurrency} keep-alive connections");
    println!(
        "- /proc/loadavg at the start: {} (other processes on this machine share its CPUs)\n",
        load_average()
    );

    let dev_network = repo_root()?.join("examples/dev.network.json");
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(settings.concurrency)
        .tcp_nodelay(true)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("could not build the HTTP client")?;
    let mut report = actions::ActionsReport::default();
    let outcome = actions::measure(
        &dpg,
        &dev_network,
        &args.postgres_url,
        &args.redis_url,
        &client,
        settings,
        &mut report,
    )
    .await;

    println!("## Measurements\n");
    println!("{}", actions_report::measurement_table(&report));
    println!(
        "{} actions were created by the perform phase; update-status cycles through \
         accepted, rejected and pending over them, each call by the tutor owning the target.\n",
        report.actions
    );
    println!("## Event delivery from B's outbox to A\n");
    println!("{}", actions_report::delivery_table(&report, &settings));
    for note in &report.notes {
        println!("- {note}");
    }
    println!("\n## Goals\n");
    println!("{}", actions_report::goals_table(&report, &settings));
    println!("/proc/loadavg at the end: {}\n", load_average());
    let errors = actions_report::errors_section(&report);
    print_errors("non-2xx or failed requests", &errors);
    if let Err(error) = outcome {
        println!("\n## Could not run\n\n- {error:#}");
        bail!("the actions benchmark could not run to its end");
    }
    Ok(())
}

/// The first three fields of `/proc/loadavg` (1, 5 and 15 minutes).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// What one instance of a backend measures.
#[derive(Debug, Clone, Copy)]
enum Run {
    /// Authentication off: every phase of [`phases::measure`].
    AuthOff,
    /// Authentication on: the item create with this credential.
    Authenticated(Credential),
}

impl Run {
    fn describe(self) -> String {
        match self {
            Run::AuthOff => "authentication off".to_string(),
            Run::Authenticated(credential) => {
                format!("authentication on, {} create", credential.name())
            }
        }
    }

    /// Variables added to the backend's own.
    fn env(self) -> Vec<(String, String)> {
        match self {
            Run::AuthOff => Vec::new(),
            Run::Authenticated(_) => vec![
                ("AUTH_MIDDLEWARE_ENABLED".to_string(), "true".to_string()),
                (
                    "API_KEY_WRITES_PER_HOUR".to_string(),
                    API_KEY_WRITES_PER_HOUR.to_string(),
                ),
            ],
        }
    }
}

/// The API key write budget of the authenticated instances: far above any run's creates.
const API_KEY_WRITES_PER_HOUR: u32 = 100_000_000;

/// Starts one instance, measures it and stops it (also when a phase fails).
async fn run_instance(
    dpg: &Path,
    network: &Path,
    env: &[(String, String)],
    client: &reqwest::Client,
    settings: Settings,
    run: Run,
    report: &mut BackendReport,
) -> anyhow::Result<()> {
    eprintln!(
        "[{}] starting {} ({}) ...",
        report.backend,
        dpg.display(),
        run.describe()
    );
    let mut env = env.to_vec();
    env.extend(run.env());
    let instance = DpgChild::start(dpg, network, &env, client)
        .await
        .context("the dpg instance did not start")?;
    eprintln!(
        "[{}] ready at {} (pid {})",
        report.backend,
        instance.base_url,
        instance.pid()
    );
    let measured = match run {
        Run::AuthOff => phases::measure(&instance, client, settings, report).await,
        Run::Authenticated(credential) => {
            phases::measure_authenticated_create(&instance, client, settings, credential, report)
                .await
        }
    };
    let log_tail = instance.log_tail(10);
    let stopped = instance.stop().await;
    eprintln!(
        "[{}] dpg {}",
        report.backend,
        stopped.as_deref().unwrap_or("could not be stopped")
    );
    if !log_tail.trim().is_empty() {
        eprintln!("[{}] last dpg log lines:\n{log_tail}", report.backend);
    }
    measured?;
    stopped.map(|_| ())
}

/// The postgres backend: a fresh database and Redis prefix around [`run_instance`].
async fn run_postgres(
    args: &Args,
    dpg: &Path,
    network: &Path,
    client: &reqwest::Client,
    settings: Settings,
    run: Run,
    report: &mut BackendReport,
) -> anyhow::Result<()> {
    let database = ScratchDatabase::create(&args.postgres_url, "").await?;
    let key_prefix = format!("dpg-bench:{}:", Uuid::new_v4().simple());
    eprintln!(
        "[postgres] database {}, Redis key prefix {key_prefix}",
        database.name
    );
    let env = vec![
        ("DATABASE_URL".to_string(), database.url.to_string()),
        ("REDIS_URL".to_string(), args.redis_url.clone()),
        ("REDIS_KEY_PREFIX".to_string(), key_prefix.clone()),
    ];
    let outcome = run_instance(dpg, network, &env, client, settings, run, report).await;
    let dropped = database.drop_now().await;
    let cleaned = clear_redis(&args.redis_url, &key_prefix).await;
    outcome?;
    dropped?;
    cleaned
}

/// Fails unless Redis answers at `url`.
async fn check_redis(url: &str) -> anyhow::Result<()> {
    let cache =
        RedisCache::new(url, "dpg-bench:check:").context("--redis-url is not a valid URL")?;
    cache
        .ping()
        .await
        .map_err(|error| anyhow::anyhow!("Redis (--redis-url) does not answer: {error}"))
}

async fn clear_redis(url: &str, key_prefix: &str) -> anyhow::Result<()> {
    let cache = RedisCache::new(url, key_prefix).context("--redis-url is not a valid URL")?;
    cache
        .delete_prefix("")
        .await
        .map_err(|error| anyhow::anyhow!("could not remove the Redis keys: {error}"))?;
    Ok(())
}

/// The repository root (this crate's parent directory).
fn repo_root() -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize()
        .with_context(|| format!("repository root {} not found", root.display()))
}

/// `--dpg`, else `dpg` next to this binary, else `<repo>/target/release/dpg`.
fn dpg_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        bail!("--dpg {} does not exist", path.display());
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("dpg")))
        .filter(|path| path.is_file() && path.parent().is_some_and(|d| d.ends_with("release")));
    if let Some(path) = beside {
        return Ok(path);
    }
    let fallback = repo_root()?.join("target/release/dpg");
    if fallback.is_file() {
        return Ok(fallback);
    }
    bail!(
        "{} is missing: build it first with `cargo build --release -p dpg-app`",
        fallback.display()
    )
}

/// The report's errors section, or that there were none (and a line on stderr when some).
fn print_errors(heading: &str, errors: &str) {
    if errors.is_empty() {
        println!("No request failed.");
    } else {
        println!("## ERRORS ({heading})\n\n{errors}");
        eprintln!("SOME REQUESTS FAILED: see the ERRORS section of the report");
    }
}

/// Lists the parts that could not run and fails the command when there are any.
fn could_not_run(failures: &[String]) -> anyhow::Result<()> {
    if failures.is_empty() {
        return Ok(());
    }
    println!("\n## Could not run\n");
    for failure in failures {
        println!("- {failure}");
    }
    bail!("{} part(s) of the benchmark could not run", failures.len());
}
