//! The closed loops: N workers, each making one request at a time until the run's request
//! budget is spent or its deadline passes. Only the measured request is timed; a worker's
//! session set-up (`initialize`) happens before the clock starts.

use anyhow::Context;
use hdrhistogram::Histogram;
use http::{HeaderValue, Uri};
use serde_json::Value;
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use super::client::{self, HttpClient, McpSession};

/// What one scenario does per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// `tools/call` straight to the upstream.
    Direct,
    /// Through the gateway with an API key.
    ApiKey,
    /// A client-credentials token request to `/oauth/token`, alone.
    Token,
    /// Through the gateway, each call with a token the gateway has not seen.
    JwtFirstSight,
    /// Through the gateway, one token for every call.
    JwtCached,
    /// A resource server's RFC 7662 call to `/oauth/introspect` with the token.
    Introspect,
}

impl Scenario {
    /// In the order they run at each concurrency: token acquisition mints the tokens the
    /// first-sight run then spends.
    pub const ALL: [Scenario; 6] = [
        Scenario::Direct,
        Scenario::ApiKey,
        Scenario::Token,
        Scenario::JwtFirstSight,
        Scenario::JwtCached,
        Scenario::Introspect,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Direct => "direct",
            Scenario::ApiKey => "api-key",
            Scenario::Token => "token",
            Scenario::JwtFirstSight => "jwt-first-sight",
            Scenario::JwtCached => "jwt-cached",
            Scenario::Introspect => "introspect",
        }
    }

    /// Whether the scenario is a `tools/call` through the gateway (so its added latency is
    /// its p50 less the direct p50), rather than a call a request has to add whole.
    pub fn through_gateway(self) -> bool {
        matches!(
            self,
            Scenario::ApiKey | Scenario::JwtFirstSight | Scenario::JwtCached
        )
    }
}

/// Where the requests go and with what.
pub struct Target {
    pub upstream: Uri,
    pub gateway_mcp: Uri,
    pub token_url: Uri,
    pub introspect_url: Uri,
    pub tool: String,
    pub arguments: Value,
    pub api_key: Option<HeaderValue>,
    /// `Authorization: Basic` of the OAuth client.
    pub client_basic: Option<HeaderValue>,
    /// The `resource` tokens are asked for (the server's MCP URL at the gateway).
    pub resource: String,
}

/// What a run collected.
pub struct Outcome {
    pub latencies: Histogram<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Access tokens minted by a token run (kept for the first-sight run).
    pub minted: Vec<String>,
    /// The gateway process's CPU time over the measured requests (not the set-up), in clock
    /// ticks, when its process id was given.
    pub cpu_ticks: Option<u64>,
}

struct Budget {
    tickets: AtomicU64,
    deadline: Instant,
}

impl Budget {
    fn take(&self) -> bool {
        Instant::now() < self.deadline
            && self
                .tickets
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
    }
}

/// What a scenario's workers share beyond the target.
pub struct Inputs {
    /// The token every call of the cached run (and every session's `initialize`) uses.
    pub session_token: Option<HeaderValue>,
    /// Unseen tokens, one per first-sight call.
    pub fresh_tokens: Mutex<Vec<String>>,
    /// Whether a token run keeps what it mints.
    pub keep_minted: bool,
}

struct WorkerResult {
    latencies: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
    minted: Vec<String>,
}

pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    // 1 µs to 10 minutes at three significant figures.
    Histogram::new_with_bounds(1, 600_000_000, 3).context("latency histogram")
}

/// How long and how much one run may go on.
#[derive(Clone, Copy)]
pub struct Bounds {
    pub concurrency: usize,
    pub requests: u64,
    pub duration: Duration,
}

/// Runs `scenario` with `concurrency` workers until `requests` are made or `duration` passes;
/// with `gateway_pid`, reads that process's CPU time around the measured requests.
pub async fn run(
    scenario: Scenario,
    bounds: Bounds,
    target: Arc<Target>,
    inputs: Arc<Inputs>,
    gateway_pid: Option<u32>,
) -> anyhow::Result<Outcome> {
    let Bounds {
        concurrency,
        requests,
        duration,
    } = bounds;
    let mut sessions = Vec::with_capacity(concurrency);
    // Set-up first (every worker's connection and session), then the clock.
    for _ in 0..concurrency {
        let client = client::worker_client()?;
        let session = match scenario {
            Scenario::Direct => Some(McpSession::open(&client, &target.upstream, None).await?),
            Scenario::ApiKey => {
                Some(McpSession::open(&client, &target.gateway_mcp, target.api_key.as_ref()).await?)
            }
            Scenario::JwtFirstSight | Scenario::JwtCached => Some(
                McpSession::open(&client, &target.gateway_mcp, inputs.session_token.as_ref())
                    .await?,
            ),
            Scenario::Token | Scenario::Introspect => None,
        };
        sessions.push((client, session));
    }
    let budget = Arc::new(Budget {
        tickets: AtomicU64::new(requests),
        deadline: Instant::now() + duration,
    });
    let cpu_before = gateway_pid.map(super::report::cpu_ticks).transpose()?;
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for (client, session) in sessions {
        let (target, inputs, budget) = (target.clone(), inputs.clone(), budget.clone());
        workers.spawn(
            async move { worker(scenario, client, session, &target, &inputs, &budget).await },
        );
    }
    let mut outcome = Outcome {
        latencies: histogram()?,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        minted: Vec::new(),
        cpu_ticks: None,
    };
    while let Some(done) = workers.join_next().await {
        let done = done.context("a bench worker failed")??;
        outcome.latencies.add(&done.latencies)?;
        outcome.errors += done.errors;
        if outcome.first_error.is_none() {
            outcome.first_error = done.first_error;
        }
        outcome.minted.extend(done.minted);
    }
    outcome.elapsed = started.elapsed();
    if let (Some(pid), Some(before)) = (gateway_pid, cpu_before) {
        outcome.cpu_ticks = Some(super::report::cpu_ticks(pid)?.saturating_sub(before));
    }
    Ok(outcome)
}

async fn worker(
    scenario: Scenario,
    client: HttpClient,
    mut session: Option<McpSession>,
    target: &Target,
    inputs: &Inputs,
    budget: &Budget,
) -> anyhow::Result<WorkerResult> {
    let mut result = WorkerResult {
        latencies: histogram()?,
        errors: 0,
        first_error: None,
        minted: Vec::new(),
    };
    while budget.take() {
        // Picked before the clock starts: only the request is measured.
        let fresh = match scenario {
            Scenario::JwtFirstSight => match next_fresh(inputs) {
                Some(token) => Some(client::bearer(&token)?),
                None => break,
            },
            _ => None,
        };
        let started = Instant::now();
        let done = one(
            scenario,
            &client,
            session.as_mut(),
            target,
            inputs,
            fresh.as_ref(),
        )
        .await;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match done {
            Ok(minted) => {
                result.latencies.saturating_record(micros.max(1));
                if let Some(token) = minted.filter(|_| inputs.keep_minted) {
                    result.minted.push(token);
                }
            }
            Err(err) => {
                result.errors += 1;
                if result.first_error.is_none() {
                    result.first_error = Some(format!("{err:#}"));
                }
            }
        }
    }
    Ok(result)
}

fn next_fresh(inputs: &Inputs) -> Option<String> {
    inputs.fresh_tokens.lock().ok()?.pop()
}

/// One measured request; a token run answers the token it was given.
async fn one(
    scenario: Scenario,
    client: &HttpClient,
    session: Option<&mut McpSession>,
    target: &Target,
    inputs: &Inputs,
    fresh: Option<&HeaderValue>,
) -> anyhow::Result<Option<String>> {
    let auth = match scenario {
        Scenario::Direct => None,
        Scenario::ApiKey => target.api_key.as_ref(),
        Scenario::JwtFirstSight => fresh,
        Scenario::JwtCached => inputs.session_token.as_ref(),
        Scenario::Token => {
            return mint(client, target).await.map(Some);
        }
        Scenario::Introspect => {
            let token = inputs
                .session_token
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .context("no token to introspect")?;
            let basic = target.client_basic.as_ref().context("no OAuth client")?;
            let answer = client::oauth_form(
                client,
                &target.introspect_url,
                basic,
                &[("token", token), ("token_type_hint", "access_token")],
            )
            .await?;
            anyhow::ensure!(
                answer["active"] == Value::Bool(true),
                "introspection called the token inactive: {answer}"
            );
            return Ok(None);
        }
    };
    let session = session.context("no MCP session")?;
    session
        .call(client, auth, &target.tool, &target.arguments)
        .await?;
    Ok(None)
}

/// A client-credentials access token for the server's resource.
pub async fn mint(client: &HttpClient, target: &Target) -> anyhow::Result<String> {
    let basic = target.client_basic.as_ref().context("no OAuth client")?;
    let answer = client::oauth_form(
        client,
        &target.token_url,
        basic,
        &[
            ("grant_type", "client_credentials"),
            ("resource", &target.resource),
        ],
    )
    .await?;
    answer["access_token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("a token answer without access_token: {answer}"))
}
