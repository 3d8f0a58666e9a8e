//! One audit event per request: who, what, the decision and why.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Forwarded upstream.
    Allow,
    /// Refused by Gatehouse (authentication, grant, protocol rule).
    Deny,
    /// Allowed, but the upstream failed or timed out.
    Error,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "allow" => Some(Decision::Allow),
            "deny" => Some(Decision::Deny),
            "error" => Some(Decision::Error),
            _ => None,
        }
    }
}

/// The recorded fields. Field order is part of the hash chain's canonical form: append new
/// fields at the end (with `#[serde(default)]`) and never reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub ts_ms: i64,
    pub request_id: String,
    pub client: Option<String>,
    /// API key id (later also token `jti`); never the secret.
    pub credential_id: Option<String>,
    pub user: Option<String>,
    pub ip: Option<String>,
    pub country: Option<String>,
    pub server: Option<String>,
    pub http_method: String,
    pub rpc_method: Option<String>,
    pub tool: Option<String>,
    pub decision: Decision,
    /// The denial or error code that decided (`tool_not_granted`, `upstream_timeout`, …).
    pub reason: Option<String>,
    pub status: u16,
    pub upstream_status: Option<u16>,
    pub latency_us: i64,
}

/// An event as stored: its place in the chain and the chain hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub seq: i64,
    #[serde(flatten)]
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub client: Option<String>,
    pub server: Option<String>,
    pub decision: Option<Decision>,
    pub since_ms: Option<i64>,
    /// Only events after this sequence number (for `audit tail --follow`).
    pub after_seq: Option<i64>,
    pub limit: i64,
    /// Newest first when true.
    pub newest_first: bool,
}
