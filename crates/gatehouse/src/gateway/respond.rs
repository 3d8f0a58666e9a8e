//! What happens to upstream responses on the way back: `tools/list` results filtered to the
//! caller's grant, and response guardrails (redact, block, warn) over results — for JSON
//! bodies and for each SSE event alike.

use parking_lot::Mutex;
use serde_json::{Value, json};
use std::{collections::HashMap, sync::Arc};

use crate::{
    audit::{AuditEvent, AuditSink, Decision},
    error::codes,
    gateway::jsonrpc,
    grants::{Grant, ToolPattern},
    guardrails::{self, Direction, Guardrail},
    pinning::PinWatch,
    snapshot::ServerEntry,
};

/// A grant and the key's narrowing within it: what `tools/list` may show.
pub type ToolFilter = (Arc<Grant>, Option<Arc<[ToolPattern]>>);

/// The response-side rules of one request.
pub struct ResponseRules {
    /// Filter `tools/list` results to what this grant (and key narrowing) allows.
    pub filter: Option<ToolFilter>,
    /// Response guardrails that may apply.
    pub guardrails: Vec<Arc<Guardrail>>,
    /// The tool each request id called, so tool-scoped guardrails know their responses.
    pub tools_by_id: HashMap<String, String>,
    /// Findings, in audit form, for the caller to record.
    pub notes: Arc<Mutex<Vec<String>>>,
    /// Tool pinning for `tools/list` results: the server (its pins and action) and the watch.
    pub pins: Option<(Arc<ServerEntry>, Arc<PinWatch>)>,
    /// For streams, whose findings come after the request's audit event was written: each
    /// finding becomes its own event, copied from this one.
    pub late: Option<(AuditSink, AuditEvent)>,
}

impl ResponseRules {
    pub fn needed(&self) -> bool {
        self.filter.is_some() || !self.guardrails.is_empty() || self.pins.is_some()
    }

    /// Rewrites one JSON-RPC message or batch; `None` when nothing changed (bytes pass as-is).
    pub fn rewrite(&self, data: &[u8]) -> Option<Vec<u8>> {
        let mut value: Value = serde_json::from_slice(data).ok()?;
        let mut changed = false;
        match &mut value {
            Value::Array(items) => {
                for item in items {
                    changed |= self.rewrite_message(item);
                }
            }
            item => changed |= self.rewrite_message(item),
        }
        if changed {
            serde_json::to_vec(&value).ok()
        } else {
            None
        }
    }

    fn rewrite_message(&self, message: &mut Value) -> bool {
        let mut changed = false;
        if let Some((server, watch)) = &self.pins
            && let Some(tools) = message
                .get_mut("result")
                .and_then(|r| r.get_mut("tools"))
                .and_then(Value::as_array_mut)
        {
            let (hidden, notes) =
                watch.review(&server.name, &server.pins, server.pin_action, tools);
            if !hidden.is_empty() {
                tools.retain(|t| {
                    !t.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| hidden.contains(n))
                });
                changed = true;
            }
            for note in notes {
                self.record_late(&note, Decision::Allow);
                self.notes.lock().push(note);
            }
        }
        if let Some((grant, narrowing)) = &self.filter {
            changed |= jsonrpc::filter_one(message, &|name| {
                grant.allows_tool(name, narrowing.as_deref())
            });
        }
        if self.guardrails.is_empty() {
            return changed;
        }
        let id = message.get("id").cloned();
        let tool = id
            .as_ref()
            .and_then(|id| self.tools_by_id.get(&id.to_string()))
            .map(String::as_str);
        let Some(result) = message.get_mut("result") else {
            return changed;
        };
        let outcome = guardrails::apply(&self.guardrails, Direction::Response, tool, result);
        let mut notes = self.notes.lock();
        if let Some(finding) = outcome.blocked {
            self.record_late(&finding.note(), Decision::Deny);
            notes.push(finding.note());
            *message = json!({
                "jsonrpc": "2.0",
                "id": id.unwrap_or(Value::Null),
                "error": {
                    "code": codes::FORBIDDEN,
                    "message": format!("response blocked by guardrail {:?} (detector {})", finding.rule, finding.detector),
                    "data": {
                        "reason": "guardrail_blocked",
                        "guardrail": { "rule": &*finding.rule, "detector": &*finding.detector, "direction": "response" },
                    },
                },
            });
            return true;
        }
        for finding in &outcome.findings {
            self.record_late(&finding.note(), Decision::Allow);
            notes.push(finding.note());
        }
        changed | outcome.changed
    }

    fn record_late(&self, note: &str, decision: Decision) {
        if let Some((sink, template)) = &self.late {
            let mut event = template.clone();
            event.ts_ms = crate::now_ms();
            event.rpc_method = Some("response".into());
            event.decision = decision;
            event.reason = Some(note.to_owned());
            sink.record_detached(event);
        }
    }
}

/// Response guardrails of a grant (request-only ones never see responses).
pub fn response_guardrails(grant: &Grant) -> Vec<Arc<Guardrail>> {
    grant
        .guardrails
        .iter()
        .filter(|g| g.direction.covers(Direction::Response))
        .cloned()
        .collect()
}
