//! One audit event per request, hash-chained; tampering is found and located.

use crate::{
    helpers::{TestApp, call},
    scripted_upstream::Upstream,
};
use gatehouse::audit::chain::{self, ChainProblem, VerifyReport};

/// The problems found, all of them in chain 1 (the first writer's, in a new database).
fn in_chain_1(report: &VerifyReport) -> Vec<ChainProblem> {
    assert!(
        report.problems.iter().all(|found| found.chain_id == 1),
        "{:?}",
        report.problems
    );
    report.problems_in(1)
}

#[tokio::test]
async fn every_request_is_audited_with_who_what_and_why() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    app.post("demo", Some(&key), &call("echo"))
        .send()
        .await
        .unwrap();
    app.post("demo", Some(&key), &call("delete_records"))
        .send()
        .await
        .unwrap();
    app.post("demo", None, &call("echo")).send().await.unwrap();

    let rows = app.audit().await;
    assert_eq!(rows.len(), 3);
    let e = &rows[0].event;
    assert_eq!(
        (e.client.as_deref(), e.credential_id.as_deref()),
        (Some("agent"), Some(&key[4..16]))
    );
    assert_eq!(
        (
            e.server.as_deref(),
            e.rpc_method.as_deref(),
            e.tool.as_deref()
        ),
        (Some("demo"), Some("tools/call"), Some("echo"))
    );
    assert_eq!(
        (e.decision.as_str(), e.status, e.upstream_status),
        ("allow", 200, Some(200))
    );
    assert_eq!(e.ip.as_deref(), Some("127.0.0.1"));
    let denied = &rows[1].event;
    assert_eq!(
        (
            denied.decision.as_str(),
            denied.reason.as_deref(),
            denied.tool.as_deref()
        ),
        ("deny", Some("tool_not_granted"), Some("delete_records"))
    );
    assert_eq!(denied.upstream_status, None);
    assert_eq!(rows[2].event.reason.as_deref(), Some("missing_credential"));
    for row in &rows {
        let text = serde_json::to_string(row).unwrap();
        assert!(!text.contains(&key[17..]), "no secret in the audit trail");
    }
    assert!(
        chain::verify(&*app.store, &app.keyring)
            .await
            .unwrap()
            .is_intact()
    );
}

#[tokio::test]
async fn edited_and_deleted_rows_are_detected() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    for _ in 0..5 {
        // Durable mode: once the whole answer is read, its event is committed.
        app.post("demo", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    assert_eq!(
        chain::verify(&*app.store, &app.keyring)
            .await
            .unwrap()
            .rows_checked,
        5
    );

    let db = app.db();
    db.execute(
        "UPDATE audit_events SET decision = 'deny' WHERE seq = 2",
        &[],
    )
    .await;
    let report = chain::verify(&*app.store, &app.keyring).await.unwrap();
    assert_eq!(in_chain_1(&report), vec![ChainProblem::Modified { seq: 2 }]);

    db.execute("DELETE FROM audit_events WHERE seq = 4", &[])
        .await;
    let report = chain::verify(&*app.store, &app.keyring).await.unwrap();
    let problems = in_chain_1(&report);
    assert!(
        problems.contains(&ChainProblem::Missing {
            after_seq: 3,
            next_seq: 5
        }),
        "{problems:?}"
    );
    assert!(problems.contains(&ChainProblem::BrokenLink { seq: 5 }));

    // Recomputing plain hashes does not help without the master key.
    let other_keyring = gatehouse::secrets::Keyring::from_master(&[9; 32]);
    assert!(
        !chain::verify(&*app.store, &other_keyring)
            .await
            .unwrap()
            .is_intact()
    );
}

#[tokio::test]
async fn deleting_the_newest_rows_is_detected_and_a_restart_does_not_write_over_them() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    for _ in 0..5 {
        app.post("demo", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(app.audit().await.len(), 5);
    let exported = app.store.audit_checkpoint(1).await.unwrap().unwrap();
    assert_eq!((exported.chain_id, exported.seq), (1, 5));

    app.db()
        .execute("DELETE FROM audit_events WHERE chain_seq > 3", &[])
        .await;
    let report = chain::verify(&*app.store, &app.keyring).await.unwrap();
    assert_eq!(
        in_chain_1(&report),
        vec![ChainProblem::Truncated {
            last_seq: 3,
            checkpoint_seq: 5
        }]
    );

    // After a restart the process writes a chain of its own: the first one keeps its gap.
    let app = app.restart().await;
    app.post("demo", Some(&key), &call("echo"))
        .send()
        .await
        .unwrap();
    let rows = app.audit().await;
    let places: Vec<(i64, i64)> = rows.iter().map(|r| (r.chain_id, r.chain_seq)).collect();
    assert_eq!(places, [(1, 1), (1, 2), (1, 3), (2, 1)]);
    let report = chain::verify(&*app.store, &app.keyring).await.unwrap();
    assert_eq!(
        in_chain_1(&report),
        vec![ChainProblem::Truncated {
            last_seq: 3,
            checkpoint_seq: 5
        }]
    );

    // Deleting the stored checkpoints too is found, and an exported one still tells.
    let db = app.db();
    db.execute(
        "DELETE FROM audit_events WHERE chain_seq > 3 OR chain_id = 2",
        &[],
    )
    .await;
    db.execute("DELETE FROM audit_chain_checkpoints", &[]).await;
    let report = chain::verify_with(&*app.store, &app.keyring, &[exported])
        .await
        .unwrap();
    assert_eq!(
        report.problems_in(1),
        vec![
            ChainProblem::Truncated {
                last_seq: 3,
                checkpoint_seq: 5
            },
            ChainProblem::CheckpointMissing
        ]
    );
    // Chain 2 is registered: it was opened with rows, so an empty one was emptied.
    assert_eq!(report.problems_in(2), vec![ChainProblem::CheckpointMissing]);
}

#[tokio::test]
async fn a_checkpoint_put_back_or_edited_is_detected() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    app.post("demo", Some(&key), &call("echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(app.audit().await.len(), 1);
    let older = app.store.audit_checkpoint(1).await.unwrap().unwrap();
    // Read to the end: a response ends only once its event is committed.
    app.post("demo", Some(&key), &call("echo"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        chain::verify(&*app.store, &app.keyring)
            .await
            .unwrap()
            .is_intact()
    );

    let db = app.db();
    db.execute(
        "UPDATE audit_chain_checkpoints SET seq = $1, hash = $2, ts_ms = $3, mac = $4",
        &[
            older.seq.into(),
            older.hash.clone().into(),
            older.ts_ms.into(),
            older.mac.clone().into(),
        ],
    )
    .await;
    let report = chain::verify(&*app.store, &app.keyring).await.unwrap();
    assert_eq!(
        in_chain_1(&report),
        vec![ChainProblem::CheckpointBehind {
            checkpoint_seq: 1,
            last_seq: 2
        }]
    );

    db.execute("UPDATE audit_chain_checkpoints SET seq = 7", &[])
        .await;
    let report = chain::verify(&*app.store, &app.keyring).await.unwrap();
    let problems = in_chain_1(&report);
    assert!(
        problems.contains(&ChainProblem::CheckpointForged { seq: 7 }),
        "{problems:?}"
    );
}

#[tokio::test]
async fn refused_keys_are_recorded_with_their_id_and_client() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let revoked = app.client_with_key("agent", "demo", "echo").await;
    let expired = app.key("agent", None).await;
    gatehouse::admin::create_client(&*app.store, "other", "")
        .await
        .unwrap();
    app.grant("other", "demo", "echo").await;
    let disabled = app.key("other", None).await;
    let id = |key: &str| key[4..16].to_owned();

    app.store
        .revoke_api_key(&id(&revoked), gatehouse::now_ms())
        .await
        .unwrap();
    app.db()
        .execute(
            "UPDATE api_keys SET expires_at = 1 WHERE id = $1",
            &[id(&expired).into()],
        )
        .await;
    app.store
        .set_client_disabled("other", Some(gatehouse::now_ms()))
        .await
        .unwrap();
    app.reload().await;
    // A made-up secret for a real id names nobody.
    let body = format!("gth_{}_{}", id(&revoked), "x".repeat(43));
    let forged = format!("{body}{}", gatehouse::tokens::api_key::checksum(&body));

    for key in [&revoked, &expired, &disabled, &forged] {
        let response = app
            .post("demo", Some(key), &call("echo"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let recorded: Vec<(Option<String>, Option<String>, Option<String>)> = app
        .audit()
        .await
        .into_iter()
        .map(|r| (r.event.client, r.event.credential_id, r.event.reason))
        .collect();
    let named = |client: &str, key: &str, reason: &str| {
        (
            Some(client.to_owned()),
            Some(id(key)),
            Some(reason.to_owned()),
        )
    };
    assert_eq!(
        recorded,
        [
            named("agent", &revoked, "invalid_credential"),
            named("agent", &expired, "expired_credential"),
            named("other", &disabled, "invalid_credential"),
            (None, None, Some("invalid_credential".to_owned())),
        ]
    );
}

#[tokio::test]
async fn every_message_of_a_batch_is_recorded() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "*").await;
    let batch = serde_json::json!([
        { "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "echo", "arguments": {} } },
        { "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": { "name": "delete_records", "arguments": {} } },
        { "jsonrpc": "2.0", "method": "notifications/progress", "params": { "progressToken": 1, "progress": 1 } },
    ]);
    app.post("demo", Some(&key), &batch).send().await.unwrap();
    let rows = app.audit().await;
    let batch: Vec<(String, Option<String>)> = rows[0]
        .event
        .batch
        .iter()
        .map(|m| (m.method.clone(), m.tool.clone()))
        .collect();
    assert_eq!(
        batch,
        [
            ("tools/call".to_owned(), Some("echo".to_owned())),
            ("tools/call".to_owned(), Some("delete_records".to_owned())),
            ("notifications/progress".to_owned(), None),
        ]
    );
    assert_eq!(rows[0].event.rpc_method.as_deref(), Some("batch[3]"));
    assert!(
        chain::verify(&*app.store, &app.keyring)
            .await
            .unwrap()
            .is_intact()
    );
}

#[test]
fn the_trail_is_durable_unless_configured_otherwise() {
    assert!(gatehouse::Config::default().audit.durable);
}
