//! The audit trail: appending a writer's chained rows with their checkpoint (the first append
//! registering the chain), reading them back in table and chain order, and the filters
//! `audit query` uses.

use super::*;
use gatehouse::{
    audit::{chain::GENESIS, checkpoint::KeyedCheckpoint, registry::KeyedChainStart},
    secrets::Keyring,
};
use gatehouse_model::audit::{
    AuditEvent, AuditFilter, AuditRow, BatchEntry, ChainStart, Checkpoint, Decision, OperatorAction,
};
use std::sync::Arc;

fn row(seq: i64, client: &str, server: &str, decision: Decision) -> AuditRow {
    AuditRow {
        seq,
        chain_id: 1,
        chain_seq: seq,
        event: AuditEvent {
            ts_ms: 1_000 * seq,
            request_id: format!("r{seq}"),
            client: Some(client.into()),
            credential_id: Some("k1".into()),
            user: None,
            ip: Some("127.0.0.1".into()),
            country: None,
            server: Some(server.into()),
            http_method: "POST".into(),
            rpc_method: Some("tools/call".into()),
            tool: Some("echo".into()),
            decision,
            reason: match seq {
                2 => Some("rate_limit:burst".into()),
                6 => Some("guardrail:pii:credit_card:block".into()),
                _ => None,
            },
            status: if decision == Decision::Deny { 403 } else { 200 },
            upstream_status: (decision != Decision::Deny).then_some(200),
            latency_us: 10,
            outcome: None,
            response_bytes: Some(42),
            batch: Vec::new(),
            operator: None,
            rule: match seq {
                2 => Some("policy:burst".into()),
                6 => Some("guardrail:pii".into()),
                _ => None,
            },
        },
        hash_version: 3,
        prev_hash: if seq == 1 {
            opening().hash
        } else {
            format!("{:064}", seq - 1)
        },
        hash: format!("{seq:064}"),
    }
}

fn checkpoint(seq: i64) -> Checkpoint {
    Checkpoint::sign(
        &Keyring::from_master(&[7; 32]),
        1,
        seq,
        &format!("{seq:064}"),
        seq,
    )
}

/// Six rows over two clients, two servers and all three decisions.
fn trail() -> Vec<AuditRow> {
    vec![
        row(1, "amy", "demo", Decision::Allow),
        row(2, "bob", "demo", Decision::Deny),
        row(3, "amy", "files", Decision::Allow),
        row(4, "amy", "demo", Decision::Error),
        row(5, "bob", "files", Decision::Allow),
        row(6, "amy", "demo", Decision::Deny),
    ]
}

/// Chain 1's registry entry, written with its first rows.
fn opening() -> ChainStart {
    ChainStart::new(&Keyring::from_master(&[7; 32]), 1, GENESIS, 1, "host pid 1")
}

async fn appended(store: &DynStore) {
    let rows = trail();
    store
        .append_audit(Arc::new(rows[..2].to_vec()), checkpoint(2), Some(opening()))
        .await
        .unwrap();
    store
        .append_audit(Arc::new(rows[2..].to_vec()), checkpoint(6), None)
        .await
        .unwrap();
}

fn seqs(rows: Vec<AuditRow>) -> Vec<i64> {
    rows.into_iter().map(|r| r.seq).collect()
}

#[tokio::test]
async fn appended_rows_read_back_in_chain_order_with_the_head_and_checkpoint() {
    each_backend(|store| async move {
        assert_eq!(store.audit_chain_head(1).await.unwrap(), None);
        assert_eq!(store.audit_checkpoint(1).await.unwrap(), None);
        assert!(store.audit_page(0, 10).await.unwrap().is_empty());
        assert!(store.audit_chains().await.unwrap().is_empty());
        let generation = store.generation().await.unwrap();

        appended(&store).await;
        assert_eq!(
            store.audit_chain_head(1).await.unwrap(),
            Some((6, format!("{:064}", 6)))
        );
        assert_eq!(store.audit_chain_head(2).await.unwrap(), None);
        assert_eq!(
            store.audit_checkpoint(1).await.unwrap(),
            Some(checkpoint(6))
        );
        assert_eq!(store.audit_checkpoints().await.unwrap(), [checkpoint(6)]);
        assert_eq!(store.audit_chains().await.unwrap(), [opening()]);
        assert_eq!(store.audit_chain_ids().await.unwrap(), [1]);
        assert_eq!(store.audit_page(0, 100).await.unwrap(), trail());
        assert_eq!(store.audit_chain_page(1, 0, 100).await.unwrap(), trail());
        assert_eq!(
            seqs(store.audit_chain_page(1, 2, 3).await.unwrap()),
            [3, 4, 5]
        );
        assert!(store.audit_chain_page(2, 0, 10).await.unwrap().is_empty());
        assert_eq!(seqs(store.audit_page(2, 3).await.unwrap()), [3, 4, 5]);
        assert!(store.audit_page(6, 10).await.unwrap().is_empty());
        assert_eq!(
            store.generation().await.unwrap(),
            generation,
            "the trail is not configuration"
        );
    })
    .await;
}

#[tokio::test]
async fn a_failing_append_writes_no_row_and_keeps_the_checkpoint() {
    each_backend(|store| async move {
        appended(&store).await;
        // Row 7 is storable, row 8 is not (an operator event cannot carry batch messages):
        // the whole batch is refused.
        let mut unstorable = row(8, "amy", "demo", Decision::Allow);
        unstorable.event.batch = vec![BatchEntry {
            method: "ping".into(),
            tool: None,
        }];
        unstorable.event.operator = Some(OperatorAction {
            actor: "a".into(),
            origin: "cli".into(),
            host: None,
            action: "x.y".into(),
            target_kind: "x".into(),
            target: "y".into(),
            before: None,
            after: None,
        });
        let result = store
            .append_audit(
                Arc::new(vec![row(7, "amy", "demo", Decision::Allow), unstorable]),
                checkpoint(8),
                None,
            )
            .await;
        assert!(matches!(result, Err(StoreError::Audit(_))), "{result:?}");
        assert_eq!(
            seqs(store.audit_page(0, 100).await.unwrap()),
            [1, 2, 3, 4, 5, 6]
        );
        assert_eq!(
            store.audit_checkpoint(1).await.unwrap(),
            Some(checkpoint(6))
        );
    })
    .await;
}

#[tokio::test]
async fn opening_a_chain_another_writer_opened_first_is_a_conflict_and_writes_nothing() {
    each_backend(|store| async move {
        appended(&store).await;
        let ring = Keyring::from_master(&[7; 32]);
        // The same id, or the same place after the newest entry: both lost the race.
        for opens in [
            ChainStart::new(&ring, 1, &opening().hash, 2, "other pid 2"),
            ChainStart::new(&ring, 2, GENESIS, 2, "other pid 2"),
        ] {
            let mut first = row(1, "amy", "demo", Decision::Allow);
            first.chain_id = opens.chain_id;
            let sign = Checkpoint::sign(&ring, opens.chain_id, 1, &first.hash, 1);
            let result = store
                .append_audit(Arc::new(vec![first]), sign, Some(opens))
                .await;
            assert!(
                matches!(result, Err(StoreError::Conflict { .. })),
                "{result:?}"
            );
        }
        assert_eq!(store.audit_chains().await.unwrap(), [opening()]);
        assert_eq!(store.audit_chain_ids().await.unwrap(), [1]);
        assert_eq!(store.audit_checkpoints().await.unwrap(), [checkpoint(6)]);
        assert_eq!(store.audit_page(0, 100).await.unwrap().len(), 6);
    })
    .await;
}

#[tokio::test]
async fn audit_queries_filter_order_and_page() {
    each_backend(|store| async move {
        appended(&store).await;
        let query = |filter: AuditFilter| {
            let store = store.clone();
            async move { seqs(store.query_audit(&filter).await.unwrap()) }
        };
        let all = AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        };
        assert_eq!(query(all.clone()).await, [1, 2, 3, 4, 5, 6]);
        assert_eq!(
            query(AuditFilter {
                newest_first: true,
                ..all.clone()
            })
            .await,
            [6, 5, 4, 3, 2, 1]
        );
        assert_eq!(
            query(AuditFilter {
                client: Some("amy".into()),
                ..all.clone()
            })
            .await,
            [1, 3, 4, 6]
        );
        assert_eq!(
            query(AuditFilter {
                server: Some("files".into()),
                ..all.clone()
            })
            .await,
            [3, 5]
        );
        assert_eq!(
            query(AuditFilter {
                decision: Some(Decision::Deny),
                ..all.clone()
            })
            .await,
            [2, 6]
        );
        assert_eq!(
            query(AuditFilter {
                since_ms: Some(4_000),
                ..all.clone()
            })
            .await,
            [4, 5, 6]
        );
        assert_eq!(
            query(AuditFilter {
                after_seq: Some(4),
                ..all.clone()
            })
            .await,
            [5, 6]
        );
        assert_eq!(
            query(AuditFilter {
                client: Some("amy".into()),
                server: Some("demo".into()),
                decision: Some(Decision::Allow),
                ..all.clone()
            })
            .await,
            [1]
        );
        // By the rule that decided (migration 0016), read back as written.
        let by_rule = store
            .query_audit(&AuditFilter {
                rule: Some("policy:burst".into()),
                ..all.clone()
            })
            .await
            .unwrap();
        assert_eq!(
            by_rule
                .iter()
                .map(|r| (r.seq, r.event.rule.as_deref()))
                .collect::<Vec<_>>(),
            [(2, Some("policy:burst"))]
        );
        assert_eq!(
            query(AuditFilter {
                rule: Some("guardrail:pii".into()),
                client: Some("amy".into()),
                newest_first: true,
                ..all.clone()
            })
            .await,
            [6]
        );
        assert!(
            query(AuditFilter {
                rule: Some("grant".into()),
                ..all.clone()
            })
            .await
            .is_empty()
        );
        // A reason matches itself and the more specific codes under it, up to a `:`.
        for (reason, expected) in [
            ("rate_limit", &[2][..]),
            ("rate_limit:burst", &[2]),
            ("guardrail:pii", &[6]),
            ("guardrail", &[6]),
            ("rate_limit:bur", &[]),
            ("rate", &[]),
            ("rate_limi_", &[]),
        ] {
            assert_eq!(
                query(AuditFilter {
                    reason: Some(reason.into()),
                    ..all.clone()
                })
                .await,
                expected,
                "reason={reason}"
            );
        }
        // Pages: the limit and offset count matching rows in the order asked for.
        assert_eq!(
            query(AuditFilter {
                client: Some("amy".into()),
                newest_first: true,
                limit: 2,
                offset: 1,
                ..all.clone()
            })
            .await,
            [4, 3]
        );
        assert!(
            query(AuditFilter {
                client: Some("nobody".into()),
                ..all
            })
            .await
            .is_empty()
        );
    })
    .await;
}
