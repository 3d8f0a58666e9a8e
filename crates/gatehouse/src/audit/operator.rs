//! Operator events: what an operator changed (through `admin::AdminService`), recorded in the
//! same chained trail as requests. Their types are plain values
//! ([`gatehouse_model::audit::OperatorAction`]); this pins how the chain hashes them.

#[cfg(test)]
mod tests {
    use crate::{
        audit::chain::{self, GENESIS},
        secrets::Keyring,
    };
    use gatehouse_model::audit::{AuditEvent, Decision, OperatorAction};

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
            rule: None,
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
