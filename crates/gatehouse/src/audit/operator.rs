//! Operator events: what an operator changed (through `admin::AdminService`), recorded in the
//! same chained trail as requests.
//!
//! The fields are hashed in this order (`chain.rs`, canonical form 2): never reorder or rename
//! them, and add new ones at the end, optional and skipped when absent.

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        audit::{
            chain::{self, GENESIS},
            event::{AuditEvent, Decision},
        },
        secrets::Keyring,
    };

    fn revoked_key() -> AuditEvent {
        AuditEvent {
            ts_ms: 1_750_000_000_123,
            request_id: "op_7c4mkq2d".into(),
            client: None,
            credential_id: None,
            user: None,
            ip: None,
            country: None,
            server: None,
            http_method: String::new(),
            rpc_method: None,
            tool: None,
            decision: Decision::Allow,
            reason: None,
            status: 0,
            upstream_status: None,
            latency_us: 812,
            outcome: None,
            response_bytes: None,
            batch: Vec::new(),
            operator: Some(OperatorAction {
                actor: "alice".into(),
                origin: "cli".into(),
                host: Some("ops-1".into()),
                action: "key.revoke".into(),
                target_kind: "api_key".into(),
                target: "3f9a2c1b7d0e".into(),
                before: Some(serde_json::json!({"client": "ci", "revoked_at": null})),
                after: Some(
                    serde_json::json!({"client": "ci", "revoked_at": 1_750_000_000_100_i64}),
                ),
            }),
        }
    }

    /// The operator's fields come after every request field, so adding them changed no stored
    /// row's hash (the request vectors in `chain.rs` still pass); this pins their own form.
    #[test]
    fn operator_events_are_hashed_in_canonical_form_2() {
        let ring = Keyring::from_master(&[7; 32]);
        let mut scratch = Vec::new();
        let hash =
            chain::link_version(&ring, 2, 0, GENESIS, 1, &revoked_key(), &mut scratch).unwrap();
        let hashed = String::from_utf8(scratch).unwrap();
        assert!(
            hashed.ends_with(
                "\"decision\":\"allow\",\"status\":0,\"latency_us\":812,\"operator\":{\
                 \"actor\":\"alice\",\"origin\":\"cli\",\"host\":\"ops-1\",\
                 \"action\":\"key.revoke\",\"target_kind\":\"api_key\",\
                 \"target\":\"3f9a2c1b7d0e\",\"before\":{\"client\":\"ci\",\"revoked_at\":null},\
                 \"after\":{\"client\":\"ci\",\"revoked_at\":1750000000100}}}"
            ),
            "{hashed}"
        );
        assert_eq!(hash, OPERATOR_VECTOR);
        let mut edited = revoked_key();
        if let Some(op) = edited.operator.as_mut() {
            op.actor = "mallory".into();
        }
        let edited_hash =
            chain::link_version(&ring, 2, 0, GENESIS, 1, &edited, &mut Vec::new()).unwrap();
        assert_ne!(edited_hash, OPERATOR_VECTOR);
    }

    const OPERATOR_VECTOR: &str =
        "d57a5d441441077ba6525fccf4de50c6ecacc2896d30b5e9b54813936a8a357d";
}
