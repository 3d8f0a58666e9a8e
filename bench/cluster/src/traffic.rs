//! The callers: each worker opens a legacy session and sends its calls to the replicas in
//! turn (the session moves with them), as a round-robin balancer would.

use crate::http::{Answer, Connection, Failure};
use base64::Engine as _;
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, HashMap},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

const PATH: &str = "/demo/mcp";
/// Access tokens live `oauth.access_token_ttl` (10 min): fetched again well before.
const TOKEN_REFRESH: Duration = Duration::from_secs(240);

pub struct Options {
    replicas: Vec<String>,
    seconds: f64,
    max_requests: u64,
    workers: usize,
    key: String,
    limited_key: String,
    rate_per_minute: f64,
    rate_burst: f64,
    oauth_client: String,
    oauth_secret: String,
    resource: String,
}

fn required(options: &HashMap<String, String>, name: &str) -> Result<String, String> {
    options
        .get(name)
        .cloned()
        .ok_or_else(|| format!("--{name} is required"))
}

fn number(options: &HashMap<String, String>, name: &str, default: f64) -> Result<f64, String> {
    options.get(name).map_or(Ok(default), |v| {
        v.parse().map_err(|_| format!("--{name}: a number"))
    })
}

impl Options {
    pub fn from(options: &HashMap<String, String>) -> Result<Self, String> {
        Ok(Self {
            replicas: required(options, "replicas")?
                .split(',')
                .map(str::to_owned)
                .collect(),
            seconds: number(options, "seconds", 30.0)?,
            max_requests: number(options, "max-requests", 5_000_000.0)? as u64,
            workers: number(options, "workers", 12.0)? as usize,
            key: required(options, "key")?,
            limited_key: required(options, "limited-key")?,
            rate_per_minute: number(options, "rate-per-minute", 600.0)?,
            rate_burst: number(options, "rate-burst", 1.0)?,
            oauth_client: required(options, "oauth-client")?,
            oauth_secret: required(options, "oauth-secret")?,
            resource: required(options, "resource")?,
        })
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    KeyEcho,
    KeyAdd,
    JwtEcho,
    Denied,
    Limited,
}

const KINDS: [Kind; 6] = [
    Kind::KeyEcho,
    Kind::KeyAdd,
    Kind::JwtEcho,
    Kind::Denied,
    Kind::Limited,
    Kind::KeyEcho,
];

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    answered: u64,
    unexpected: BTreeMap<String, u64>,
    lost: u64,
    retried_elsewhere: u64,
    unreachable: u64,
    sessions_reopened: u64,
    limited_admitted: u64,
    limited_refused: u64,
    limited_first: Option<Instant>,
}

struct Shared<'a> {
    options: &'a Options,
    stop: AtomicBool,
    sent: AtomicU64,
    deadline: Instant,
}

struct Caller<'a> {
    shared: &'a Shared<'a>,
    connections: Vec<Connection>,
    next: usize,
    tally: Tally,
    bearer: String,
    fetched: Option<Instant>,
    kind: Kind,
}

impl Caller<'_> {
    /// Sends to the replicas in turn; a request no replica read goes to the next one.
    fn send(&mut self, headers: &[(&str, &str)], body: &str) -> Option<Answer> {
        let replicas = &self.shared.options.replicas;
        for attempt in 0..replicas.len() * 2 {
            let at = self.next % replicas.len();
            self.next += 1;
            match self.connections[at].request(&replicas[at], "POST", PATH, headers, body) {
                Ok(answer) => return Some(answer),
                Err(Failure::NotRead) => {
                    self.tally.retried_elsewhere += 1;
                    if attempt >= replicas.len() {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                Err(Failure::Lost(err)) => {
                    eprintln!("lost on {}: {err}", replicas[at]);
                    self.tally.lost += 1;
                    return None;
                }
            }
        }
        self.tally.unreachable += 1;
        None
    }

    fn credential(&mut self) -> Option<String> {
        let options = self.shared.options;
        match self.kind {
            Kind::Limited => Some(options.limited_key.clone()),
            Kind::JwtEcho => {
                if self.fetched.is_none_or(|at| at.elapsed() > TOKEN_REFRESH) {
                    self.bearer = self.fetch_token()?;
                    self.fetched = Some(Instant::now());
                }
                Some(self.bearer.clone())
            }
            _ => Some(options.key.clone()),
        }
    }

    fn fetch_token(&mut self) -> Option<String> {
        let options = self.shared.options;
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", options.oauth_client, options.oauth_secret));
        let body = format!(
            "grant_type=client_credentials&resource={}",
            percent_encode(&options.resource)
        );
        let replicas = &options.replicas;
        for _ in 0..replicas.len() * 2 {
            let at = self.next % replicas.len();
            self.next += 1;
            let headers = [
                ("Authorization", format!("Basic {basic}")),
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded".to_owned(),
                ),
            ];
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            match self.connections[at].request(
                &replicas[at],
                "POST",
                "/oauth/token",
                &headers,
                &body,
            ) {
                Ok(answer) if answer.status == 200 => {
                    let token: Value = serde_json::from_str(&answer.body).ok()?;
                    return token["access_token"].as_str().map(str::to_owned);
                }
                Ok(answer) => {
                    *self
                        .tally
                        .unexpected
                        .entry(format!("token {}", answer.status))
                        .or_default() += 1;
                    return None;
                }
                Err(Failure::NotRead) => self.tally.retried_elsewhere += 1,
                Err(Failure::Lost(_)) => {
                    self.tally.lost += 1;
                    return None;
                }
            }
        }
        None
    }

    fn open_session(&mut self, bearer: &str) -> Option<String> {
        let auth = format!("Bearer {bearer}");
        let initialize = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "cluster-load", "version": "1"}}})
        .to_string();
        let headers = mcp_headers(&auth, None);
        let started = Instant::now();
        let answer = self.send(&headers, &initialize)?;
        if !self.expected("initialize", answer.status, 200, started) {
            return None;
        }
        let session = answer.session?;
        let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let started = Instant::now();
        let answer = self.send(&mcp_headers(&auth, Some(&session)), initialized)?;
        self.expected("initialized", answer.status, 202, started);
        Some(session)
    }

    /// Every request of the rate-limited client counts against its limit, these included.
    fn expected(&mut self, what: &str, status: u16, ok: u16, started: Instant) -> bool {
        if self.kind == Kind::Limited {
            match status {
                429 => {
                    self.tally.limited_refused += 1;
                    return false;
                }
                _ if status == ok => {
                    self.tally.limited_first.get_or_insert(started);
                    self.tally.limited_admitted += 1;
                }
                _ => {}
            }
        }
        if status != ok {
            self.unexpected(what, status);
        }
        status == ok
    }

    fn unexpected(&mut self, what: &str, status: u16) {
        *self
            .tally
            .unexpected
            .entry(format!("{what} {status}"))
            .or_default() += 1;
    }

    fn run(mut self) -> Tally {
        let mut session: Option<(String, String)> = None;
        let mut n = 0u64;
        while !self.shared.stop.load(Ordering::Relaxed) && Instant::now() < self.shared.deadline {
            if self.shared.sent.fetch_add(1, Ordering::Relaxed) >= self.shared.options.max_requests
            {
                break;
            }
            let Some(bearer) = self.credential() else {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            let id = match &session {
                Some((owner, id)) if *owner == bearer => id.clone(),
                _ => match self.open_session(&bearer) {
                    Some(id) => {
                        session = Some((bearer.clone(), id.clone()));
                        id
                    }
                    None => continue,
                },
            };
            n += 1;
            let (tool, arguments) = match self.kind {
                Kind::KeyAdd => ("add", json!({"a": n, "b": 1})),
                Kind::Denied => ("delete_records", json!({})),
                _ => ("echo", json!({"text": format!("call {n}")})),
            };
            let call = json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
                "params": {"name": tool, "arguments": arguments}})
            .to_string();
            let auth = format!("Bearer {bearer}");
            let started = Instant::now();
            let Some(answer) = self.send(&mcp_headers(&auth, Some(&id)), &call) else {
                continue;
            };
            let micros = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
            self.tally.latencies_us.push(micros);
            self.tally.answered += 1;
            match (self.kind, answer.status) {
                (Kind::Limited, 200) => {
                    self.tally.limited_first.get_or_insert(started);
                    self.tally.limited_admitted += 1;
                }
                (Kind::Limited, 429) => self.tally.limited_refused += 1,
                (Kind::Denied, 403) => {}
                (Kind::KeyEcho | Kind::KeyAdd | Kind::JwtEcho, 200)
                    if answer.body.contains("\"result\"") => {}
                (_, 404) => {
                    // The session is unknown to the replica: the client initialises again.
                    if self.tally.sessions_reopened == 0 {
                        eprintln!("{:?}: session {id} unknown: {}", self.kind, answer.body);
                    }
                    self.tally.sessions_reopened += 1;
                    session = None;
                }
                (_, status) => self.unexpected("call", status),
            }
        }
        self.tally
    }
}

fn mcp_headers<'a>(auth: &'a str, session: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut headers = vec![
        ("Authorization", auth),
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
        ("MCP-Protocol-Version", "2025-06-18"),
    ];
    if let Some(session) = session {
        headers.push(("Mcp-Session-Id", session));
    }
    headers
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn run(options: Options) -> Result<String, String> {
    let started = Instant::now();
    let shared = Shared {
        options: &options,
        stop: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        deadline: started + Duration::from_secs_f64(options.seconds),
    };
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..options.workers)
            .map(|w| {
                let caller = Caller {
                    shared: &shared,
                    connections: options
                        .replicas
                        .iter()
                        .map(|_| Connection::default())
                        .collect(),
                    next: w,
                    tally: Tally::default(),
                    bearer: String::new(),
                    fetched: None,
                    kind: KINDS[w % KINDS.len()],
                };
                scope.spawn(move || caller.run())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut all = Tally::default();
    for tally in tallies {
        all.latencies_us.extend(tally.latencies_us);
        all.answered += tally.answered;
        for (what, count) in tally.unexpected {
            *all.unexpected.entry(what).or_default() += count;
        }
        all.lost += tally.lost;
        all.retried_elsewhere += tally.retried_elsewhere;
        all.unreachable += tally.unreachable;
        all.sessions_reopened += tally.sessions_reopened;
        all.limited_admitted += tally.limited_admitted;
        all.limited_refused += tally.limited_refused;
        all.limited_first = match (all.limited_first, tally.limited_first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    all.latencies_us.sort_unstable();
    let percentile = |p: f64| -> f64 {
        let lat = &all.latencies_us;
        if lat.is_empty() {
            return 0.0;
        }
        let at = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        f64::from(lat[at]) / 1000.0
    };
    let window = all
        .limited_first
        .map_or(0.0, |first| first.elapsed().as_secs_f64());
    let configured = options.rate_burst + options.rate_per_minute * window / 60.0;
    let report = json!({
        "seconds": elapsed,
        "replicas": options.replicas.len(),
        "workers": options.workers,
        "answered": all.answered,
        "throughput_per_s": all.answered as f64 / elapsed,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "unexpected": all.unexpected,
        "lost": all.lost,
        "unreachable": all.unreachable,
        "retried_elsewhere": all.retried_elsewhere,
        "sessions_reopened": all.sessions_reopened,
        "rate_limit": {
            "admitted": all.limited_admitted,
            "refused": all.limited_refused,
            "window_s": window,
            "configured": configured,
            "admitted_over_configured": if configured > 0.0 {
                all.limited_admitted as f64 / configured } else { 0.0 },
        },
    });
    Ok(report.to_string())
}

/// Revokes a key with `--revoke` (a shell command) and polls every replica until it refuses
/// the key: milliseconds from the command's return (and from its start) per replica.
pub fn propagation(options: &HashMap<String, String>) -> Result<String, String> {
    let replicas: Vec<String> = required(options, "replicas")?
        .split(',')
        .map(str::to_owned)
        .collect();
    let key = required(options, "key")?;
    let revoke = required(options, "revoke")?;
    let auth = format!("Bearer {key}");
    let probe = |addr: &str| -> Result<u16, String> {
        let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "cluster-probe", "version": "1"}}})
        .to_string();
        Connection::default()
            .request(addr, "POST", PATH, &mcp_headers(&auth, None), &body)
            .map(|answer| answer.status)
            .map_err(|_| format!("{addr} did not answer"))
    };
    for addr in &replicas {
        let status = probe(addr)?;
        if status != 200 {
            return Err(format!("{addr} answered {status} before the revocation"));
        }
    }
    let command_started = Instant::now();
    let status = std::process::Command::new("sh")
        .args(["-c", &revoke])
        .status()
        .map_err(|err| format!("running the revoke command: {err}"))?;
    let returned = Instant::now();
    if !status.success() {
        return Err(format!("the revoke command failed: {status}"));
    }
    let results: Vec<Result<(f64, f64), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = replicas
            .iter()
            .map(|addr| {
                let probe = &probe;
                scope.spawn(move || {
                    let deadline = returned + Duration::from_secs(30);
                    loop {
                        if probe(addr)? == 401 {
                            let now = Instant::now();
                            return Ok((
                                (now - returned).as_secs_f64() * 1000.0,
                                (now - command_started).as_secs_f64() * 1000.0,
                            ));
                        }
                        if Instant::now() > deadline {
                            return Err(format!("{addr} still accepts the key after 30 s"));
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("probe panicked".into())))
            .collect()
    });
    let mut after_return = Vec::new();
    let mut after_start = Vec::new();
    for result in results {
        let (r, s) = result?;
        after_return.push(r);
        after_start.push(s);
    }
    Ok(json!({
        "revoke_command_ms": (returned - command_started).as_secs_f64() * 1000.0,
        "refused_ms_after_return": after_return,
        "refused_ms_after_start": after_start,
    })
    .to_string())
}
