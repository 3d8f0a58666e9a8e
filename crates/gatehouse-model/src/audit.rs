//! What the audit trail records: one event per request (who, what, the decision and why) and
//! per operator change, and the rows as stored.
//!
//! [`OperatorAction`]'s fields are hashed in this order (the library's `audit/chain.rs`,
//! canonical form 2): never reorder or rename them, and add new ones at the end, optional and
//! skipped when absent.

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

/// How a forwarded request's exchange ended. Absent for requests refused or failed before
/// anything was relayed to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The whole response reached the client.
    Complete,
    /// The client closed its connection before the response ended.
    ClientGone,
    /// Gatehouse shut down (grace period over) before the response ended.
    Shutdown,
    /// The upstream's response broke off: a cut SSE stream, a broken chunked body, a body
    /// shorter than its `Content-Length`.
    UpstreamTruncated,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::ClientGone => "client_gone",
            Outcome::Shutdown => "shutdown",
            Outcome::UpstreamTruncated => "upstream_truncated",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "complete" => Some(Outcome::Complete),
            "client_gone" => Some(Outcome::ClientGone),
            "shutdown" => Some(Outcome::Shutdown),
            "upstream_truncated" => Some(Outcome::UpstreamTruncated),
            _ => None,
        }
    }
}

/// One message of a JSON-RPC batch: every message is recorded, not only the first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchEntry {
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
}

/// The recorded fields. The hash chain does not hash this struct's serde form: it hashes a
/// versioned canonical form (`chain.rs`), so fields can be added here (optional, appended to
/// the current version's form) without changing the hash of any stored row.
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
    /// How the exchange ended, for requests that were forwarded upstream.
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// Response body bytes relayed to the client, for requests that were forwarded.
    #[serde(default)]
    pub response_bytes: Option<u64>,
    /// Every message of a JSON-RPC batch (empty for a single message).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch: Vec<BatchEntry>,
    /// Set on an operator event (a change made through the admin service): then there is no
    /// HTTP request (`http_method` is empty, `status` 0) and `decision` is `allow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<OperatorAction>,
    /// The rule that decided, where one did: `policy:<id>`, `guardrail:<name>`, `grant`,
    /// `scope` or `pin` (docs/audit.md, "Which rule decided"). Absent when no rule decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// An event as stored: its place in the chain and the chain hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    /// The row's place in the table: commit order across every chain, assigned by the store.
    pub seq: i64,
    /// The writer's chain the row belongs to; 0 for rows written before chains.
    #[serde(default)]
    pub chain_id: i64,
    /// The row's place in its chain, from 1: what the chain hash covers.
    #[serde(default)]
    pub chain_seq: i64,
    /// The canonical form the row's hash was computed over (`chain::HASH_VERSION` for rows
    /// written now; 1 for rows written before versioning).
    #[serde(default = "legacy_hash_version")]
    pub hash_version: u8,
    #[serde(flatten)]
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

fn legacy_hash_version() -> u8 {
    1
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
    /// Matching rows skipped before the first returned (in the order asked for).
    pub offset: i64,
    /// Newest first when true.
    pub newest_first: bool,
    /// Only request events or only operator events.
    pub kind: Option<EventKind>,
    /// Only events before this time (exclusive).
    pub until_ms: Option<i64>,
    /// Only events before this sequence number (paging newest first).
    pub before_seq: Option<i64>,
    /// Only events of this user (the audit row's user id).
    pub user: Option<String>,
    /// Only events of this credential (an API key's id, an access token's id).
    pub credential_id: Option<String>,
    pub tool: Option<String>,
    /// Only events with this reason code (`tool_not_granted`, `guardrail_blocked`, …).
    pub reason: Option<String>,
    /// Only events this rule decided (`policy:<id>`, `guardrail:<name>`, `grant`, …).
    pub rule: Option<String>,
}

/// One mutation: who made it, from where, what it did to which record, and the record's
/// summary before and after. Summaries hold ids, names and settings, never secrets (no key
/// material, client secrets, passwords or injected credentials, nor their hashes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorAction {
    /// Who: the account running the CLI, or the name it was given (`--actor`).
    pub actor: String,
    /// Through what: `cli` (later `api`).
    pub origin: String,
    /// The machine the CLI ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `<target kind>.<verb>`, e.g. `key.revoke`, `policy.import`.
    pub action: String,
    /// `server`, `client`, `api_key`, `connection`, `policy`, `user`, …
    pub target_kind: String,
    /// The record's id or name (`client/server` for a connection).
    pub target: String,
    /// The record before the change; absent for a create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    /// The record after the change; absent for a delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
}

/// Which events `audit query` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Calls through the gateway and the authorization server.
    Request,
    /// Changes made by operators.
    Operator,
}

impl EventKind {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "request" => Some(EventKind::Request),
            "operator" => Some(EventKind::Operator),
            _ => None,
        }
    }
}

/// A signed checkpoint of one chain's head: where its rows must reach. The library signs and
/// checks it with the audit key (`audit/checkpoint.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The chain; 0 (also when absent, in checkpoints exported before chains) for the rows
    /// written before chains.
    #[serde(default)]
    pub chain_id: i64,
    /// The chain head: the last row's sequence number in the chain and its hash.
    pub seq: i64,
    pub hash: String,
    /// When the checkpoint was signed.
    pub ts_ms: i64,
    /// HMAC with the audit key over the fields above, hex.
    pub mac: String,
}

/// A chain's entry in the chain registry. The library makes and checks its hash with the audit
/// key (`audit/registry.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainStart {
    pub chain_id: i64,
    /// The hash of the entry before this one (for the first entry, chain 0's last row's, or
    /// zeros).
    pub prev: String,
    pub started_ms: i64,
    /// Which process wrote the chain (host and process id), for the operator.
    pub writer: String,
    /// HMAC with the audit key over the fields above, hex; the chain's first row links to it.
    pub hash: String,
}

/// Where retention cut a chain: its rows up to `seq` were archived into the bundle named here
/// and removed. The library signs it with the evidence key (audit/retention.rs), so anyone
/// holding the public key can check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSeal {
    pub chain_id: i64,
    /// The last removed row's `chain_seq` and chain hash: the chain's rows go on from here.
    pub seq: i64,
    pub hash: String,
    /// Rows with `seq` (table order) up to this were removed.
    pub upto_seq: i64,
    /// The archive's file name and SHA-256 (hex).
    pub bundle: String,
    pub bundle_digest: String,
    pub sealed_ms: i64,
    /// Ed25519 signature (hex) with the evidence key over the fields above.
    pub signature: String,
}
