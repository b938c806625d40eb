//! The HTTP phases run against one started instance, in order: HTTP baseline, item create,
//! cold local fetch, warm local fetch; resident memory before and after. With authentication
//! on, an account and an API key, the same HTTP load, then the same item create with one
//! credential.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use super::child::DpgChild;
use super::load::{self, Measured, Until};

/// Users the created items are spread over (`x-dev-user-id: u<k>`).
pub const USERS: u64 = 10;
/// Distinct `item_state.city` values (`City<n % 50>`).
const CITIES: u64 = 50;
/// Offsets the cold fetch cycles through (each user has `--items / 500` items per city).
const COLD_OFFSETS: u64 = 20;
/// Limits the cold fetch cycles through (20..=100) once every offset has been used.
const COLD_LIMITS: u64 = 81;

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub items: u64,
    pub concurrency: usize,
    pub seconds: u64,
}

/// What one backend measured.
#[derive(Debug, Default)]
pub struct BackendReport {
    pub backend: &'static str,
    pub idle_rss_kib: Option<u64>,
    pub loaded_rss_kib: Option<u64>,
    pub phases: Vec<(Phase, Measured)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Baseline,
    Create,
    FetchCold,
    FetchWarm,
    /// Item create with `x-api-key`, on an instance with authentication on.
    CreateApiKey,
    /// Item create with `Authorization: Bearer <session token>`, same.
    CreateSession,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Baseline => "GET /health/live (HTTP baseline)",
            Phase::Create => "POST /api/v1/item/create",
            Phase::FetchCold => "GET /api/v1/item/fetch, cold (distinct queries)",
            Phase::FetchWarm => "GET /api/v1/item/fetch, warm (one query)",
            Phase::CreateApiKey => "POST /api/v1/item/create (API key)",
            Phase::CreateSession => "POST /api/v1/item/create (session)",
        }
    }

    /// Whether the phase ran on an instance with authentication on.
    pub fn authenticated(self) -> bool {
        matches!(self, Phase::CreateApiKey | Phase::CreateSession)
    }
}

/// The credential an authenticated create phase sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    ApiKey,
    Session,
}

impl Credential {
    pub fn phase(self) -> Phase {
        match self {
            Credential::ApiKey => Phase::CreateApiKey,
            Credential::Session => Phase::CreateSession,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Credential::ApiKey => "API key",
            Credential::Session => "session",
        }
    }
}

/// The account every authenticated create phase signs up.
const ACCOUNT: (&str, &str, &str) = ("Bench", "bench@example.org", "bench password");

impl BackendReport {
    pub fn phase(&self, phase: Phase) -> Option<&Measured> {
        self.phases
            .iter()
            .find(|(p, _)| *p == phase)
            .map(|(_, measured)| measured)
    }
}

/// Runs every phase against `child` and reads its memory around them. `report` is filled as
/// the phases complete, so that a failure still leaves what was measured.
pub async fn measure(
    child: &DpgChild,
    client: &reqwest::Client,
    settings: Settings,
    report: &mut BackendReport,
) -> anyhow::Result<()> {
    report.idle_rss_kib = Some(child.rss_kib()?);
    let timed = Until::Elapsed(Duration::from_secs(settings.seconds));
    let c = settings.concurrency;

    progress(report.backend, Phase::Baseline, settings);
    let live = child.url("/health/live");
    let measured = with_cpu(
        child,
        load::run(client, c, timed, move |client, _| client.get(&live)),
    )
    .await?;
    report.phases.push((Phase::Baseline, measured));

    progress(report.backend, Phase::Create, settings);
    let create = child.url("/api/v1/item/create");
    let measured = with_cpu(
        child,
        load::run(
            client,
            c,
            Until::Requests(settings.items),
            move |client, n| {
                client
                    .post(&create)
                    .header("x-dev-user-id", format!("u{}", (n / CITIES) % USERS))
                    .json(&create_body(n))
            },
        ),
    )
    .await?;
    report.phases.push((Phase::Create, measured));

    progress(report.backend, Phase::FetchCold, settings);
    let misses_before = child.cache_misses(client).await;
    let fetch = child.url("/api/v1/item/fetch");
    let mut measured = with_cpu(
        child,
        load::run(client, c, timed, move |client, n| {
            let (user, city, offset, limit) = cold_query(n);
            client
                .get(format!(
                    "{fetch}?item_network=yellow_dot&item_domain=student&limit={limit}\
                 &offset={offset}&item_state[city]=City{city}"
                ))
                .header("x-dev-user-id", format!("u{user}"))
        }),
    )
    .await?;
    measured.cache_misses = misses_between(misses_before, child.cache_misses(client).await);
    report.phases.push((Phase::FetchCold, measured));

    progress(report.backend, Phase::FetchWarm, settings);
    let misses_before = child.cache_misses(client).await;
    let warm = format!(
        "{}?item_network=yellow_dot&item_domain=student&limit=20&offset=0&item_state[city]=City0",
        child.url("/api/v1/item/fetch")
    );
    let mut measured = with_cpu(
        child,
        load::run(client, c, timed, move |client, _| {
            client.get(&warm).header("x-dev-user-id", "u0")
        }),
    )
    .await?;
    measured.cache_misses = misses_between(misses_before, child.cache_misses(client).await);
    report.phases.push((Phase::FetchWarm, measured));

    report.loaded_rss_kib = Some(child.rss_kib()?);
    Ok(())
}

/// Runs `phase` and records the CPU time `child` used meanwhile.
async fn with_cpu(
    child: &DpgChild,
    phase: impl Future<Output = anyhow::Result<Measured>>,
) -> anyhow::Result<Measured> {
    let before = child.cpu_micros()?;
    let mut measured = phase.await?;
    measured.instance_cpu_us = Some(child.cpu_micros()?.saturating_sub(before));
    Ok(measured)
}

/// On an instance started with `AUTH_MIDDLEWARE_ENABLED=true`: signs up the account and
/// creates an API key (both for either credential, so that the instances match), runs the
/// same HTTP load as [`measure`]'s baseline without recording it, then the same item create
/// as [`measure`] with `credential`. The items all belong to the one account.
pub async fn measure_authenticated_create(
    child: &DpgChild,
    client: &reqwest::Client,
    settings: Settings,
    credential: Credential,
    report: &mut BackendReport,
) -> anyhow::Result<()> {
    let (token, key) = account(child, client).await?;
    let c = settings.concurrency;

    eprintln!(
        "[{}] GET /health/live, not recorded ({} s) ...",
        report.backend, settings.seconds
    );
    let live = child.url("/health/live");
    let timed = Until::Elapsed(Duration::from_secs(settings.seconds));
    load::run(client, c, timed, move |client, _| client.get(&live)).await?;

    let phase = credential.phase();
    progress(report.backend, phase, settings);
    let (name, value) = match credential {
        Credential::ApiKey => ("x-api-key", key),
        Credential::Session => ("authorization", format!("Bearer {token}")),
    };
    let create = child.url("/api/v1/item/create");
    let measured = with_cpu(
        child,
        load::run(
            client,
            c,
            Until::Requests(settings.items),
            move |client, n| {
                client
                    .post(&create)
                    .header(name, &value)
                    .json(&create_body(n))
            },
        ),
    )
    .await?;
    report.phases.push((phase, measured));
    Ok(())
}

/// Signs up [`ACCOUNT`] and creates an API key: (session token, API key).
async fn account(child: &DpgChild, client: &reqwest::Client) -> anyhow::Result<(String, String)> {
    let (name, email, password) = ACCOUNT;
    let signed_up = post_json(
        client,
        &child.url("/api/auth/sign-up/email"),
        None,
        &json!({"name": name, "email": email, "password": password}),
    )
    .await
    .context("POST /api/auth/sign-up/email")?;
    let token = string_field(&signed_up, "token").context("POST /api/auth/sign-up/email")?;
    let created = post_json(
        client,
        &child.url("/api/auth/api-key/create"),
        Some(&token),
        &json!({"name": "bench"}),
    )
    .await
    .context("POST /api/auth/api-key/create")?;
    let key = string_field(&created, "key").context("POST /api/auth/api-key/create")?;
    Ok((token, key))
}

async fn post_json(
    client: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    body: &Value,
) -> anyhow::Result<Value> {
    let mut request = client.post(url).json(body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.context("request failed")?;
    let status = response.status();
    let text = response.text().await.context("body not read")?;
    if !status.is_success() {
        let start: String = text.chars().take(300).collect();
        bail!("HTTP {status}: {start}");
    }
    serde_json::from_str(&text).context("the answer is not JSON")
}

fn string_field(value: &Value, field: &str) -> anyhow::Result<String> {
    value
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the answer has no string `{field}`"))
}

/// The n-th created item: a profile_1.0 student in city `n % 50`.
pub fn create_body(n: u64) -> Value {
    json!({
        "item_network": "yellow_dot",
        "item_domain": "student",
        "item_type": "profile_1.0",
        "item_state": {"name": format!("S{n}"), "grade": "10", "city": format!("City{}", n % CITIES)}
    })
}

fn misses_between(before: Option<u64>, after: Option<u64>) -> Option<u64> {
    Some(after?.saturating_sub(before?))
}

/// The n-th cold query: (user, city, offset, limit). Distinct for n below
/// 10 × 50 × 20 × 81 = 810,000 requests, far more than a run makes, so no query repeats
/// within the 1 s cache lifetime. Offsets stay within a user's items of one city (20 with
/// the default 10,000 items), so the pages are not empty.
fn cold_query(n: u64) -> (u64, u64, u64, u64) {
    let user = n % USERS;
    let city = (n / USERS) % CITIES;
    let offset = (n / (USERS * CITIES)) % COLD_OFFSETS;
    let limit = 20 + (n / (USERS * CITIES * COLD_OFFSETS)) % COLD_LIMITS;
    (user, city, offset, limit)
}

fn progress(backend: &str, phase: Phase, settings: Settings) {
    let extent = match phase {
        Phase::Create | Phase::CreateApiKey | Phase::CreateSession => {
            format!("{} requests", settings.items)
        }
        _ => format!("{} s", settings.seconds),
    };
    eprintln!("[{backend}] {} ({extent}) ...", phase.label());
}

#[cfg(test)]
mod tests {
    use super::cold_query;
    use std::collections::HashSet;

    #[test]
    fn cold_queries_do_not_repeat() {
        let queries: HashSet<_> = (0..810_000).map(cold_query).collect();
        assert_eq!(queries.len(), 810_000);
        assert_eq!(cold_query(0), (0, 0, 0, 20));
    }
}
