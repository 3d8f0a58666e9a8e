//! `gatehouse bench`: what a call through this deployment costs, measured on it, beside the
//! same call made straight to the upstream.
//!
//! Design (docs/cli.md, docs/api-keys-vs-oauth.md):
//! - Scenarios ([`run::Scenario`]), each a closed loop of N workers over keep-alive HTTP/1.1
//!   (one connection per worker), every request an MCP `tools/call` of `--tool` (the example
//!   server's `echo`) in a session opened once per worker before the clock starts: `direct`
//!   to the upstream; `api-key`; `jwt-first-sight` (each call a token the gateway has not
//!   verified yet: the ones the `token` run just minted); `jwt-cached` (one token); and two
//!   calls a request may have to add whole: `token` (a client-credentials grant at
//!   `/oauth/token`) and `introspect` (a resource server's RFC 7662 call).
//! - Bounded always: each run stops at `--requests` or `--duration`, whichever comes first,
//!   and each request at 30 s. Targets must be loopback unless `--allow-remote`: a load tool
//!   must not be pointed at someone else's server by mistake.
//! - Credentials from flags or `GATEHOUSE_BENCH_*`, or `--provision`: a throw-away client
//!   with a connection to the server, an API key and a client secret, made through the local
//!   [`Deployment`] and deleted afterwards, whatever the run's outcome.
//! - CPU per request only for a process it can read (`--gateway-pid`): never estimated.
//! - A failed request is counted in ERRORS, never in the latencies, and makes the command
//!   exit non-zero.

mod client;
mod plot;
mod png;
mod provision;
mod report;
mod run;

use anyhow::{Context, bail};
use gatehouse::Config;
use http::Uri;
use serde_json::Value;
use std::{
    net::IpAddr,
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::{
    failure,
    output::{Format, print_data, write_stdout},
};
use report::{Report, Row, Skipped};
use run::{Inputs, Scenario, Target};

/// The most workers one run may start.
const MAX_CONCURRENCY: usize = 1_024;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// The gateway's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub gateway: String,
    /// The server's name at the gateway (calls go to {gateway}/{server}/mcp).
    #[arg(long, value_name = "NAME")]
    pub server: String,
    /// The upstream's own MCP URL, called directly for comparison, e.g.
    /// http://127.0.0.1:9090/mcp.
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// Workers per run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub concurrency: Vec<usize>,
    /// The longest each run (scenario × concurrency) may take.
    #[arg(long, value_parser = gatehouse_model::duration::parse, default_value = "5s")]
    pub duration: Duration,
    /// The most requests each run may make.
    #[arg(long, default_value_t = 2_000)]
    pub requests: u64,
    /// The tool every call calls.
    #[arg(long, default_value = "echo")]
    pub tool: String,
    /// Its arguments (JSON).
    #[arg(long, default_value = r#"{"text":"gatehouse bench"}"#)]
    pub arguments: String,
    /// An API key of a client connected to the server.
    #[arg(long, env = "GATEHOUSE_BENCH_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// An OAuth client allowed the client_credentials grant, connected to the server.
    #[arg(long, env = "GATEHOUSE_BENCH_CLIENT_ID")]
    pub client_id: Option<String>,
    #[arg(long, env = "GATEHOUSE_BENCH_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// Make a throw-away client, connection, key and client secret in the local database
    /// (the one the running gateway serves) and delete them afterwards.
    #[arg(long)]
    pub provision: bool,
    /// The gateway's process id on this machine, to report its CPU time per request.
    #[arg(long, value_name = "PID")]
    pub gateway_pid: Option<u32>,
    /// Write a chart of the results: SVG or PNG, by the file's extension.
    #[arg(long, value_name = "FILE.png|FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Allow targets that are not loopback addresses.
    #[arg(long)]
    pub allow_remote: bool,
}

/// Credentials the scenarios use.
pub struct Credentials {
    pub key: Option<String>,
    pub client: Option<(String, String)>,
}

pub async fn run(
    config: Config,
    args: BenchArgs,
    format: Format,
    actor: Option<String>,
) -> anyhow::Result<ExitCode> {
    let plan = Plan::check(&args).await?;
    if args.provision {
        let deployment: Box<dyn crate::deployment::Deployment> =
            Box::new(crate::deployment::local::Local::open(config, actor).await?);
        let made = provision::make(&*deployment, &args.server, &args.tool).await;
        let made = match made {
            Ok(made) => made,
            Err(err) => {
                deployment.close().await;
                return Err(err);
            }
        };
        let measured = measure(&args, &plan, &made.credentials, format).await;
        let removed = provision::remove(&*deployment, &made).await;
        deployment.close().await;
        let code = measured?;
        removed?;
        return Ok(code);
    }
    let client = match (args.client_id.clone(), args.client_secret.clone()) {
        (Some(id), Some(secret)) => Some((id, secret)),
        (None, None) => None,
        _ => bail!("give both --client-id and --client-secret, or neither"),
    };
    let credentials = Credentials {
        key: args.key.clone(),
        client,
    };
    measure(&args, &plan, &credentials, format).await
}

/// The checked command line.
struct Plan {
    gateway_mcp: Uri,
    gateway_base: String,
    upstream: Uri,
    arguments: Value,
}

impl Plan {
    async fn check(args: &BenchArgs) -> anyhow::Result<Self> {
        if args.concurrency.is_empty()
            || args
                .concurrency
                .iter()
                .any(|c| *c == 0 || *c > MAX_CONCURRENCY)
        {
            bail!("--concurrency takes numbers from 1 to {MAX_CONCURRENCY}");
        }
        if args.requests == 0 || args.duration.is_zero() {
            bail!("--requests and --duration must be above zero");
        }
        if let Some(plot) = &args.plot
            && PlotFormat::of(plot).is_none()
        {
            bail!("--plot writes PNG or SVG: name the file FILE.png or FILE.svg");
        }
        let arguments: Value =
            serde_json::from_str(&args.arguments).context("--arguments is not JSON")?;
        let gateway_base = args.gateway.trim_end_matches('/').to_owned();
        let gateway_mcp: Uri = format!("{gateway_base}/{}/mcp", args.server)
            .parse()
            .context("--gateway and --server do not make a URL")?;
        let upstream: Uri = args.upstream.parse().context("--upstream is not a URL")?;
        for uri in [&gateway_mcp, &upstream] {
            if !matches!(uri.scheme_str(), Some("http" | "https")) {
                bail!("{uri}: an http or https URL is needed");
            }
            if !args.allow_remote {
                loopback_only(uri).await?;
            }
        }
        Ok(Self {
            gateway_mcp,
            gateway_base,
            upstream,
            arguments,
        })
    }
}

/// Refuses a target any of whose addresses is not a loopback address.
async fn loopback_only(uri: &Uri) -> anyhow::Result<()> {
    let host = uri
        .host()
        .context("a URL without a host")?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .with_context(|| format!("cannot resolve {host}"))?
            .map(|a| a.ip())
            .collect(),
    };
    if addresses.is_empty() || addresses.iter().any(|ip| !ip.is_loopback()) {
        return Err(NotLoopback {
            url: uri.to_string(),
        }
        .into());
    }
    Ok(())
}

/// A target off this machine without `--allow-remote`.
#[derive(Debug, thiserror::Error)]
#[error(
    "{url} is not a loopback address: a load test of another machine needs --allow-remote \
     (and its owner's consent)"
)]
pub struct NotLoopback {
    pub url: String,
}

async fn measure(
    args: &BenchArgs,
    plan: &Plan,
    credentials: &Credentials,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let setup = client::worker_client()?;
    let client_basic = match &credentials.client {
        Some((id, secret)) => Some(client::basic(id, secret)?),
        None => None,
    };
    let resource = match &client_basic {
        Some(_) => resource_of(&setup, &plan.gateway_base, &args.server).await?,
        None => String::new(),
    };
    let target = Arc::new(Target {
        upstream: plan.upstream.clone(),
        gateway_mcp: plan.gateway_mcp.clone(),
        token_url: format!("{}/oauth/token", plan.gateway_base).parse()?,
        introspect_url: format!("{}/oauth/introspect", plan.gateway_base).parse()?,
        tool: args.tool.clone(),
        arguments: plan.arguments.clone(),
        api_key: match &credentials.key {
            Some(key) => Some(client::bearer(key)?),
            None => None,
        },
        client_basic,
        resource,
    });
    let session_token = match target.client_basic {
        Some(_) => Some(client::bearer(&run::mint(&setup, &target).await?)?),
        None => None,
    };
    let mut report = Report {
        gateway: plan.gateway_base.clone(),
        upstream: args.upstream.clone(),
        server: args.server.clone(),
        tool: args.tool.clone(),
        requests_limit: args.requests,
        duration_limit_ms: u64::try_from(args.duration.as_millis()).unwrap_or(u64::MAX),
        cpu_measured: args.gateway_pid.is_some(),
        rows: Vec::new(),
        skipped: Vec::new(),
        notes: Vec::new(),
    };
    if args.gateway_pid.is_none() {
        report.notes.push(
            "CPU per request not measured: give --gateway-pid PID of a gateway on this machine"
                .into(),
        );
    }
    let scenarios: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| match skip_reason(*s, credentials) {
            Some(reason) => {
                report.skipped.push(Skipped {
                    scenario: *s,
                    reason: reason.into(),
                });
                false
            }
            None => true,
        })
        .collect();
    let ticks_per_second = report::ticks_per_second();
    for &concurrency in &args.concurrency {
        let mut minted = Vec::new();
        for &scenario in &scenarios {
            let inputs = Arc::new(Inputs {
                session_token: session_token.clone(),
                fresh_tokens: Mutex::new(std::mem::take(&mut minted)),
                keep_minted: scenarios.contains(&Scenario::JwtFirstSight),
            });
            let bounds = run::Bounds {
                concurrency,
                requests: args.requests,
                duration: args.duration,
            };
            let outcome = run::run(scenario, bounds, target.clone(), inputs, args.gateway_pid)
                .await
                .with_context(|| format!("{} at concurrency {concurrency}", scenario.name()))?;
            // The direct run's CPU is the gateway idling: not a cost of its requests.
            let cpu = outcome
                .cpu_ticks
                .filter(|_| scenario != Scenario::Direct)
                .map(|ticks| (ticks, ticks_per_second));
            report
                .rows
                .push(Row::new(scenario, concurrency, &outcome, cpu));
            if scenario == Scenario::Token {
                minted = outcome.minted;
            }
        }
    }
    report.compare_with_direct();
    if let Some(path) = &args.plot {
        let shapes = plot::chart(&report);
        let bytes = match PlotFormat::of(path) {
            Some(PlotFormat::Png) => png::png(&shapes)?,
            Some(PlotFormat::Svg) | None => plot::svg(&shapes).into_bytes(),
        };
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    if format.is_data() {
        print_data(format, &report)?;
    } else {
        write_stdout(&report.table());
    }
    Ok(if report.errors() > 0 {
        ExitCode::from(failure::REFUSED)
    } else {
        ExitCode::SUCCESS
    })
}

fn skip_reason(scenario: Scenario, credentials: &Credentials) -> Option<&'static str> {
    match scenario {
        Scenario::Direct => None,
        Scenario::ApiKey => credentials
            .key
            .is_none()
            .then_some("no API key (--key, GATEHOUSE_BENCH_KEY or --provision)"),
        _ => credentials.client.is_none().then_some(
            "no OAuth client (--client-id and --client-secret, GATEHOUSE_BENCH_CLIENT_ID and \
             GATEHOUSE_BENCH_CLIENT_SECRET, or --provision)",
        ),
    }
}

/// The server's OAuth resource identifier, from its RFC 9728 metadata (it follows
/// `public_url`, which need not be the address the bench reaches the gateway at).
async fn resource_of(
    client: &client::HttpClient,
    gateway: &str,
    server: &str,
) -> anyhow::Result<String> {
    let url: Uri =
        format!("{gateway}/.well-known/oauth-protected-resource/{server}/mcp").parse()?;
    let request = http::Request::get(url.clone()).body(http_body_util::Full::default())?;
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .with_context(|| format!("GET {url}: no answer"))??;
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await?
        .to_bytes();
    if !status.is_success() {
        bail!(
            "GET {url} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let metadata: Value = serde_json::from_slice(&body)?;
    metadata["resource"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("{url} names no resource"))
}

/// What `--plot` writes, from the file's extension (checked before any load is sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PlotFormat {
    Png,
    Svg,
}

impl PlotFormat {
    fn of(path: &std::path::Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "png" => Some(Self::Png),
            "svg" => Some(Self::Svg),
            _ => None,
        }
    }
}
