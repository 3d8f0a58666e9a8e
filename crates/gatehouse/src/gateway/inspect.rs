//! Request guardrails: every message the client sends is scanned before anything is forwarded
//! — requests and notifications (their `params`) and the client's answers to the server's
//! requests (elicitation, sampling, roots: their `result` or `error`). A block refuses the body;
//! a redaction rewrites the body that goes upstream, serialised once from the parse that was
//! authorised.

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::{
    error::GatewayError,
    grants::Grant,
    guardrails::{self, Direction},
};
use gatehouse_model::jsonrpc::{Envelope, Kind, Message};

pub struct Inspected {
    /// Findings in audit form (`guardrail:<rule>:<detector>:<action>`).
    pub notes: Vec<String>,
    /// The body to forward when a redaction changed it.
    pub rewritten: Option<Bytes>,
}

pub fn inspect_request(grant: &Grant, envelope: &mut Envelope) -> Result<Inspected, GatewayError> {
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
    let answers_only = envelope.only_notifications_or_responses();
    let mut changed = false;
    for message in &mut envelope.messages {
        let tool = (message.method() == "tools/call")
            .then(|| message.param_str("name").map(str::to_owned))
            .flatten();
        // Guardrail paths name members of the arguments, as in the tool's input schema.
        let path_root =
            matches!(message.method(), "tools/call" | "prompts/get").then_some("arguments");
        let target = match message.kind {
            Kind::Response => message.outcome.as_mut().map(|(_, value)| value),
            Kind::Request | Kind::Notification => message.params.as_mut(),
        };
        let Some(target) = target else { continue };
        let outcome = guardrails::apply_at(
            &grant.guardrails,
            Direction::Request,
            tool.as_deref(),
            target,
            path_root,
        );
        if let Some(finding) = outcome.blocked {
            let (rule, detector) = (finding.rule.to_string(), finding.detector.to_string());
            return Err(if answers_only {
                GatewayError::GuardrailBlockedAnswer { rule, detector }
            } else {
                GatewayError::GuardrailBlocked { rule, detector }
            });
        }
        inspected
            .notes
            .extend(outcome.findings.iter().map(|f| f.note()));
        changed |= outcome.changed;
    }
    if changed {
        inspected.rewritten = Some(serialise(envelope)?);
    }
    Ok(inspected)
}

/// The envelope as it goes upstream, serialised from the parse (after a change to it).
pub fn serialise(envelope: &Envelope) -> Result<Bytes, GatewayError> {
    let bytes = if envelope.batch {
        serde_json::to_vec(
            &envelope
                .messages
                .iter()
                .map(Outgoing::of)
                .collect::<Vec<_>>(),
        )
    } else {
        serde_json::to_vec(&envelope.messages.first().map(Outgoing::of))
    }
    .map_err(|e| GatewayError::ParseError(e.to_string()))?;
    Ok(Bytes::from(bytes))
}

/// A message as it goes upstream, borrowed from the parse.
#[derive(Serialize)]
struct Outgoing<'m> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'m Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'m str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'m Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'m Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'m Value>,
}

impl<'m> Outgoing<'m> {
    fn of(message: &'m Message) -> Self {
        let outcome = |key: &str| {
            message
                .outcome
                .as_ref()
                .filter(|(k, _)| *k == key)
                .map(|(_, value)| value)
        };
        Outgoing {
            jsonrpc: "2.0",
            id: message.id.as_ref(),
            method: message.method.as_deref(),
            params: message.params.as_ref(),
            result: outcome("result"),
            error: outcome("error"),
        }
    }
}
