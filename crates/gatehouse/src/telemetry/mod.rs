//! OpenTelemetry traces of gateway requests (docs/observability.md), off unless
//! `telemetry.otlp_endpoint` is set: then each request to `/{server}/mcp` is a SERVER span
//! following the OpenTelemetry MCP semantic conventions, with INTERNAL children for identify,
//! policies and guardrails and a CLIENT span for the upstream call, whose context goes to the
//! upstream in `traceparent` and in `params._meta`. Off, a request carries no trace at all and
//! the client's own trace headers pass through untouched.
//!
//! The SERVER span is opened once the body is parsed (a 2026-07-28 caller's context is in
//! `params._meta`), with the request's start as its start; phases that ran before it (identify)
//! are kept as times and become its children then.

mod export;
pub mod propagation;

use http::{HeaderMap, Uri};
use opentelemetry::{
    Context, KeyValue,
    trace::{SpanKind, Status, TraceContextExt, Tracer, TracerProvider},
};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{
    Resource,
    trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider},
};
use std::time::{Duration, SystemTime};

use crate::config::TelemetryConfig;

/// How long one export may take before it is given up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The tracer, when traces are on.
#[derive(Default)]
pub struct Telemetry {
    tracing: Option<(SdkTracerProvider, SdkTracer)>,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry: {0}")]
    Setup(String),
}

impl Telemetry {
    /// Starts the exporter (inside the server's runtime) when an endpoint is configured.
    pub fn start(config: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
        let Some(url) = config.traces_url() else {
            return Ok(Telemetry::default());
        };
        let setup = |e: String| TelemetryError::Setup(e);
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| setup(e.to_string()))?;
        let tls = crate::upstream::client::tls_config(&[]).map_err(|e| setup(e.to_string()))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(EXPORT_TIMEOUT)
            .with_http_client(export::CollectorClient::new(tls, runtime, EXPORT_TIMEOUT))
            .build()
            .map_err(|e| setup(e.to_string()))?;
        let batches = BatchConfigBuilder::default()
            .with_scheduled_delay(config.export_interval)
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batches)
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("gatehouse");
        Ok(Telemetry {
            tracing: Some((provider, tracer)),
        })
    }

    /// A trace for one gateway request, parented on the caller's `traceparent` header.
    pub fn request(&self, headers: &HeaderMap) -> Option<Box<RequestTrace>> {
        let (_, tracer) = self.tracing.as_ref()?;
        Some(Box::new(RequestTrace {
            tracer: tracer.clone(),
            started: SystemTime::now(),
            parent: propagation::from_headers(headers),
            server: None,
            before_open: Vec::new(),
            phase: None,
            client: None,
        }))
    }

    /// Sends what is still buffered (at shutdown); waits off the runtime's workers, since the
    /// export itself runs on them.
    pub async fn shutdown(&self) {
        if let Some((provider, _)) = &self.tracing {
            let provider = provider.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(err) = provider.shutdown() {
                    tracing::warn!(error = %err, "could not send the last spans");
                }
            })
            .await;
        }
    }

    /// Sends the finished spans now (tests; an operator's flush).
    pub async fn flush(&self) {
        if let Some((provider, _)) = &self.tracing {
            let provider = provider.clone();
            let _ = tokio::task::spawn_blocking(move || provider.force_flush()).await;
        }
    }
}

/// What the SERVER span says about the MCP request (semantic-convention attributes).
#[derive(Default)]
pub struct CallFacts<'a> {
    pub method: Option<&'a str>,
    /// `gen_ai.tool.name` of a `tools/call`.
    pub tool: Option<&'a str>,
    /// The prompt of a `prompts/get`: the span's target when there is no tool.
    pub prompt: Option<&'a str>,
    pub protocol_version: Option<&'a str>,
    pub request_id: Option<String>,
    /// Legacy era only: a 2026-07-28 request has no session, and its span no `mcp.session.id`.
    pub session_id: Option<&'a str>,
    pub server: &'a str,
}

/// The spans of one request.
pub struct RequestTrace {
    tracer: SdkTracer,
    started: SystemTime,
    /// The caller's context from its headers.
    parent: Context,
    /// The SERVER span, once opened, and the name its children repeat.
    server: Option<(Context, String, Vec<KeyValue>)>,
    /// Phases that ended before the SERVER span was opened.
    before_open: Vec<(&'static str, SystemTime, SystemTime)>,
    /// The phase running now, and since when.
    phase: Option<(&'static str, SystemTime)>,
    /// The upstream call's CLIENT span while it runs.
    client: Option<Context>,
}

impl RequestTrace {
    /// Opens the SERVER span (once), a child of `meta` (the caller's `params._meta`) when it
    /// carries a context, else of the caller's headers.
    pub fn open(&mut self, meta: Option<Context>, facts: &CallFacts<'_>) {
        if self.server.is_some() {
            return;
        }
        let method = facts.method.unwrap_or("mcp");
        let name = match facts.tool.or(facts.prompt) {
            Some(target) => format!("{method} {target}"),
            None => method.to_owned(),
        };
        let mut shared = vec![KeyValue::new("mcp.method.name", method.to_owned())];
        if let Some(tool) = facts.tool {
            shared.push(KeyValue::new("gen_ai.tool.name", tool.to_owned()));
            shared.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
        }
        if let Some(prompt) = facts.prompt {
            shared.push(KeyValue::new("gen_ai.prompt.name", prompt.to_owned()));
        }
        if let Some(version) = facts.protocol_version {
            shared.push(KeyValue::new("mcp.protocol.version", version.to_owned()));
        }
        if let Some(id) = &facts.request_id {
            shared.push(KeyValue::new("jsonrpc.request.id", id.clone()));
        }
        let mut attributes = shared.clone();
        attributes.push(KeyValue::new("network.transport", "tcp"));
        attributes.push(KeyValue::new("network.protocol.name", "http"));
        attributes.push(KeyValue::new("gatehouse.server", facts.server.to_owned()));
        if let Some(session) = facts.session_id {
            attributes.push(KeyValue::new("mcp.session.id", session.to_owned()));
        }
        let parent = meta.unwrap_or_else(|| self.parent.clone());
        let span = self
            .tracer
            .span_builder(name.clone())
            .with_kind(SpanKind::Server)
            .with_start_time(self.started)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        let cx = parent.with_span(span);
        for (phase, start, end) in std::mem::take(&mut self.before_open) {
            child(&self.tracer, &cx, phase, start, end);
        }
        self.server = Some((cx, name, shared));
    }

    /// A phase (`identify`, `policies`, `guardrails`) starts now; it ends with
    /// [`Self::end_phase`], the next phase, or the request (a refusal ends it).
    pub fn begin_phase(&mut self, name: &'static str) {
        self.end_phase();
        self.phase = Some((name, SystemTime::now()));
    }

    pub fn end_phase(&mut self) {
        let Some((name, since)) = self.phase.take() else {
            return;
        };
        let now = SystemTime::now();
        match &self.server {
            Some((cx, _, _)) => child(&self.tracer, cx, name, since, now),
            None => self.before_open.push((name, since, now)),
        }
    }

    /// Starts the CLIENT span of the upstream call (once); its context is what the upstream
    /// is sent.
    pub fn upstream(&mut self, url: &Uri) -> Context {
        self.end_phase();
        if let Some(client) = &self.client {
            return client.clone();
        }
        if self.server.is_none() {
            self.open(None, &CallFacts::default());
        }
        let Some((cx, name, shared)) = &self.server else {
            return Context::new();
        };
        let mut attributes = shared.clone();
        if let Some(host) = url.host() {
            attributes.push(KeyValue::new("server.address", host.to_owned()));
        }
        if let Some(port) = url.port_u16() {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        let span = self
            .tracer
            .span_builder(name.clone())
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, cx);
        let client = cx.with_span(span);
        self.client = Some(client.clone());
        client
    }

    /// Ends the CLIENT span when the upstream's head came (`status`) or the call failed.
    pub fn upstream_done(&mut self, status: Option<u16>) {
        if let Some(client) = self.client.take() {
            let span = client.span();
            match status {
                Some(status) => {
                    span.set_attribute(KeyValue::new(
                        "http.response.status_code",
                        i64::from(status),
                    ));
                    if status >= 500 {
                        span.set_status(Status::error(status.to_string()));
                    }
                }
                None => span.set_status(Status::error("no answer")),
            }
            span.end();
        }
    }

    /// Ends the SERVER span with the gateway's decision (`allow`, `deny`, `error`), the reason
    /// code, and the HTTP status sent.
    pub fn finish(mut self: Box<Self>, decision: &str, reason: &str, status: u16) {
        self.upstream_done(None);
        if self.server.is_none() {
            self.open(None, &CallFacts::default());
        }
        self.end_phase();
        let Some((cx, _, _)) = &self.server else {
            return;
        };
        let span = cx.span();
        span.set_attribute(KeyValue::new("gatehouse.decision", decision.to_owned()));
        span.set_attribute(KeyValue::new("gatehouse.reason", reason.to_owned()));
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if decision != "allow" {
            span.set_attribute(KeyValue::new("error.type", reason.to_owned()));
            span.set_status(Status::error(reason.to_owned()));
        }
        span.end();
    }
}

fn child(
    tracer: &SdkTracer,
    parent: &Context,
    name: &'static str,
    start: SystemTime,
    end: SystemTime,
) {
    let span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Internal)
        .with_start_time(start)
        .start_with_context(tracer, parent);
    let cx = parent.with_span(span);
    cx.span().end_with_timestamp(end);
}
