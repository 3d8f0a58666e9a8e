//! What a request adds to the metrics and traces beyond its audit event: the detector of a
//! blocking guardrail, the kind of a refusing policy; the request's SERVER span and the trace
//! context sent upstream.

use bytes::Bytes;
use http::HeaderMap;
use opentelemetry::Context;
use serde_json::Value;

use crate::{
    error::GatewayError,
    metrics::Metrics,
    telemetry::{CallFacts, RequestTrace, propagation},
};
use gatehouse_model::jsonrpc::{Envelope, Kind};

pub(super) fn count_refusal(metrics: &Metrics, server: Option<&str>, err: &GatewayError) {
    match err {
        GatewayError::GuardrailBlocked { detector, .. }
        | GatewayError::GuardrailBlockedAnswer { detector, .. } => {
            metrics.guardrail_finding(detector, "block");
        }
        GatewayError::PolicyDenied(denial) => {
            metrics
                .policy_denials
                .get_or_create(&crate::metrics::PolicyLabels {
                    server: server.unwrap_or("-").to_owned(),
                    kind: denial.kind.as_str(),
                })
                .inc();
        }
        _ => {}
    }
}

/// Opens the request's SERVER span once the body is known: its method, target and ids, and
/// for the 2026-07-28 era the caller's context from `params._meta`.
pub(super) fn open_trace(
    trace: &mut RequestTrace,
    headers: &HeaderMap,
    envelope: &Envelope,
    server: &str,
    stateless: bool,
) {
    let first = envelope.first().filter(|_| !envelope.batch);
    let method = first.map(|m| {
        if m.kind == Kind::Response {
            "response"
        } else {
            m.method()
        }
    });
    let named = |of: &str| {
        first
            .filter(|m| m.method() == of)
            .and_then(|m| m.param_str("name"))
    };
    let meta = first
        .filter(|_| stateless)
        .and_then(|m| propagation::from_meta(m.params.as_ref()));
    let facts = CallFacts {
        method: if envelope.batch {
            Some("batch")
        } else {
            method
        },
        tool: named("tools/call"),
        prompt: named("prompts/get"),
        protocol_version: headers
            .get("mcp-protocol-version")
            .and_then(|v| v.to_str().ok()),
        request_id: first.and_then(|m| m.id.as_ref()).map(|id| match id {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        }),
        session_id: (!stateless)
            .then(|| headers.get("mcp-session-id").and_then(|v| v.to_str().ok()))
            .flatten(),
        server,
    };
    trace.open(meta, &facts);
}

/// Puts the upstream call's context `cx` in the headers and in the `params._meta` of every
/// request and notification, and returns the body serialised again.
pub(super) fn propagate(
    cx: &Context,
    headers: &mut HeaderMap,
    envelope: &mut Envelope,
) -> Result<Bytes, GatewayError> {
    propagation::to_headers(cx, headers);
    for message in &mut envelope.messages {
        if message.kind == Kind::Response {
            continue;
        }
        let params = message
            .params
            .get_or_insert_with(|| Value::Object(Default::default()));
        propagation::to_meta(cx, params);
    }
    super::inspect::serialise(envelope)
}
