//! Traces: a tool call's spans reach an OTLP/HTTP collector (a small one started here, decoding
//! the protobuf export) with the OpenTelemetry MCP convention's names and attributes, and the
//! upstream receives the context of the CLIENT span, in its headers and in `params._meta`.

use axum::{Router, body::Bytes, extract::State, routing::post};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    common::v1::{AnyValue, KeyValue, any_value},
    trace::v1::{Span, span::SpanKind},
};
use prost::Message;
use serde_json::{Value, json};
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::{helpers::TestApp, scripted_upstream::Upstream};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// A span with its resource's attributes.
type Received = (Vec<KeyValue>, Span);

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Collector {
    async fn start() -> (Collector, String) {
        let collector = Collector::default();
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(collector.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (collector, base)
    }

    /// Waits (bounded) until `count` spans of the caller's trace have arrived.
    async fn spans_of(&self, trace: &str, count: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let spans: Vec<_> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, span)| hex::encode(&span.trace_id) == trace)
                .cloned()
                .collect();
            if spans.len() >= count {
                return spans;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {count} spans of trace {trace}, got {:?}",
                spans.iter().map(|(_, s)| &s.name).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(State(collector): State<Collector>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).unwrap();
    let mut spans = collector.spans.lock().unwrap();
    for resource in request.resource_spans {
        let attributes = resource.resource.map(|r| r.attributes).unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.push((attributes.clone(), span));
            }
        }
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|AnyValue { value }| match value {
            Some(any_value::Value::StringValue(text)) => Some(text.as_str()),
            _ => None,
        })
}

fn traced(collector_base: String) -> impl FnOnce(&mut gatehouse::Config) {
    move |config| {
        config.telemetry.otlp_endpoint = Some(collector_base);
        config.telemetry.service_name = "gatehouse-under-test".into();
        config.telemetry.export_interval = Duration::from_millis(100);
    }
}

fn echo_with_meta(meta: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": { "name": "echo", "arguments": { "text": "hi" }, "_meta": meta } })
}

#[tokio::test]
async fn a_tool_call_reaches_the_collector_and_its_context_goes_upstream() {
    let (collector, base) = Collector::start().await;
    let upstream = Upstream::start().await;
    let app = TestApp::start_with(traced(base)).await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    // A 2026-07-28 caller carries its context in `params._meta`.
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let body = echo_with_meta(json!({ "traceparent": caller, "progressToken": 3 }));
    let response = app
        .post_stateless("demo", Some(&key), &body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let _ = response.bytes().await.unwrap();

    let spans = collector.spans_of(CALLER_TRACE, 5).await;
    let find = |kind: SpanKind, name: &str| {
        spans
            .iter()
            .find(|(_, s)| s.kind == kind as i32 && s.name == name)
            .unwrap_or_else(|| panic!("no {kind:?} span {name}: {spans:?}"))
    };
    let (resource, server) = find(SpanKind::Server, "tools/call echo");
    assert_eq!(
        attribute(resource, "service.name"),
        Some("gatehouse-under-test")
    );
    assert_eq!(hex::encode(&server.parent_span_id), CALLER_SPAN);
    for (key, value) in [
        ("mcp.method.name", "tools/call"),
        ("gen_ai.tool.name", "echo"),
        ("gen_ai.operation.name", "execute_tool"),
        ("mcp.protocol.version", "2026-07-28"),
        ("jsonrpc.request.id", "7"),
        ("gatehouse.decision", "allow"),
        ("gatehouse.server", "demo"),
    ] {
        assert_eq!(attribute(&server.attributes, key), Some(value), "{key}");
    }
    assert_eq!(
        attribute(&server.attributes, "mcp.session.id"),
        None,
        "no session id for 2026-07-28 traffic"
    );
    for phase in ["identify", "policies", "guardrails"] {
        let (_, child) = find(SpanKind::Internal, phase);
        assert_eq!(child.parent_span_id, server.span_id, "{phase}");
    }
    let (_, client) = find(SpanKind::Client, "tools/call echo");
    assert_eq!(client.parent_span_id, server.span_id);
    assert_eq!(
        attribute(&client.attributes, "server.address"),
        Some("127.0.0.1")
    );

    // The upstream got the CLIENT span's context, in both places, the rest of `_meta` kept.
    let sent = format!("00-{CALLER_TRACE}-{}-01", hex::encode(&client.span_id));
    let received = upstream.received();
    let call = received.last().unwrap();
    assert_eq!(call.headers["traceparent"], sent.as_str());
    assert_eq!(call.body["params"]["_meta"]["traceparent"], sent);
    assert_eq!(call.body["params"]["_meta"]["progressToken"], 3);
    assert_eq!(call.body["params"]["arguments"], json!({ "text": "hi" }));
}

#[tokio::test]
async fn a_refused_call_is_traced_with_its_reason() {
    let (collector, base) = Collector::start().await;
    let upstream = Upstream::start().await;
    let app = TestApp::start_with(traced(base)).await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    // A session-era caller's context comes in its header.
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let body = json!({ "jsonrpc": "2.0", "id": 8, "method": "tools/call",
        "params": { "name": "delete_records", "arguments": {} } });
    let response = app
        .post("demo", Some(&key), &body)
        .header("traceparent", caller)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let spans = collector.spans_of(CALLER_TRACE, 2).await;
    let (_, server) = spans
        .iter()
        .find(|(_, s)| s.kind == SpanKind::Server as i32)
        .unwrap_or_else(|| panic!("{spans:?}"));
    assert_eq!(server.name, "tools/call delete_records");
    assert_eq!(hex::encode(&server.parent_span_id), CALLER_SPAN);
    assert_eq!(
        attribute(&server.attributes, "gatehouse.decision"),
        Some("deny")
    );
    assert_eq!(
        attribute(&server.attributes, "error.type"),
        Some("tool_not_granted")
    );
    assert!(
        !spans.iter().any(|(_, s)| s.kind == SpanKind::Client as i32),
        "nothing was sent upstream"
    );
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn without_tracing_the_callers_context_passes_through_untouched() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let body = echo_with_meta(json!({ "traceparent": caller, "tracestate": "vendor=1" }));
    let response = app
        .post_stateless("demo", Some(&key), &body)
        .header("traceparent", caller.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let received = upstream.received();
    let call = received.last().unwrap();
    assert_eq!(call.headers["traceparent"], caller.as_str());
    assert_eq!(call.body, body);
}
