//! Policies: operational rules on every connection, evaluated after the grant in one fixed
//! order — arguments → IP → country → schedule → quota → rate limit — so the cheapest,
//! stateless refusals come first and counters are charged only for requests that would pass.
//!
//! Each kind is one file. Stateless kinds (arguments, IP, country, schedule) implement
//! [`Policy`] and decide synchronously; stateful ones (quota, rate limit) implement
//! [`StatefulPolicy`] and charge their counters through the [`crate::state::CounterStore`]
//! seam, which a shared backend answers after a round trip. Specs are JSON (stored as given),
//! validated and compiled once into the snapshot; counters live in [`PolicyRuntime`] so they
//! survive snapshot rebuilds.

pub mod arguments;
pub mod client_ip;
pub mod country;
pub mod geo;
pub mod ip;
pub mod quota;
pub mod rate;
pub mod runtime;
pub mod schedule;
pub use subject::PerSubject;
mod spec;
mod subject;

pub use runtime::PolicyRuntime;
pub use spec::{check_runs_under, compile, validate};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::{net::IpAddr, sync::Arc, time::Duration};

use crate::state::StateFuture;
use gatehouse_model::{policy_kind::PolicyKind, tool_pattern::ToolPattern};

/// What a policy may look at. Built once per request.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub client: Option<&'a str>,
    pub key_id: Option<&'a str>,
    pub user: Option<&'a str>,
    /// The caller's address after trusted-proxy resolution.
    pub ip: IpAddr,
    pub server: &'a str,
    /// The tool of a `tools/call`.
    pub tool: Option<&'a str>,
    pub arguments: Option<&'a Value>,
    pub now: jiff::Timestamp,
}

/// A policy's refusal, before the engine names the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why, for the caller and the audit trail. Never secret material.
    pub message: String,
    pub retry_after: Option<Duration>,
    /// The policy's counter could not be reached: refused without deciding (fail closed).
    pub unavailable: bool,
}

impl Refusal {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry_after: None,
            unavailable: false,
        }
    }

    /// The counter's backend did not answer, so the policy cannot decide.
    pub fn unavailable() -> Self {
        Self {
            unavailable: true,
            ..Self::new("the policy's shared counter could not be reached")
        }
    }
}

/// A policy that decides from the request's facts alone.
pub trait Policy: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> PolicyKind;
    fn check(&self, facts: &Facts<'_>) -> Result<(), Refusal>;
    /// Decides as `check` would, for `policy explain`.
    fn peek(&self, facts: &Facts<'_>) -> Result<(), Refusal>;
    /// True for the stand-in of a stored rule that could not be compiled (`crate::snapshot::records`).
    fn unloadable(&self) -> bool {
        false
    }
}

/// A policy that keeps counters: charging may need a round trip to a shared backend.
pub trait StatefulPolicy: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> PolicyKind;
    /// Decides, charging the counter on success.
    fn charge<'a>(&'a self, facts: &'a Facts<'a>) -> StateFuture<'a, Result<(), Refusal>>;
    /// Gives back what `charge` took with the same facts, when a later policy refused the
    /// request (a quota's into the window of `facts.now`, the one it was charged in).
    fn refund<'a>(&'a self, facts: &'a Facts<'a>) -> StateFuture<'a, ()>;
    /// Decides without charging anything (for `policy explain`).
    fn peek<'a>(&'a self, facts: &'a Facts<'a>) -> StateFuture<'a, Result<(), Refusal>>;
}

/// A compiled policy of either sort.
#[derive(Debug, Clone)]
pub enum Rule {
    Stateless(Arc<dyn Policy>),
    Stateful(Arc<dyn StatefulPolicy>),
}

impl Rule {
    pub fn kind(&self) -> PolicyKind {
        match self {
            Rule::Stateless(policy) => policy.kind(),
            Rule::Stateful(policy) => policy.kind(),
        }
    }

    pub fn unloadable(&self) -> bool {
        matches!(self, Rule::Stateless(policy) if policy.unloadable())
    }

    /// Decides without charging, when that needs no round trip (`None`: the counter is kept
    /// in a backend that cannot answer at once).
    pub fn peek_now(&self, facts: &Facts<'_>) -> Option<Result<(), Refusal>> {
        match self {
            Rule::Stateless(policy) => Some(policy.peek(facts)),
            Rule::Stateful(policy) => policy.peek(facts).now_or_never(),
        }
    }
}

/// A policy with its id and scope, as the snapshot holds it.
#[derive(Debug)]
pub struct CompiledPolicy {
    pub id: Arc<str>,
    pub kind: PolicyKind,
    pub client: Option<String>,
    pub server: Option<String>,
    pub tools: Option<ToolPattern>,
    pub policy: Rule,
}

impl CompiledPolicy {
    /// Whether the policy is attached to this client/server pair (tool scope is checked per
    /// request).
    pub fn attached_to(&self, client: Option<&str>, server: &str) -> bool {
        self.client.as_deref().is_none_or(|c| Some(c) == client)
            && self.server.as_deref().is_none_or(|s| s == server)
    }

    fn applies(&self, facts: &Facts<'_>) -> bool {
        match &self.tools {
            None => true,
            Some(pattern) => facts.tool.is_some_and(|t| pattern.matches(t)),
        }
    }
}

/// A policy's refusal with the rule that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub kind: PolicyKind,
    pub rule: Arc<str>,
    pub message: String,
    pub retry_after: Option<Duration>,
    /// The rule could not be loaded, so it refuses everything in its scope.
    pub unloadable: bool,
    /// The rule's counter could not be reached (`GatewayError::StateUnavailable`).
    pub unavailable: bool,
}

/// Runs the policies attached to a connection, in order; refunds earlier charges when a later
/// policy refuses. Stateless policies are decided in place; only stateful ones go through
/// their counters' futures, which the in-memory counters complete on the first poll. Nothing
/// is allocated: every policy before a refusal passed, so the refunds walk them again.
pub async fn enforce(policies: &[Arc<CompiledPolicy>], facts: &Facts<'_>) -> Result<(), Denial> {
    for (at, compiled) in policies.iter().enumerate() {
        if !compiled.applies(facts) {
            continue;
        }
        let decided = match &compiled.policy {
            Rule::Stateless(policy) => policy.check(facts),
            Rule::Stateful(policy) => policy.charge(facts).await,
        };
        if let Err(refusal) = decided {
            for earlier in policies[..at].iter().filter(|p| p.applies(facts)) {
                if let Rule::Stateful(policy) = &earlier.policy {
                    policy.refund(facts).await;
                }
            }
            return Err(Denial {
                kind: compiled.kind,
                rule: compiled.id.clone(),
                message: refusal.message,
                retry_after: refusal.retry_after,
                unloadable: compiled.policy.unloadable(),
                unavailable: refusal.unavailable,
            });
        }
    }
    Ok(())
}

/// Which subject a counter is kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    #[default]
    Client,
    Key,
    User,
    Ip,
    Tool,
    /// One counter for everyone the policy applies to.
    Global,
}

impl Per {
    pub fn subject(self, facts: &Facts<'_>) -> String {
        match self {
            Per::Client => format!("client:{}", facts.client.unwrap_or("anonymous")),
            // Access tokens are minted freely, so a per-token counter could be escaped by
            // minting another: they count against their client.
            Per::Key => match facts.key_id {
                Some(key) => format!("key:{key}"),
                None => format!("client:{}", facts.client.unwrap_or("anonymous")),
            },
            Per::User => format!(
                "user:{}",
                facts.user.or(facts.client).unwrap_or("anonymous")
            ),
            Per::Ip => format!("ip:{}", facts.ip),
            Per::Tool => format!("tool:{}", facts.tool.unwrap_or("-")),
            Per::Global => "global".to_owned(),
        }
    }
}

#[cfg(test)]
mod seam_tests;

#[cfg(test)]
pub(crate) mod tests_support {
    use super::{Facts, Refusal, StatefulPolicy};

    /// Charges `policy` now (the in-memory counters answer without waiting).
    pub fn check(policy: &dyn StatefulPolicy, facts: &Facts<'_>) -> Result<(), Refusal> {
        policy
            .charge(facts)
            .now_or_never()
            .unwrap_or_else(|| Err(Refusal::new("counter not ready")))
    }

    pub fn peek(policy: &dyn StatefulPolicy, facts: &Facts<'_>) -> Result<(), Refusal> {
        policy
            .peek(facts)
            .now_or_never()
            .unwrap_or_else(|| Err(Refusal::new("counter not ready")))
    }

    /// Facts for client `agent` calling tool `echo` at `ms` after the epoch.
    pub fn facts_at(ms: i64) -> Facts<'static> {
        Facts {
            client: Some("agent"),
            key_id: Some("k1"),
            user: None,
            ip: std::net::IpAddr::from([192, 0, 2, 1]),
            server: "demo",
            tool: Some("echo"),
            arguments: None,
            now: jiff::Timestamp::from_millisecond(ms).unwrap(),
        }
    }
}
