//! The overview's health: each upstream's circuit breaker as the answering replica sees it,
//! and the audit chains' last verification (run from the console) with its time.

use super::Browser;
use crate::admin_api::AdminApi;
use crate::helpers::{call, rpc_message};
use crate::scripted_upstream::Upstream;
use gatehouse_model::records::AdminRole;
use std::time::Duration;

#[tokio::test]
async fn console_overview_shows_each_upstreams_circuit_and_the_last_chain_verification() {
    let api = AdminApi::start_with(|config| {
        config.gateway.breaker_failures = 2;
        config.gateway.breaker_open_for = Duration::from_secs(60);
        config.gateway.upstream_timeout = Duration::from_millis(300);
    })
    .await;
    let mut browser = Browser::with(api);
    let app = &browser.api.app;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down = format!("http://{}/mcp", closed.local_addr().unwrap());
    drop(closed);
    let upstream = Upstream::start().await;
    app.add_server("down", &down).await;
    app.add_server("well", &upstream.url()).await;
    app.add_server("idle", &upstream.url()).await;
    let key_down = app.client_with_key("agent", "down", "echo").await;
    app.grant("agent", "well", "echo").await;
    for _ in 0..2 {
        let response = app
            .post("down", Some(&key_down), &call("echo"))
            .send()
            .await;
        let (status, _, _) = rpc_message(response.unwrap()).await;
        assert_eq!(status, 502, "the closed port fails the call");
    }
    let response = app
        .post("well", Some(&key_down), &call("echo"))
        .send()
        .await;
    let (status, _, body) = rpc_message(response.unwrap()).await;
    assert_eq!(status, 200, "{body}");

    browser.sign_in(AdminRole::Auditor).await;
    let overview = browser.get("/console").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    overview.assert_contains(
        r#"<a href="/console/servers/down">down</a> <span class="badge deny">down: circuit open</span>"#,
    );
    overview.assert_contains(
        r#"<a href="/console/servers/well">well</a> <span class="badge allow">healthy</span>"#,
    );
    overview.assert_contains(
        r#"<a href="/console/servers/idle">idle</a> <span class="badge">not called yet</span>"#,
    );
    overview.assert_contains("Not verified from this console since the gateway started.");

    // Verifying from the console is remembered, with its result, for the overview.
    let csrf = overview.csrf();
    let verified = browser
        .post("/console/audit/verify", &[("csrf", &csrf)])
        .await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    verified.assert_contains("The audit trail is intact");
    let overview = browser.get("/console").await;
    overview.assert_contains(r#"<span class="badge allow">intact</span> "#);
    overview.assert_contains("chain(s), verified 20");
    assert!(
        !overview.body.contains("Not verified from this console"),
        "{}",
        overview.body
    );
}
