//! Request guardrails: tool arguments, prompt arguments and resource URIs are scanned before
//! anything is forwarded. A block refuses the request; a redaction rewrites the body that goes
//! upstream (re-serialised once, from the same parse that was authorised).

use bytes::Bytes;
use serde_json::Value;

use crate::{
    error::GatewayError,
    gateway::jsonrpc::{Envelope, Kind},
    grants::Grant,
    guardrails::{self, Direction},
};

pub struct Inspected {
    /// Findings in audit form (`guardrail:<rule>:<detector>:<action>`).
    pub notes: Vec<String>,
    /// The body to forward when a redaction changed it.
    pub rewritten: Option<Bytes>,
}

pub fn inspect_request(
    grant: &Grant,
    envelope: &Envelope,
    raw: &[u8],
) -> Result<Inspected, GatewayError> {
    let mut inspected = Inspected {
        notes: Vec::new(),
        rewritten: None,
    };
    if !grant
        .guardrails
        .iter()
        .any(|g| g.direction.covers(Direction::Request))
    {
        return Ok(inspected);
    }
    let mut params: Vec<Option<Value>> =
        envelope.messages.iter().map(|m| m.params.clone()).collect();
    let mut changed = false;
    for (message, params) in envelope.messages.iter().zip(params.iter_mut()) {
        if message.kind != Kind::Request {
            continue;
        }
        let tool = (message.method() == "tools/call")
            .then(|| message.param_str("name"))
            .flatten();
        let target = match (message.method(), params.as_mut()) {
            ("tools/call" | "prompts/get", Some(p)) => p.get_mut("arguments"),
            ("resources/read" | "resources/subscribe", Some(p)) => p.get_mut("uri"),
            _ => None,
        };
        let Some(target) = target else { continue };
        let outcome = guardrails::apply(&grant.guardrails, Direction::Request, tool, target);
        if let Some(finding) = outcome.blocked {
            return Err(GatewayError::GuardrailBlocked {
                rule: finding.rule.to_string(),
                detector: finding.detector.to_string(),
            });
        }
        inspected
            .notes
            .extend(outcome.findings.iter().map(|f| f.note()));
        changed |= outcome.changed;
    }
    if changed {
        let mut body: Value =
            serde_json::from_slice(raw).map_err(|e| GatewayError::ParseError(e.to_string()))?;
        match &mut body {
            Value::Array(items) => {
                for (item, params) in items.iter_mut().zip(params) {
                    if let (Some(obj), Some(params)) = (item.as_object_mut(), params) {
                        obj.insert("params".into(), params);
                    }
                }
            }
            Value::Object(obj) => {
                if let Some(Some(params)) = params.into_iter().next() {
                    obj.insert("params".into(), params);
                }
            }
            _ => {}
        }
        let bytes =
            serde_json::to_vec(&body).map_err(|e| GatewayError::ParseError(e.to_string()))?;
        inspected.rewritten = Some(Bytes::from(bytes));
    }
    Ok(inspected)
}
