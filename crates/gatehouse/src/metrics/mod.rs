//! Prometheus metrics, kept in the application state (no global recorder) and encoded with
//! the Prometheus project's client (`prometheus-client`) in the OpenMetrics text format at
//! `/metrics`, which answers only the networks in `metrics.allow` (loopback by default):
//! server names and denial reasons are operational detail. Every metric is listed in
//! docs/observability.md.
//!
//! The request path records into atomics found through two read-locked maps keyed by values
//! the configuration or a closed set fixes (`labels.rs`); only a label combination seen for
//! the first time takes a write lock.

mod histogram;
mod labels;

pub use histogram::{AtomicHistogram, LATENCY_BUCKETS, MCP_OPERATION_BUCKETS};
pub use labels::{MAX_TOOLS_PER_SERVER, method_label, tool_name_labelable};

use parking_lot::RwLock;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, text},
    metrics::{MetricType, counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

/// Looked up on every request with keys the configuration fixes (server names, static
/// labels), so they hash with foldhash rather than SipHash; no client chooses a key.
type Labels<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The `tool` label's index in a server's tool set: none (not a tool call), then `other`.
const NO_TOOL: u16 = 0;
const OTHER_TOOL: u16 = 1;

/// A request's labels but its server: (method, tool index, decision, reason).
type OutcomeKey = (&'static str, u16, &'static str, &'static str);

/// A per-server histogram, its name and help.
type ServerHistogram = (
    &'static str,
    &'static str,
    fn(&ServerMetrics) -> &AtomicHistogram,
);

/// What one request contributes, once it has ended.
pub struct Observed<'a> {
    /// A configured server; `None` (counted under `-`) for names that are not.
    pub server: Option<&'a Arc<str>>,
    pub method: &'static str,
    /// The tool a `tools/call` named.
    pub tool: Option<&'a str>,
    /// Whether the request was let through to the upstream (its tool was granted).
    pub forwarded: bool,
    pub decision: &'static str,
    pub reason: &'static str,
    /// Time to the response head.
    pub head: Duration,
    /// Time the upstream took to answer with its head, when it was asked.
    pub upstream: Option<Duration>,
}

/// Counters of one server. Recording a request takes shared locks and bumps atomics: two
/// workers recording at once never wait for each other.
struct ServerMetrics {
    /// (method, tool index, decision, reason) → count.
    outcomes: RwLock<Labels<OutcomeKey, AtomicU64>>,
    tools: RwLock<ToolSet>,
    request_duration: AtomicHistogram,
    upstream_duration: AtomicHistogram,
    hop_duration: AtomicHistogram,
}

/// The tool names of one server that have a label, in the order first seen.
#[derive(Default)]
struct ToolSet {
    by_name: Labels<Box<str>, u16>,
    names: Vec<Box<str>>,
}

#[derive(Default)]
struct RequestMetrics {
    servers: RwLock<Labels<Arc<str>, Arc<ServerMetrics>>>,
    /// `mcp.server.operation.duration` by method (a closed set).
    operations: RwLock<Labels<&'static str, AtomicHistogram>>,
}

impl std::fmt::Debug for RequestMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestMetrics")
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    /// `api_key` or `access_token`.
    pub kind: &'static str,
    /// `valid`, or why not.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantLabels {
    pub grant: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantErrorLabels {
    pub grant: &'static str,
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    /// A detector name: built in, or one the configuration defines.
    pub detector: String,
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    pub server: String,
    pub kind: &'static str,
}

/// Every metric of this process; the handles are cheap to clone into the parts that record.
pub struct Metrics {
    registry: Registry,
    requests: Arc<RequestMetrics>,
    pub credential_checks: Family<CheckLabels, Counter>,
    pub token_cache: Family<CacheLabels, Counter>,
    pub tokens_issued: Family<GrantLabels, Counter>,
    pub token_failures: Family<GrantErrorLabels, Counter>,
    pub guardrail_findings: Family<FindingLabels, Counter>,
    pub policy_denials: Family<PolicyLabels, Counter>,
    /// Resolved once: the counters every request bumps, without a label lookup.
    pub hot: HotCounters,
    pub audit: AuditMetrics,
    pub snapshot: SnapshotMetrics,
}

/// Handles into families for the outcomes that are counted on nearly every request.
#[derive(Clone, Debug)]
pub struct HotCounters {
    pub api_key_valid: Counter,
    pub access_token_valid: Counter,
    pub token_cache_hit: Counter,
    pub token_cache_miss: Counter,
}

/// What the snapshot's reload loop records.
#[derive(Clone, Debug)]
pub struct SnapshotMetrics {
    pub reload_duration: AtomicHistogram,
    pub reload_errors: Counter,
}

/// What the audit writer records, on its own thread.
#[derive(Clone, Debug)]
pub struct AuditMetrics {
    /// From an event's creation to the commit of its batch.
    pub write_lag: AtomicHistogram,
    pub events_written: Counter,
    pub append_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Arc::new(RequestMetrics::default());
        registry.register_collector(Box::new(requests.clone()));
        let credential_checks = Family::<CheckLabels, Counter>::default();
        let token_cache = Family::<CacheLabels, Counter>::default();
        let check =
            |kind, result| credential_checks.get_or_create_owned(&CheckLabels { kind, result });
        let cache = |result| token_cache.get_or_create_owned(&CacheLabels { result });
        let hot = HotCounters {
            api_key_valid: check("api_key", "valid"),
            access_token_valid: check("access_token", "valid"),
            token_cache_hit: cache("hit"),
            token_cache_miss: cache("miss"),
        };
        let metrics = Metrics {
            requests,
            hot,
            credential_checks,
            token_cache,
            tokens_issued: Family::default(),
            token_failures: Family::default(),
            guardrail_findings: Family::default(),
            policy_denials: Family::default(),
            audit: AuditMetrics {
                write_lag: AtomicHistogram::new(LATENCY_BUCKETS),
                events_written: Counter::default(),
                append_failures: Counter::default(),
            },
            snapshot: SnapshotMetrics {
                reload_duration: AtomicHistogram::new(LATENCY_BUCKETS),
                reload_errors: Counter::default(),
            },
            registry: Registry::default(),
        };
        // Counters are registered without `_total`: the encoder adds it to the samples.
        registry.register(
            "gatehouse_credential_checks",
            "Credentials checked at the gateway by kind and result",
            metrics.credential_checks.clone(),
        );
        registry.register(
            "gatehouse_token_cache_lookups",
            "Access-token cache lookups by result (hit: no signature verified)",
            metrics.token_cache.clone(),
        );
        registry.register(
            "gatehouse_oauth_tokens_issued",
            "Access tokens issued at the token endpoint by grant type",
            metrics.tokens_issued.clone(),
        );
        registry.register(
            "gatehouse_oauth_token_failures",
            "Token endpoint refusals by grant type and OAuth error",
            metrics.token_failures.clone(),
        );
        registry.register(
            "gatehouse_guardrail_findings",
            "Guardrail findings by detector and action (block, redact, warn)",
            metrics.guardrail_findings.clone(),
        );
        registry.register(
            "gatehouse_policy_denials",
            "Requests refused by a policy, by server and policy kind (rate_limit and quota are the throttles)",
            metrics.policy_denials.clone(),
        );
        registry.register(
            "gatehouse_audit_write_lag_seconds",
            "Time from an audit event's creation to the commit of its batch",
            metrics.audit.write_lag.clone(),
        );
        registry.register(
            "gatehouse_audit_events_written",
            "Audit events committed by this process's writer",
            metrics.audit.events_written.clone(),
        );
        registry.register(
            "gatehouse_audit_append_failures",
            "Audit appends that failed and were retried",
            metrics.audit.append_failures.clone(),
        );
        registry.register(
            "gatehouse_snapshot_reload_duration_seconds",
            "Time to rebuild the running configuration after the store changed",
            metrics.snapshot.reload_duration.clone(),
        );
        registry.register(
            "gatehouse_snapshot_reload_errors",
            "Configuration reloads that failed (the previous configuration kept running)",
            metrics.snapshot.reload_errors.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    /// Counts one request (and its latencies) under its labels.
    pub fn record(&self, observed: &Observed<'_>) {
        let server = self.requests.server(observed.server);
        let tool = match observed.tool {
            None => NO_TOOL,
            // A name becomes a label only from a call that was let through: made-up names in
            // refused calls cannot fill the set.
            Some(name) => server.tool_index(name, observed.forwarded),
        };
        server.count((observed.method, tool, observed.decision, observed.reason));
        server.request_duration.observe(observed.head);
        if let Some(upstream) = observed.upstream {
            server.upstream_duration.observe(upstream);
            server
                .hop_duration
                .observe(observed.head.saturating_sub(upstream));
        } else {
            server.hop_duration.observe(observed.head);
        }
        if observed.method != "-" {
            self.requests.operation(observed.method, observed.head);
        }
    }

    /// A credential the gateway refused, by kind and the refusal's reason.
    pub fn credential_refused(&self, kind: &'static str, reason: &'static str) {
        self.credential_checks
            .get_or_create(&CheckLabels {
                kind,
                result: reason,
            })
            .inc();
    }

    /// A token request's end: issued, or refused with `error`. Grant types outside the ones
    /// Gatehouse serves are counted as `-`.
    pub fn token_outcome(&self, grant: &str, error: Option<&'static str>) {
        let grant = match grant {
            "client_credentials" => "client_credentials",
            "authorization_code" => "authorization_code",
            "refresh_token" => "refresh_token",
            "jwt-bearer" => "jwt_bearer",
            _ => "-",
        };
        match error {
            None => self
                .tokens_issued
                .get_or_create(&GrantLabels { grant })
                .inc(),
            Some(error) => self
                .token_failures
                .get_or_create(&GrantErrorLabels { grant, error })
                .inc(),
        };
    }

    /// A guardrail finding in its audit form, `guardrail:<rule>:<detector>:<action>`.
    pub fn guardrail_note(&self, note: &str) {
        count_guardrail_note(&self.guardrail_findings, note);
    }

    pub fn guardrail_finding(&self, detector: &str, action: &'static str) {
        count_guardrail_finding(&self.guardrail_findings, detector, action);
    }

    /// The OpenMetrics text exposition: the registered metrics, then `gauges` (values read at
    /// scrape time), then `extra` (already in the format), then the end marker.
    pub fn render(&self, gauges: &[Scraped<'_>], extra: &str) -> String {
        let mut out = String::new();
        let _ = text::encode_registry(&mut out, &self.registry);
        let mut scraped = Registry::default();
        for gauge in gauges {
            match gauge {
                Scraped::Value { name, help, value } => {
                    let g: Gauge<f64, std::sync::atomic::AtomicU64> = Gauge::default();
                    g.set(*value);
                    scraped.register(*name, *help, g);
                }
                Scraped::ByLabels { name, help, values } => {
                    let family: Family<Vec<(&'static str, String)>, Gauge<f64, AtomicU64>> =
                        Family::default();
                    for (labels, value) in values {
                        family.get_or_create(labels).set(*value);
                    }
                    scraped.register(*name, *help, family);
                }
                Scraped::CountersByLabels { name, help, values } => {
                    let family: Family<Vec<(&'static str, String)>, Counter> = Family::default();
                    for (labels, count) in values {
                        family.get_or_create(labels).inc_by(*count);
                    }
                    scraped.register(*name, *help, family);
                }
            }
        }
        let _ = text::encode_registry(&mut out, &scraped);
        out.push_str(extra);
        let _ = text::encode_eof(&mut out);
        out
    }
}

/// Counts a finding in its audit form, `guardrail:<rule>:<detector>:<action>`, into
/// `findings` (a handle of `Metrics::guardrail_findings`, for stream rewriters).
pub fn count_guardrail_note(findings: &Family<FindingLabels, Counter>, note: &str) {
    let mut parts = note.rsplitn(3, ':');
    let (Some(action), Some(detector)) = (parts.next(), parts.next()) else {
        return;
    };
    let action = match action {
        "block" => "block",
        "redact" => "redact",
        "warn" => "warn",
        _ => return,
    };
    count_guardrail_finding(findings, detector, action);
}

fn count_guardrail_finding(
    findings: &Family<FindingLabels, Counter>,
    detector: &str,
    action: &'static str,
) {
    findings
        .get_or_create(&FindingLabels {
            detector: detector.to_owned(),
            action,
        })
        .inc();
}

/// A gauge read when `/metrics` is scraped.
pub enum Scraped<'a> {
    Value {
        name: &'a str,
        help: &'a str,
        value: f64,
    },
    /// One series per `(labels, value)`.
    ByLabels {
        name: &'a str,
        help: &'a str,
        values: Vec<(Vec<(&'static str, String)>, f64)>,
    },
    /// Counters kept elsewhere (atomics another module owns), one series per
    /// `(labels, count)`; exposed as `{name}_total`.
    CountersByLabels {
        name: &'a str,
        help: &'a str,
        values: Vec<(Vec<(&'static str, String)>, u64)>,
    },
}

impl RequestMetrics {
    /// Unknown servers are counted under "-", so callers cannot grow the label set.
    fn server(&self, server: Option<&Arc<str>>) -> Arc<ServerMetrics> {
        let name: &str = server.map_or("-", |s| s);
        if let Some(metrics) = self.servers.read().get(name) {
            return metrics.clone();
        }
        self.servers
            .write()
            .entry(server.cloned().unwrap_or_else(|| Arc::from("-")))
            .or_insert_with(|| Arc::new(ServerMetrics::new()))
            .clone()
    }

    fn operation(&self, method: &'static str, elapsed: Duration) {
        if let Some(histogram) = self.operations.read().get(method) {
            histogram.observe(elapsed);
            return;
        }
        self.operations
            .write()
            .entry(method)
            .or_insert_with(|| AtomicHistogram::new(MCP_OPERATION_BUCKETS))
            .observe(elapsed);
    }
}

impl ServerMetrics {
    fn new() -> Self {
        ServerMetrics {
            outcomes: RwLock::default(),
            tools: RwLock::default(),
            request_duration: AtomicHistogram::new(LATENCY_BUCKETS),
            upstream_duration: AtomicHistogram::new(LATENCY_BUCKETS),
            hop_duration: AtomicHistogram::new(LATENCY_BUCKETS),
        }
    }

    fn count(&self, key: OutcomeKey) {
        if let Some(count) = self.outcomes.read().get(&key) {
            count.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.outcomes
            .write()
            .entry(key)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    fn tool_index(&self, name: &str, may_add: bool) -> u16 {
        if let Some(index) = self.tools.read().by_name.get(name) {
            return *index;
        }
        if !may_add || !tool_name_labelable(name) {
            return OTHER_TOOL;
        }
        let mut tools = self.tools.write();
        if let Some(index) = tools.by_name.get(name) {
            return *index;
        }
        if tools.names.len() >= MAX_TOOLS_PER_SERVER {
            return OTHER_TOOL;
        }
        let index = u16::try_from(tools.names.len() + 2).unwrap_or(OTHER_TOOL);
        tools.names.push(name.into());
        tools.by_name.insert(name.into(), index);
        index
    }

    fn tool_name(&self, index: u16) -> String {
        match index {
            NO_TOOL => String::new(),
            OTHER_TOOL => "other".to_owned(),
            i => self
                .tools
                .read()
                .names
                .get(usize::from(i) - 2)
                .map_or_else(|| "other".to_owned(), |n| n.to_string()),
        }
    }
}

impl Collector for RequestMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        // Sorted, so the output is stable from one scrape to the next.
        let servers: BTreeMap<Arc<str>, Arc<ServerMetrics>> = self
            .servers
            .read()
            .iter()
            .map(|(name, metrics)| (name.clone(), metrics.clone()))
            .collect();
        {
            let mut family = encoder.encode_descriptor(
                "gatehouse_requests",
                "Requests to /{server}/mcp by server, MCP method, tool, decision and reason.",
                None,
                MetricType::Counter,
            )?;
            for (server, metrics) in &servers {
                let outcomes: BTreeMap<_, u64> = metrics
                    .outcomes
                    .read()
                    .iter()
                    .map(|(key, count)| (*key, count.load(Ordering::Relaxed)))
                    .collect();
                for ((method, tool, decision, reason), count) in outcomes {
                    let labels = [
                        ("server", server.to_string()),
                        ("method", method.to_owned()),
                        ("tool", metrics.tool_name(tool)),
                        ("decision", decision.to_owned()),
                        ("reason", reason.to_owned()),
                    ];
                    family
                        .encode_family(&labels)?
                        .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(
                            &count, None,
                        )?;
                }
            }
        }
        let histograms: [ServerHistogram; 3] = [
            (
                "gatehouse_request_duration_seconds",
                "Time to the response head, by server.",
                |m| &m.request_duration,
            ),
            (
                "gatehouse_upstream_duration_seconds",
                "Time the upstream took to send its response head, by server.",
                |m| &m.upstream_duration,
            ),
            (
                "gatehouse_hop_duration_seconds",
                "Gatehouse's own share of the time to the response head (the whole of it for requests not forwarded), by server.",
                |m| &m.hop_duration,
            ),
        ];
        for (name, help, histogram) in histograms {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for (server, metrics) in &servers {
                let labels = [("server", server.to_string())];
                histogram(metrics).encode(family.encode_family(&labels)?)?;
            }
        }
        let operations: BTreeMap<&'static str, AtomicHistogram> = self
            .operations
            .read()
            .iter()
            .map(|(method, histogram)| (*method, histogram.clone()))
            .collect();
        let mut family = encoder.encode_descriptor(
            "mcp_server_operation_duration_seconds",
            "The OpenTelemetry MCP convention's mcp.server.operation.duration: time to the response head by mcp.method.name.",
            None,
            MetricType::Histogram,
        )?;
        for (method, histogram) in operations {
            let labels = [("mcp_method_name", method)];
            histogram.encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
