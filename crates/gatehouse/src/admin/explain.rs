//! `policy explain`: the decision a request would get, and every step that led to it, without
//! calling anything or charging any counter.

use serde::Serialize;
use serde_json::Value;
use std::{net::IpAddr, sync::Arc};

use crate::{
    guardrails::{self, Direction},
    policy::{CompiledPolicy, Facts},
    snapshot::Snapshot,
};
use gatehouse_model::tool_pattern::ToolPattern;

#[derive(Debug, Serialize)]
pub struct Step {
    pub stage: String,
    pub rule: Option<String>,
    /// `pass`, `deny` or `skipped` (the policy does not apply to this request).
    pub outcome: &'static str,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Explanation {
    pub decision: &'static str,
    /// The step that denied, if any.
    pub decided_by: Option<String>,
    pub steps: Vec<Step>,
}

pub struct Question<'a> {
    pub client: &'a str,
    pub server: &'a str,
    pub tool: Option<&'a str>,
    pub ip: IpAddr,
    pub at: jiff::Timestamp,
    pub arguments: Option<&'a Value>,
}

/// The API key a question is asked for: its id and the tools it is narrowed to.
pub struct AsKey<'a> {
    pub id: &'a str,
    pub narrowing: Option<&'a [ToolPattern]>,
}

pub fn explain(snapshot: &Snapshot, q: &Question<'_>) -> Explanation {
    explain_as(snapshot, q, None)
}

/// [`explain`] for a request made with `key` (its narrowing and per-key counters apply).
pub fn explain_as(snapshot: &Snapshot, q: &Question<'_>, key: Option<AsKey<'_>>) -> Explanation {
    let mut steps = Vec::new();
    let deny = |mut steps: Vec<Step>, stage: &str, rule: Option<String>, detail: String| {
        let decided_by = Some(
            rule.clone()
                .map_or_else(|| stage.to_owned(), |r| format!("{stage}:{r}")),
        );
        steps.push(Step {
            stage: stage.to_owned(),
            rule,
            outcome: "deny",
            detail,
        });
        Explanation {
            decision: "deny",
            decided_by,
            steps,
        }
    };
    if !snapshot.servers.contains_key(q.server) {
        return deny(
            steps,
            "server",
            None,
            format!("no server named {:?}", q.server),
        );
    }
    if !snapshot.clients.contains_key(q.client) {
        return deny(
            steps,
            "identity",
            None,
            format!("no enabled client named {:?}", q.client),
        );
    }
    steps.push(pass("identity", None, format!("client {}", q.client)));
    let Some(grant) = snapshot.grant(q.client, q.server) else {
        return deny(
            steps,
            "connection",
            None,
            format!("{} has no connection to {}", q.client, q.server),
        );
    };
    let narrowing = key.as_ref().and_then(|k| k.narrowing);
    if let Some(tool) = q.tool {
        if !grant.allows_tool(tool, narrowing) {
            return deny(
                steps,
                "connection",
                None,
                match narrowing {
                    Some(_) => format!("tool {tool:?} is not granted (connection ∩ key)"),
                    None => format!("tool {tool:?} is not granted"),
                },
            );
        }
        steps.push(pass("connection", None, format!("tool {tool} granted")));
    } else {
        steps.push(pass("connection", None, "connection exists".into()));
    }
    let facts = Facts {
        client: Some(q.client),
        key_id: key.as_ref().map(|k| k.id),
        user: None,
        ip: q.ip,
        server: q.server,
        tool: q.tool,
        arguments: q.arguments,
        now: q.at,
    };
    for compiled in grant.policies.iter() {
        let applies = compiled
            .tools
            .as_ref()
            .is_none_or(|p| q.tool.is_some_and(|t| p.matches(t)));
        let rule = Some(compiled.id.to_string());
        if !applies {
            steps.push(Step {
                stage: compiled.kind.as_str().to_owned(),
                rule,
                outcome: "skipped",
                detail: "does not apply to this tool".into(),
            });
            continue;
        }
        // A counter kept in a backend that needs a round trip is not consulted: explaining
        // works offline, and says so.
        let Some(peeked) = compiled.policy.peek_now(&facts) else {
            steps.push(Step {
                stage: compiled.kind.as_str().to_owned(),
                rule,
                outcome: "skipped",
                detail: "its counter is kept elsewhere (not consulted)".into(),
            });
            continue;
        };
        match peeked {
            Ok(()) => steps.push(pass(compiled.kind.as_str(), rule, describe(compiled))),
            Err(refusal) => return deny(steps, compiled.kind.as_str(), rule, refusal.message),
        }
    }
    for guardrail in grant.guardrails.iter() {
        let rule = Some(guardrail.id.to_string());
        let action = guardrail.action.as_str();
        if !guardrail.applies(Direction::Request, q.tool) {
            let detail = if guardrail.direction.covers(Direction::Request) {
                "does not apply to this tool"
            } else {
                "checks responses only (not explained)"
            };
            steps.push(Step {
                stage: "guardrail".into(),
                rule,
                outcome: "skipped",
                detail: detail.into(),
            });
            continue;
        }
        let Some(arguments) = q.arguments else {
            let detail = format!("{action} guardrail on requests; pass --args to scan arguments");
            steps.push(pass("guardrail", rule, detail));
            continue;
        };
        let mut scanned = arguments.clone();
        let outcome = guardrails::apply(
            std::slice::from_ref(guardrail),
            Direction::Request,
            q.tool,
            &mut scanned,
        );
        if let Some(block) = outcome.blocked {
            let detail = format!("detector {} finds the arguments; blocked", block.detector);
            return deny(steps, "guardrail", rule, detail);
        }
        let detail = if outcome.findings.is_empty() {
            "no finding in the arguments".to_owned()
        } else {
            let detectors: Vec<&str> = outcome.findings.iter().map(|f| &*f.detector).collect();
            format!("would {action}: {}", detectors.join(", "))
        };
        steps.push(pass("guardrail", rule, detail));
    }
    Explanation {
        decision: "allow",
        decided_by: None,
        steps,
    }
}

fn pass(stage: &str, rule: Option<String>, detail: String) -> Step {
    Step {
        stage: stage.to_owned(),
        rule,
        outcome: "pass",
        detail,
    }
}

fn describe(compiled: &Arc<CompiledPolicy>) -> String {
    let scope = match (&compiled.client, &compiled.server) {
        (Some(c), Some(s)) => format!("attached to {c} → {s}"),
        (Some(c), None) => format!("attached to client {c}"),
        (None, Some(s)) => format!("attached to server {s}"),
        (None, None) => "global".into(),
    };
    format!("{} policy, {scope}", compiled.kind.as_str())
}
