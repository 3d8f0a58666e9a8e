//! Legacy sessions are bound to the principal that opened them.

use serde_json::json;

use crate::{
    helpers::{TestApp, call},
    scripted_upstream::Upstream,
};

fn initialize() -> serde_json::Value {
    json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": { "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } } })
}

#[tokio::test]
async fn another_principal_cannot_use_a_session() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let alice = app.client_with_key("alice", "demo", "*").await;
    let mallory = app.client_with_key("mallory", "demo", "*").await;

    let response = app
        .post("demo", Some(&alice), &initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();

    let own = app
        .post("demo", Some(&alice), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);

    let stolen = app
        .post("demo", Some(&mallory), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), 404);
    let body: serde_json::Value = stolen.json().await.unwrap();
    assert_eq!(body["error"]["data"]["reason"], "session_not_found");

    let made_up = app
        .post("demo", Some(&alice), &call("echo"))
        .header("mcp-session-id", "guessed")
        .send()
        .await
        .unwrap();
    assert_eq!(made_up.status(), 404);

    // A second key of the same client keeps the session (rotation must not break clients).
    let alice_second_key = app.key("alice", None).await;
    let same_client = app
        .post("demo", Some(&alice_second_key), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(same_client.status(), 200);

    let stolen_delete = app
        .http
        .delete(app.mcp("demo"))
        .bearer_auth(&mallory)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stolen_delete.status(), 404);
    let deleted = app
        .http
        .delete(app.mcp("demo"))
        .bearer_auth(&alice)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let after = app
        .post("demo", Some(&alice), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 404, "a deleted session is gone");

    let forwarded = upstream
        .received()
        .iter()
        .filter(|r| r.headers.get("mcp-session-id").is_some())
        .count();
    assert_eq!(
        forwarded, 3,
        "only the owner's requests (2 calls and the DELETE) reached the upstream"
    );
    assert_eq!(
        upstream.received().last().unwrap().http_method,
        reqwest::Method::DELETE
    );
}

#[tokio::test]
async fn sessions_with_the_real_example_server() {
    let cancel = tokio_util::sync::CancellationToken::new();
    let example = gatehouse_example_server::ExampleServer::start(
        "127.0.0.1:0".parse().unwrap(),
        cancel.clone(),
    )
    .await
    .unwrap();
    let app = TestApp::start().await;
    app.add_server("demo", &example.mcp_url()).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    let other = app.client_with_key("other", "demo", "echo").await;
    let response = app
        .post("demo", Some(&key), &initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let notification = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    let accepted = app
        .post("demo", Some(&key), &notification)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let refused = app
        .post("demo", Some(&other), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    cancel.cancel();
}
