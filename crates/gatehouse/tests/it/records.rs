//! A stored record the server cannot compile denies its own scope, is reported, and blocks
//! nothing else: not other clients, not revocations, not the next start.

use gatehouse_model::{
    pin_action::PinAction,
    records::{ConnectionRecord, PolicyRecord, ServerRecord},
};
use serde_json::json;

use crate::{
    helpers::{TestApp, call, rpc_message},
    scripted_upstream::Upstream,
};

/// A `country` policy on `client`, stored as an older CLI (or one with a GeoIP database in its
/// configuration) could: this server has no database to run it.
async fn store_country_policy(app: &TestApp, client: Option<&str>) {
    app.store
        .insert_policy(&PolicyRecord {
            id: "europe".into(),
            kind: "country".into(),
            client: client.map(Into::into),
            server: None,
            tools: None,
            spec: json!({ "allow": ["FR"] }),
            created_at: 0,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_policy_the_server_cannot_compile_denies_its_scope_and_blocks_nothing_else() {
    let upstream = Upstream::start().await;
    let app = TestApp::start_with(|c| c.admin_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    app.add_server("demo", &upstream.url()).await;
    let agent = app.client_with_key("agent", "demo", "*").await;
    let other = app.client_with_key("other", "demo", "*").await;

    store_country_policy(&app, Some("agent")).await;
    app.reload().await;
    let (status, body) = echo(&app, "demo", &agent).await;
    assert_eq!(status, 503, "{body}");
    insta::assert_json_snapshot!("rule_unavailable", body);
    let status = echo_status(&app, "demo", &other).await;
    assert_eq!(status, 200, "another client is not affected");

    // Later changes still apply: a revocation takes effect.
    let key_id = app.store.list_api_keys(Some("other")).await.unwrap()[0]
        .id
        .clone();
    app.store
        .revoke_api_key(&key_id, gatehouse::now_ms())
        .await
        .unwrap();
    app.reload().await;
    let status = echo_status(&app, "demo", &other).await;
    assert_eq!(status, 401, "the revocation was applied");

    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let text = ready.text().await.unwrap();
    assert!(text.contains("policy \"europe\""), "{text}");
    assert!(
        !text.contains("geoip"),
        "reasons stay out of the public page: {text}"
    );
    let admin = app.server.admin_addr.unwrap();
    let metrics = app
        .http
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("gatehouse_config_record_errors 1"),
        "{metrics}"
    );

    // And the next start neither fails nor forgets the rule.
    let app = app.restart().await;
    let report = app.server.state.snapshot.report();
    assert_eq!(report.issues.len(), 1, "{report:?}");
    assert!(report.issues[0].reason.contains("policy.geoip_database"));
    let status = echo_status(&app, "demo", &agent).await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn a_global_rule_that_cannot_compile_denies_everything() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "*").await;
    store_country_policy(&app, None).await;
    app.reload().await;
    let (status, body) = echo(&app, "demo", &key).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["data"]["reason"], "rule_unavailable");
    let audit = app.audit().await;
    let last = audit.last().unwrap();
    assert_eq!(
        last.event.reason.as_deref(),
        Some("rule_unavailable:europe")
    );
}

#[tokio::test]
async fn a_server_row_that_cannot_compile_answers_503_not_404() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "*").await;
    app.store
        .insert_server(&ServerRecord {
            name: "broken".into(),
            url: "not a url".into(),
            credential_header: None,
            credential_sealed: None,
            upstream_auth: Default::default(),
            allow_anonymous: false,
            allow_unknown_methods: false,
            pin_action: PinAction::Block,
            created_at: 0,
            stdio: None,
            members: Vec::new(),
        })
        .await
        .unwrap();
    app.reload().await;
    let (status, body) = echo(&app, "broken", &key).await;
    assert_eq!(status, 503, "{body}");
    insta::assert_json_snapshot!("server_unavailable", body);
    let status = echo_status(&app, "demo", &key).await;
    assert_eq!(status, 200);
    let (status, _) = echo(&app, "nowhere", &key).await;
    assert_eq!(status, 404, "an unknown server is still unknown");
}

/// A pin action this version does not know (written by a newer one, or by hand) reads as
/// `block`, the strictest, instead of failing the whole load.
#[tokio::test]
async fn an_unknown_stored_pin_action_reads_as_block() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let db = app.db();
    for (stored, read) in [("off", PinAction::Off), ("quarantine", PinAction::Block)] {
        db.execute(
            "UPDATE servers SET pin_action = $1 WHERE name = 'demo'",
            &[stored.into()],
        )
        .await;
        let server = app.store.get_server("demo").await.unwrap();
        assert_eq!(server.pin_action, read, "stored {stored:?}");
        let contents = app.store.load_contents().await.unwrap();
        assert_eq!(contents.servers[0].pin_action, read, "stored {stored:?}");
    }
}

#[tokio::test]
async fn a_connection_with_a_bad_pattern_is_left_out_and_the_rest_applies() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    app.add_server("other", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "*").await;
    app.grant("agent", "other", "*").await;
    app.store
        .upsert_connection(&ConnectionRecord {
            client: "agent".into(),
            server: "demo".into(),
            tools: vec!["echo[0-9]".into()],
            resources: false,
            prompts: false,
            created_at: 0,
        })
        .await
        .unwrap();
    app.reload().await;
    let (status, body) = echo(&app, "demo", &key).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["data"]["reason"], "no_connection");
    let status = echo_status(&app, "other", &key).await;
    assert_eq!(status, 200);
    let report = app.server.state.snapshot.report();
    assert_eq!(report.issues[0].record, "connection");
}

#[tokio::test]
async fn the_reload_report_reaches_the_store_for_the_cli() {
    let upstream = Upstream::start().await;
    let app =
        TestApp::start_with(|c| c.snapshot.poll_interval = std::time::Duration::from_millis(20))
            .await;
    app.add_server("demo", &upstream.url()).await;
    store_country_policy(&app, None).await;
    let generation = app.store.generation().await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let report = app.store.reload_report().await.unwrap();
        if let Some(report) = report.filter(|r| r.generation >= generation) {
            assert_eq!(report.issues.len(), 1, "{report:?}");
            assert_eq!(report.issues[0].id, "europe");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server did not record its reload report"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn rows_whose_json_is_unreadable_deny_their_scope_and_the_rest_loads() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let agent = app.client_with_key("agent", "demo", "*").await;
    let other = app.client_with_key("other", "demo", "*").await;
    app.policy(
        "slow",
        "rate_limit",
        json!({ "requests": 100, "period": "1s" }),
        (Some("agent"), None, None),
    )
    .await;
    // Damage the stored JSON the way a bad manual edit or a broken disk would.
    let db = app.db();
    db.execute(
        "UPDATE policies SET spec = '{not json' WHERE id = 'slow'",
        &[],
    )
    .await;
    db.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'generation'",
        &[],
    )
    .await;
    app.reload().await;
    let (status, body) = echo(&app, "demo", &agent).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["data"]["rule"], "slow");
    let status = echo_status(&app, "demo", &other).await;
    assert_eq!(status, 200);
    let report = app.server.state.snapshot.report();
    assert!(report.issues[0].reason.contains("not JSON"), "{report:?}");
}

/// Calls the `echo` tool on `server` with `key`: the status and the JSON-RPC message.
async fn echo(app: &TestApp, server: &str, key: &str) -> (u16, serde_json::Value) {
    let (status, _, body) = rpc_message(
        app.post(server, Some(key), &call("echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    (status, body)
}

/// Calls the `echo` tool on `server` with `key`: the status only (the body is not read).
async fn echo_status(app: &TestApp, server: &str, key: &str) -> u16 {
    app.post(server, Some(key), &call("echo"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
