//! `database export` / `database import`: a deployment moves from SQLite to PostgreSQL with its keys, secrets,
//! records and audit trail; every chain verifies after the move and keys minted before it
//! still authenticate.

use crate::helpers::*;
use crate::scripted_upstream::Upstream;
use gatehouse::{
    audit::{chain, checkpoint::KeyedCheckpoint, registry::KeyedChainStart},
    store::{self, Backend, transfer},
};
use gatehouse_model::audit::{AuditEvent, AuditRow, ChainStart, Checkpoint, Decision};
use std::sync::Arc;

fn event(n: i64) -> AuditEvent {
    AuditEvent {
        ts_ms: 1_700_000_000_000 + n,
        request_id: format!("before-chains-{n}"),
        client: Some("agent".into()),
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
        latency_us: 7,
        outcome: None,
        response_bytes: Some(12),
        batch: Vec::new(),
        operator: None,
        rule: None,
    }
}

/// Rows in chain 0 (as a trail from before chains leaves them), written before any writer
/// opens a chain, so chain 1's registry entry links to their head.
async fn chain_0(dir: &std::path::Path) {
    let keyring = gatehouse::secrets::Keyring::load_or_create(dir).unwrap();
    let store = store::open(&format!("sqlite://{}/gatehouse.db", dir.display()))
        .await
        .unwrap();
    let mut prev = chain::GENESIS.to_owned();
    let mut rows = Vec::new();
    for n in 1..=3 {
        let hash = chain::link(&keyring, 0, &prev, n, &event(n));
        rows.push(AuditRow {
            seq: n,
            chain_id: 0,
            chain_seq: n,
            event: event(n),
            hash_version: chain::HASH_VERSION,
            prev_hash: std::mem::replace(&mut prev, hash.clone()),
            hash,
        });
    }
    let checkpoint = Checkpoint::sign(&keyring, 0, 3, &prev, 1);
    store
        .append_audit(Arc::new(rows), checkpoint, None)
        .await
        .unwrap();
}

async fn export(store: &dyn store::Store, backend: Backend) -> Vec<String> {
    let mut out = Vec::new();
    transfer::export(store, backend, &mut out).await.unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn echo(app: &TestApp, key: &str) -> u16 {
    app.post("demo", Some(key), &call("echo"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_sqlite_deployment_moves_to_postgres_with_its_keys_and_every_chain() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    chain_0(dir.path()).await;
    // The source is SQLite whatever backend the suite runs on.
    let source = TestApp::start_on(dir, |c| c.database_url = None).await;
    source.add_server("demo", &upstream.url()).await;
    let key = source.client_with_key("agent", "demo", "echo").await;
    assert_eq!(echo(&source, &key).await, 200);
    // Each start writes a chain of its own: chains 1, 2 and 3.
    let source = source.restart().await;
    assert_eq!(echo(&source, &key).await, 200);
    let source = source.restart().await;
    assert_eq!(echo(&source, &key).await, 200);
    source.audit().await;
    let TestApp {
        server,
        store: source_store,
        keyring,
        dir,
        ..
    } = source;
    server.shutdown().await;
    let before = chain::verify(&*source_store, &keyring).await.unwrap();
    assert!(before.is_intact(), "{:?}", before.problems);
    let chain_ids: Vec<i64> = before.chains.iter().map(|c| c.chain_id).collect();
    assert_eq!(chain_ids, [0, 1, 2, 3]);
    let exported = export(&*source_store, Backend::Sqlite).await;

    let url = postgres_database();
    let destination = store::open(&url).await.unwrap();
    let file = exported.join("\n") + "\n";
    let counts = transfer::import(&*destination, Box::new(std::io::Cursor::new(file)))
        .await
        .unwrap();
    assert_eq!(
        counts["audit_events"].as_u64(),
        Some(before.rows_checked),
        "{counts:?}"
    );
    let after = chain::verify(&*destination, &keyring).await.unwrap();
    assert!(after.is_intact(), "{:?}", after.problems);
    assert_eq!(after.rows_checked, before.rows_checked);
    assert_eq!(after.chains.len(), 4);

    // Row for row the same, but for the header (source, time) and the generation, moved
    // above the source's.
    let again = export(&*destination, Backend::Postgres).await;
    assert_eq!(again.len(), exported.len());
    let generation = |lines: &[String]| -> i64 {
        let line = lines
            .iter()
            .find(|l| l.contains(r#""key":"generation""#))
            .unwrap();
        serde_json::from_str::<serde_json::Value>(line).unwrap()["r"]["value"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(generation(&again), generation(&exported) + 1);
    let differing: Vec<(&String, &String)> = exported
        .iter()
        .zip(&again)
        .skip(1)
        .filter(|(a, b)| a != b && !a.contains(r#""key":"generation""#))
        .collect();
    assert!(differing.is_empty(), "{differing:#?}");

    // The next append (opening chain 4) is numbered after the imported rows at once.
    let newest = destination.audit_chains().await.unwrap().pop().unwrap();
    let start = ChainStart::new(&keyring, 4, &newest.hash, 1, "after the move");
    let hash = chain::link(&keyring, 4, &start.hash, 1, &event(4));
    let row = AuditRow {
        seq: 0,
        chain_id: 4,
        chain_seq: 1,
        event: event(4),
        hash_version: chain::HASH_VERSION,
        prev_hash: start.hash.clone(),
        hash: hash.clone(),
    };
    let checkpoint = Checkpoint::sign(&keyring, 4, 1, &hash, 1);
    destination
        .append_audit(Arc::new(vec![row]), checkpoint, Some(start))
        .await
        .expect("the first append after an import takes a seq no imported row has");
    let rows = destination.audit_page(0, 1_000).await.unwrap();
    assert_eq!(
        rows.last().unwrap().seq,
        i64::try_from(before.rows_checked).unwrap() + 1
    );

    // A server on the moved store with the same master key: the old key works, and its
    // writer opens chain 5 after the newest registry entry.
    let moved = TestApp::start_on(dir, |c| c.database_url = Some(url)).await;
    assert_eq!(echo(&moved, &key).await, 200);
    moved.audit().await;
    let report = chain::verify(&*moved.store, &moved.keyring).await.unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.chains.len(), 6);
    let rows = moved.store.audit_page(0, 1_000).await.unwrap();
    let last = rows.last().unwrap();
    assert_eq!((last.chain_id, last.chain_seq), (5, 1));
}

#[tokio::test]
async fn a_truncated_export_or_a_used_destination_is_refused_and_nothing_is_written() {
    let source = TestDb::new();
    let store = source.open().await;
    gatehouse::admin::create_client(&*store, "agent", "")
        .await
        .unwrap();
    let lines = export(&*store, Backend::Sqlite).await;

    let destination = store::open(&postgres_database()).await.unwrap();
    let without_end = lines[..lines.len() - 1].join("\n");
    let err = transfer::import(&*destination, Box::new(std::io::Cursor::new(without_end)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no end line"), "{err}");
    let mut missing_row = lines.clone();
    let client = missing_row
        .iter()
        .position(|l| l.contains(r#""t":"clients""#))
        .unwrap();
    missing_row.remove(client);
    let err = transfer::import(
        &*destination,
        Box::new(std::io::Cursor::new(missing_row.join("\n"))),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("counts"), "{err}");
    assert!(destination.list_clients().await.unwrap().is_empty());
    assert_eq!(
        destination.generation().await.unwrap(),
        1,
        "nothing written"
    );

    let file = lines.join("\n");
    transfer::import(&*destination, Box::new(std::io::Cursor::new(file.clone())))
        .await
        .unwrap();
    let generation = destination.generation().await.unwrap();
    let err = transfer::import(&*destination, Box::new(std::io::Cursor::new(file)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already holds"), "{err}");
    assert_eq!(destination.generation().await.unwrap(), generation);
    assert_eq!(destination.list_clients().await.unwrap().len(), 1);
}
