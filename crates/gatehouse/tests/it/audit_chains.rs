//! One audit chain per writer: writers sharing a database append side by side, each chain
//! verifies on its own, and a chain edited, emptied or deleted whole is found and named.

use gatehouse::{
    audit::{
        AuditWriter,
        chain::{self, ChainProblem},
    },
    secrets::Keyring,
    store::DynStore,
};
use gatehouse_model::audit::{AuditEvent, AuditRow, Checkpoint, Decision};
use std::{sync::Arc, time::Duration};

use crate::helpers::TestDb;
use tokio_util::sync::CancellationToken;

fn event(writer: &str, n: usize) -> AuditEvent {
    AuditEvent {
        ts_ms: 1_750_000_000_000,
        request_id: format!("{writer}-{n}"),
        client: Some(writer.into()),
        credential_id: None,
        user: None,
        ip: Some("127.0.0.1".into()),
        country: None,
        server: Some("demo".into()),
        http_method: "POST".into(),
        rpc_method: Some("tools/call".into()),
        tool: Some("echo".into()),
        decision: Decision::Allow,
        reason: None,
        status: 200,
        upstream_status: Some(200),
        latency_us: 10,
        outcome: None,
        response_bytes: None,
        batch: Vec::new(),
        operator: None,
        rule: None,
    }
}

fn keyring() -> Arc<Keyring> {
    Arc::new(Keyring::from_master(&[7; 32]))
}

/// A store of its own on the database: its own connections, as another process has.
async fn open(dir: &TestDb) -> DynStore {
    dir.open().await
}

/// Records `count` events through a writer of its own (one chain), durably, in batches as
/// they come, and stops it.
async fn write(store: DynStore, writer: &'static str, count: usize) {
    let (sink, audit) = AuditWriter::new(store, keyring(), 64, 16, true, Duration::from_millis(1));
    let stop = CancellationToken::new();
    let running = tokio::spawn(audit.run(stop.clone()));
    let mut senders = tokio::task::JoinSet::new();
    for n in 0..count {
        let sink = sink.clone();
        senders.spawn(async move { sink.record(event(writer, n)).await });
    }
    while let Some(sent) = senders.join_next().await {
        sent.unwrap();
    }
    stop.cancel();
    running.await.unwrap();
}

async fn rows(store: &DynStore) -> Vec<AuditRow> {
    store.audit_page(0, 10_000).await.unwrap()
}

async fn sql(dir: &TestDb, statement: &str) {
    dir.execute(statement, &[]).await;
}

/// Three writers, one after another: chains 1, 2 and 3 with `rows` rows each.
async fn three_chains(dir: &TestDb, rows: usize) -> DynStore {
    let store = open(dir).await;
    for writer in ["a", "b", "c"] {
        write(open(dir).await, writer, rows).await;
    }
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_database_append_side_by_side_and_both_chains_verify() {
    let dir = TestDb::new();
    let (first, second) = (open(&dir).await, open(&dir).await);
    tokio::join!(write(first, "a", 300), write(second, "b", 300));

    let store = open(&dir).await;
    let rows = rows(&store).await;
    assert_eq!(rows.len(), 600);
    let registry = store.audit_chains().await.unwrap();
    assert_eq!(
        registry.iter().map(|c| c.chain_id).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(
        registry[1].prev, registry[0].hash,
        "the registry is chained"
    );
    for chain in &registry {
        let of_chain: Vec<&AuditRow> = rows
            .iter()
            .filter(|r| r.chain_id == chain.chain_id)
            .collect();
        // Each chain holds one writer's events, numbered 1..=300 in table order: no writer
        // ever appended to the other's chain or skipped a number.
        let writer = of_chain[0].event.client.clone();
        assert!(of_chain.iter().all(|r| r.event.client == writer));
        assert_eq!(
            of_chain.iter().map(|r| r.chain_seq).collect::<Vec<_>>(),
            (1..=300).collect::<Vec<_>>()
        );
        assert_eq!(
            of_chain[0].prev_hash, chain.hash,
            "a chain starts at its entry"
        );
    }
    let report = chain::verify(&*store, &keyring()).await.unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.rows_checked, 600);
    assert_eq!(report.chains.len(), 2);
}

#[tokio::test]
async fn a_row_edited_in_one_chain_is_reported_in_that_chain_only() {
    let dir = TestDb::new();
    let store = three_chains(&dir, 4).await;
    sql(
        &dir,
        "UPDATE audit_events SET decision = 'deny' WHERE chain_id = 2 AND chain_seq = 3",
    )
    .await;
    let report = chain::verify(&*store, &keyring()).await.unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems_in(2), [ChainProblem::Modified { seq: 3 }]);
    assert_eq!(
        report.problems[0].to_string(),
        "chain 2: row 3 was modified"
    );

    // Moving a row to another chain is an edit too: the chain is part of its hash.
    sql(
        &dir,
        "UPDATE audit_events SET decision = 'allow' WHERE chain_id = 2 AND chain_seq = 3",
    )
    .await;
    assert!(
        chain::verify(&*store, &keyring())
            .await
            .unwrap()
            .is_intact()
    );
    sql(
        &dir,
        "UPDATE audit_events SET chain_id = 3, chain_seq = 5 WHERE chain_id = 1 AND chain_seq = 4",
    )
    .await;
    let report = chain::verify(&*store, &keyring()).await.unwrap();
    assert_eq!(
        report.problems_in(1),
        [ChainProblem::Truncated {
            last_seq: 3,
            checkpoint_seq: 4
        }]
    );
    assert_eq!(
        report.problems_in(3),
        [
            ChainProblem::BrokenLink { seq: 5 },
            ChainProblem::Modified { seq: 5 },
            ChainProblem::CheckpointBehind {
                checkpoint_seq: 4,
                last_seq: 5
            }
        ]
    );
}

#[tokio::test]
async fn a_chain_deleted_whole_is_found_by_the_registry_or_an_exported_checkpoint() {
    let dir = TestDb::new();
    let store = three_chains(&dir, 3).await;
    let exported: Vec<Checkpoint> = store.audit_checkpoints().await.unwrap();
    assert_eq!(exported.len(), 3);

    // Rows only: the registry and the checkpoint still name the chain.
    sql(&dir, "DELETE FROM audit_events WHERE chain_id = 2").await;
    let report = chain::verify(&*store, &keyring()).await.unwrap();
    assert_eq!(
        report.problems_in(2),
        [ChainProblem::Truncated {
            last_seq: 0,
            checkpoint_seq: 3
        }]
    );
    // And its checkpoint: a registered chain always has one.
    sql(
        &dir,
        "DELETE FROM audit_chain_checkpoints WHERE chain_id = 2",
    )
    .await;
    let report = chain::verify(&*store, &keyring()).await.unwrap();
    assert_eq!(report.problems_in(2), [ChainProblem::CheckpointMissing]);
    // And its registry entry: the next entry no longer links, and the ids have a gap.
    sql(&dir, "DELETE FROM audit_chains WHERE chain_id = 2").await;
    let report = chain::verify(&*store, &keyring()).await.unwrap();
    assert_eq!(
        report
            .problems
            .iter()
            .map(|f| f.chain_id)
            .collect::<Vec<_>>(),
        [3, 3],
        "{:?}",
        report.problems
    );
    assert_eq!(
        report.problems_in(3),
        [
            ChainProblem::ChainsMissing {
                after_chain: 1,
                next_chain: 3
            },
            ChainProblem::EntryBrokenLink
        ]
    );

    // The newest chain deleted whole leaves a consistent registry behind: only checkpoints
    // exported since show it.
    let dir = TestDb::new();
    let store = three_chains(&dir, 3).await;
    let exported: Vec<Checkpoint> = store.audit_checkpoints().await.unwrap();
    sql(
        &dir,
        "DELETE FROM audit_events WHERE chain_id = 3; \
         DELETE FROM audit_chain_checkpoints WHERE chain_id = 3; \
         DELETE FROM audit_chains WHERE chain_id = 3",
    )
    .await;
    assert!(
        chain::verify(&*store, &keyring())
            .await
            .unwrap()
            .is_intact()
    );
    let report = chain::verify_with(&*store, &keyring(), &exported)
        .await
        .unwrap();
    assert_eq!(
        report
            .problems
            .iter()
            .map(|f| f.chain_id)
            .collect::<Vec<_>>(),
        [3]
    );
    assert_eq!(
        report.problems_in(3),
        [ChainProblem::Truncated {
            last_seq: 0,
            checkpoint_seq: 3
        }]
    );
}

#[tokio::test]
async fn a_registry_entry_deleted_or_edited_is_found() {
    let dir = TestDb::new();
    let store = three_chains(&dir, 2).await;
    sql(
        &dir,
        "UPDATE audit_chains SET writer = 'someone else' WHERE chain_id = 1",
    )
    .await;
    let report = chain::verify(&*store, &keyring()).await.unwrap();
    assert_eq!(report.problems_in(1), [ChainProblem::EntryForged]);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);

    sql(&dir, "DELETE FROM audit_chains WHERE chain_id = 3").await;
    let report = chain::verify(&*store, &keyring()).await.unwrap();
    assert_eq!(
        report.problems_in(3),
        [
            ChainProblem::Unregistered,
            ChainProblem::BrokenLink { seq: 1 }
        ]
    );
}

/// Chains opened later link to the rows written before chains (chain 0), so deleting those
/// wholesale is found too.
#[tokio::test]
async fn the_first_chain_links_to_the_rows_written_before_chains() {
    let dir = TestDb::new();
    let store = three_chains(&dir, 2).await;
    let first = &store.audit_chains().await.unwrap()[0];
    assert_eq!(
        first.prev,
        chain::GENESIS,
        "nothing was written before chains"
    );
    // Chain 1 relabelled as chain 0 (its rows verify only where they were written).
    sql(
        &dir,
        "DELETE FROM audit_chains WHERE chain_id = 1; \
         UPDATE audit_events SET chain_id = 0 WHERE chain_id = 1; \
         UPDATE audit_chain_checkpoints SET chain_id = 0 WHERE chain_id = 1",
    )
    .await;
    let report = chain::verify(&*store, &keyring()).await.unwrap();
    assert!(
        report
            .problems_in(0)
            .contains(&ChainProblem::Modified { seq: 1 }),
        "{:?}",
        report.problems
    );
    assert_eq!(
        report.problems_in(2),
        [
            ChainProblem::ChainsMissing {
                after_chain: 0,
                next_chain: 2
            },
            ChainProblem::EntryBrokenLink
        ]
    );
}

/// Verification reads the table once in `seq` order; a chain whose rows are not in that order
/// is walked again in its own order, so where a row sits in the table changes nothing.
#[tokio::test]
async fn rows_out_of_table_order_verify_in_chain_order() {
    let dir = TestDb::new();
    let store = three_chains(&dir, 4).await;
    // Chain 2's rows 2 and 3 trade places in the table (not in the chain).
    let places: Vec<i64> = rows(&store)
        .await
        .iter()
        .filter(|r| r.chain_id == 2 && (r.chain_seq == 2 || r.chain_seq == 3))
        .map(|r| r.seq)
        .collect();
    let [second, third] = places[..] else {
        panic!("{places:?}")
    };
    sql(
        &dir,
        &format!(
            "UPDATE audit_events SET seq = -1 WHERE seq = {second}; \
             UPDATE audit_events SET seq = {second} WHERE seq = {third}; \
             UPDATE audit_events SET seq = {third} WHERE seq = -1"
        ),
    )
    .await;
    let report = chain::verify(&*store, &keyring()).await.unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.rows_checked, 12);
    assert_eq!(
        report
            .chains
            .iter()
            .map(|c| (c.chain_id, c.rows_checked, c.last_seq))
            .collect::<Vec<_>>(),
        [(1, 4, Some(4)), (2, 4, Some(4)), (3, 4, Some(4))]
    );
}

/// No index makes `(chain, chain_seq)` unique: a row copied into its chain is found.
#[tokio::test]
async fn a_row_copied_into_its_chain_is_found() {
    let dir = TestDb::new();
    let store = three_chains(&dir, 4).await;
    let columns = "chain_id, chain_seq, ts_ms, request_id, client, credential_id, user_id, ip, \
        country, server, http_method, rpc_method, tool, decision, reason, status, \
        upstream_status, latency_us, prev_hash, hash, hash_version, outcome, response_bytes, batch";
    sql(
        &dir,
        &format!(
            "INSERT INTO audit_events ({columns}) SELECT {columns} FROM audit_events \
             WHERE chain_id = 2 AND chain_seq = 2"
        ),
    )
    .await;
    let report = chain::verify(&*store, &keyring()).await.unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems_in(2), [ChainProblem::Duplicated { seq: 2 }]);
    assert_eq!(
        report.problems[0].to_string(),
        "chain 2: row 2 appears more than once"
    );

    // An edited copy is a modified row as well.
    sql(
        &dir,
        "UPDATE audit_events SET decision = 'deny' WHERE seq = (SELECT MAX(seq) FROM audit_events)",
    )
    .await;
    let report = chain::verify(&*store, &keyring()).await.unwrap();
    assert_eq!(
        report.problems_in(2),
        [
            ChainProblem::Duplicated { seq: 2 },
            ChainProblem::Modified { seq: 2 }
        ]
    );
}

/// The deciding rule (migration 0016) is part of each row's hash when present and left out
/// when absent, so rows written without one (every row before 0016) keep verifying, and adding,
/// removing or changing a row's rule afterwards is found.
#[tokio::test]
async fn the_deciding_rule_is_hashed_and_rows_without_one_still_verify() {
    let dir = TestDb::new();
    let store = open(&dir).await;
    let (sink, audit) = AuditWriter::new(
        open(&dir).await,
        keyring(),
        64,
        16,
        true,
        Duration::from_millis(1),
    );
    let stop = CancellationToken::new();
    let running = tokio::spawn(audit.run(stop.clone()));
    for n in 0..4 {
        let decided = AuditEvent {
            decision: Decision::Deny,
            reason: Some("rate_limit:burst".into()),
            status: 429,
            rule: (n % 2 == 0).then(|| "policy:burst".to_owned()),
            ..event("a", n)
        };
        sink.record(decided).await;
    }
    stop.cancel();
    running.await.unwrap();

    let written = rows(&store).await;
    assert_eq!(
        written
            .iter()
            .map(|r| r.event.rule.as_deref())
            .collect::<Vec<_>>(),
        [Some("policy:burst"), None, Some("policy:burst"), None]
    );
    let report = chain::verify(&*store, &keyring()).await.unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);

    for (edit, row) in [
        ("rule = 'policy:other'", 1),
        ("rule = NULL", 3),
        ("rule = 'policy:burst'", 2),
    ] {
        sql(
            &dir,
            &format!("UPDATE audit_events SET {edit} WHERE chain_seq = {row}"),
        )
        .await;
    }
    let report = chain::verify(&*store, &keyring()).await.unwrap();
    assert_eq!(
        report.problems_in(1),
        [
            ChainProblem::Modified { seq: 1 },
            ChainProblem::Modified { seq: 2 },
            ChainProblem::Modified { seq: 3 }
        ],
        "a rule changed, added or removed is an edit"
    );
}
