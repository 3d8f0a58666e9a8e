//! API-key lifecycle as the gateway sees it: expiry, rotation overlap, revocation,
//! narrowing, disabled clients, both header forms, usage write-back.

use gatehouse::admin;
use std::time::Duration;

use crate::{
    helpers::{TestApp, call, rpc_message},
    scripted_upstream::Upstream,
};

async fn setup() -> (TestApp, Upstream, String) {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "*").await;
    (app, upstream, key)
}

async fn status(app: &TestApp, key: &str, tool: &str) -> u16 {
    app.post("demo", Some(key), &call(tool))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn key_accepted_as_bearer_and_as_x_api_key() {
    let (app, _, key) = setup().await;
    assert_eq!(status(&app, &key, "echo").await, 200);
    let response = app
        .http
        .post(app.mcp("demo"))
        .header("x-api-key", &key)
        .header("content-type", "application/json")
        .body(call("echo").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn expired_keys_are_refused() {
    let (app, _, _) = setup().await;
    let minted = gatehouse::identity::api_keys::mint(&app.keyring).unwrap();
    let now = gatehouse::now_ms();
    let record = gatehouse_model::records::ApiKeyRecord {
        id: minted.id.clone(),
        client: "agent".into(),
        label: String::new(),
        secret_hash: minted.secret_hash.to_vec(),
        tools: None,
        created_at: now - 120_000,
        expires_at: Some(now - 60_000),
        revoked_at: None,
        rotated_from: None,
        last_used_at: None,
    };
    app.store.insert_api_key(&record).await.unwrap();
    app.reload().await;
    let created = minted;
    let (code, _, body) = rpc_message(
        app.post("demo", Some(&created.token), &call("echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 401);
    assert_eq!(body["error"]["data"]["reason"], "expired_credential");
}

#[tokio::test]
async fn rotation_keeps_the_old_key_for_the_overlap_only() {
    let (app, _, old_key) = setup().await;
    let old_id = old_key[4..16].to_owned();
    let rotated = admin::rotate_key(
        &*app.store,
        &app.keyring,
        &old_id,
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    app.reload().await;
    assert_eq!(status(&app, &rotated.token, "echo").await, 200);
    assert_eq!(
        status(&app, &old_key, "echo").await,
        200,
        "old key valid during the overlap"
    );
    let stored = app.store.get_api_key(&old_id).await.unwrap();
    let until = stored.expires_at.unwrap();
    assert!(
        (until - gatehouse::now_ms() - 3_600_000).abs() < 60_000,
        "overlap ends in ~1h"
    );
    assert_eq!(
        rotated.record.rotated_from.as_deref(),
        Some(old_id.as_str())
    );

    // Zero overlap: the old key stops at once, the new one keeps working.
    let newer = admin::rotate_key(
        &*app.store,
        &app.keyring,
        &rotated.record.id,
        Duration::ZERO,
    )
    .await
    .unwrap();
    app.reload().await;
    assert_eq!(status(&app, &rotated.token, "echo").await, 401);
    assert_eq!(status(&app, &newer.token, "echo").await, 200);
}

#[tokio::test]
async fn revocation_takes_effect_on_the_next_request() {
    let (app, _, key) = setup().await;
    assert_eq!(status(&app, &key, "echo").await, 200);
    let generation = app
        .store
        .revoke_api_key(&key[4..16], gatehouse::now_ms())
        .await
        .unwrap();
    app.reload().await;
    assert_eq!(app.server.state.snapshot.current().generation, generation);
    assert_eq!(status(&app, &key, "echo").await, 401);
}

#[tokio::test]
async fn changes_made_elsewhere_are_picked_up_without_restart() {
    let (app, _, key) = setup().await;
    // Another process (the CLI) revokes through its own connection to the same database.
    let other = app.db().open().await;
    let generation = other
        .revoke_api_key(&key[4..16], gatehouse::now_ms())
        .await
        .unwrap();
    // The running server polls and reports the generation it applied: wait for that fact.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let replica = &app.server.replica_id;
    while !other
        .list_replicas()
        .await
        .unwrap()
        .iter()
        .any(|r| &r.replica_id == replica && r.applied_generation >= generation)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "change not applied within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status(&app, &key, "echo").await, 401);
}

#[tokio::test]
async fn disabled_clients_lose_access_and_regain_it() {
    let (app, _, key) = setup().await;
    app.store
        .set_client_disabled("agent", Some(gatehouse::now_ms()))
        .await
        .unwrap();
    app.reload().await;
    assert_eq!(status(&app, &key, "echo").await, 401);
    app.store.set_client_disabled("agent", None).await.unwrap();
    app.reload().await;
    assert_eq!(status(&app, &key, "echo").await, 200);
}

#[tokio::test]
async fn keys_can_be_narrowed_within_the_connection() {
    let (app, _, _) = setup().await;
    let narrow = app.key("agent", Some("echo")).await;
    assert_eq!(status(&app, &narrow, "echo").await, 200);
    assert_eq!(status(&app, &narrow, "add").await, 403);
}

#[tokio::test]
async fn last_used_is_written_back_in_batches() {
    let (app, _, key) = setup().await;
    assert!(
        app.store
            .get_api_key(&key[4..16])
            .await
            .unwrap()
            .last_used_at
            .is_none()
    );
    assert_eq!(status(&app, &key, "echo").await, 200);
    app.server.state.snapshot.flush_usage().await;
    let used = app
        .store
        .get_api_key(&key[4..16])
        .await
        .unwrap()
        .last_used_at
        .unwrap();
    assert!((gatehouse::now_ms() - used).abs() < 60_000);
}
