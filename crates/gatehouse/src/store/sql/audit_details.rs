//! An event's structured details, kept as JSON in the `batch` column: the messages of a
//! JSON-RPC batch (an array), or the action of an operator event (an object). The two never
//! meet in one event, and the first character tells them apart, so operator events needed no
//! schema change; a column of their own can come with a later migration.

use crate::store::{StoreError, StoreResult};
use gatehouse_model::audit::{AuditEvent, BatchEntry, EventKind, OperatorAction};

/// SQL conditions on the column selecting one kind of event. Only Gatehouse writes the
/// column, so a request event cannot pass for an operator event.
pub(crate) fn kind_condition(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Operator => "substr(batch, 1, 1) = '{'",
        EventKind::Request => "(batch IS NULL OR substr(batch, 1, 1) = '[')",
    }
}

pub(crate) fn encode(event: &AuditEvent) -> StoreResult<Option<String>> {
    let text = match (&event.operator, event.batch.is_empty()) {
        (None, true) => return Ok(None),
        (None, false) => serde_json::to_string(&event.batch),
        (Some(operator), true) => serde_json::to_string(operator),
        (Some(_), false) => {
            return Err(StoreError::Audit(
                "an operator event cannot carry batch messages".into(),
            ));
        }
    };
    text.map(Some)
        .map_err(|err| StoreError::Audit(err.to_string()))
}

pub(crate) fn decode(text: Option<&str>) -> StoreResult<(Vec<BatchEntry>, Option<OperatorAction>)> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("batch: {e}"));
    match text {
        None => Ok((Vec::new(), None)),
        Some(text) if text.starts_with('{') => Ok((
            Vec::new(),
            Some(serde_json::from_str(text).map_err(corrupt)?),
        )),
        Some(text) => Ok((serde_json::from_str(text).map_err(corrupt)?, None)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::audit::{checkpoint::KeyedCheckpoint, registry::KeyedChainStart};
    use crate::{
        audit::chain::{self, GENESIS},
        secrets::Keyring,
        store::{SqliteStore, Store},
    };
    use gatehouse_model::audit::{
        AuditEvent, AuditFilter, AuditRow, BatchEntry, ChainStart, Checkpoint, Decision, EventKind,
        OperatorAction,
    };

    fn event(n: i64) -> AuditEvent {
        AuditEvent {
            ts_ms: n,
            request_id: format!("r{n}"),
            client: None,
            credential_id: None,
            user: None,
            ip: None,
            country: None,
            server: None,
            http_method: "POST".into(),
            rpc_method: None,
            tool: None,
            decision: Decision::Allow,
            reason: None,
            status: 200,
            upstream_status: None,
            latency_us: 1,
            outcome: None,
            response_bytes: None,
            batch: Vec::new(),
            operator: None,
            rule: None,
        }
    }

    #[tokio::test]
    async fn operator_and_batch_details_come_back_as_written_and_filter_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let ring = Keyring::from_master(&[7; 32]);
        let batch = AuditEvent {
            batch: vec![BatchEntry {
                method: "tools/call".into(),
                tool: Some("a".into()),
            }],
            ..event(2)
        };
        let operator = AuditEvent {
            http_method: String::new(),
            status: 0,
            operator: Some(OperatorAction {
                actor: "alice".into(),
                origin: "cli".into(),
                host: None,
                action: "policy.remove".into(),
                target_kind: "policy".into(),
                target: "p1".into(),
                before: Some(serde_json::json!({"kind": "rate_limit", "spec": "{\"r\":1.5}"})),
                after: None,
            }),
            ..event(3)
        };
        let mut rows = Vec::new();
        let start = ChainStart::new(&ring, 1, GENESIS, 1, "test pid 1");
        let mut prev = start.hash.clone();
        for (seq, event) in (1..).zip([event(1), batch, operator]) {
            let hash = chain::link(&ring, 1, &prev, seq, &event);
            rows.push(AuditRow {
                seq,
                chain_id: 1,
                chain_seq: seq,
                hash_version: chain::HASH_VERSION,
                event,
                prev_hash: std::mem::replace(&mut prev, hash.clone()),
                hash,
            });
        }
        let checkpoint = Checkpoint::sign(&ring, 1, 3, &prev, 1);
        store
            .append_audit(Arc::new(rows.clone()), checkpoint, Some(start))
            .await
            .unwrap();
        assert_eq!(store.audit_page(0, 10).await.unwrap(), rows);
        assert!(chain::verify(&store, &ring).await.unwrap().is_intact());
        let of_kind = |kind| AuditFilter {
            kind: Some(kind),
            limit: 10,
            ..AuditFilter::default()
        };
        let seqs = |rows: Vec<AuditRow>| rows.iter().map(|r| r.seq).collect::<Vec<_>>();
        let operators = store.query_audit(&of_kind(EventKind::Operator)).await;
        assert_eq!(seqs(operators.unwrap()), [3]);
        let requests = store.query_audit(&of_kind(EventKind::Request)).await;
        assert_eq!(seqs(requests.unwrap()), [1, 2]);
    }

    #[test]
    fn an_event_with_both_details_is_refused() {
        let both = AuditEvent {
            batch: vec![BatchEntry {
                method: "ping".into(),
                tool: None,
            }],
            operator: Some(OperatorAction {
                actor: "a".into(),
                origin: "cli".into(),
                host: None,
                action: "x.y".into(),
                target_kind: "x".into(),
                target: "y".into(),
                before: None,
                after: None,
            }),
            ..event(1)
        };
        assert!(super::encode(&both).is_err());
    }
}
