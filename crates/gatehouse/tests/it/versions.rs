//! Protocol versions Gatehouse does not know are the upstream's to negotiate; governance and
//! session ownership apply whatever the version.

use serde_json::json;

use crate::{
    helpers::{TestApp, call, rpc_message},
    scripted_upstream::Upstream,
};

#[tokio::test]
async fn an_older_version_the_upstream_negotiated_keeps_working() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let alice = app.client_with_key("alice", "demo", "echo").await;
    let mallory = app.client_with_key("mallory", "demo", "echo").await;
    let initialize = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": { "protocolVersion": "2024-10-07", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } } });
    let response = app
        .post("demo", Some(&alice), &initialize)
        .send()
        .await
        .unwrap();
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();

    let (status, _, body) = rpc_message(
        app.post("demo", Some(&alice), &call("echo"))
            .header("mcp-protocol-version", "2024-10-07")
            .header("mcp-session-id", &session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "called echo");
    let seen = upstream.received().last().unwrap().clone();
    assert_eq!(seen.headers["mcp-protocol-version"], "2024-10-07");
    assert_eq!(seen.headers["mcp-session-id"], session.as_str());

    // An unknown version does not loosen anything: the session is still checked, the grant
    // still applies.
    let stolen = app
        .post("demo", Some(&mallory), &call("echo"))
        .header("mcp-protocol-version", "2024-10-07")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), 404);
    let (_, _, refused) = rpc_message(
        app.post("demo", Some(&alice), &call("delete_records"))
            .header("mcp-protocol-version", "2099-01-01")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(refused["error"]["data"]["reason"], "tool_not_granted");
    assert_eq!(
        upstream.received().len(),
        2,
        "neither refusal reached the upstream"
    );
}

#[tokio::test]
async fn an_unknown_version_is_answered_by_the_upstream() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("alice", "demo", "*").await;
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "v999.0.0",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let discover = json!({ "jsonrpc": "2.0", "id": 301, "method": "server/discover", "params": { "_meta": meta } });
    let (status, _, body) = rpc_message(
        app.post("demo", Some(&key), &discover)
            .header("mcp-protocol-version", "v999.0.0")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        status, 200,
        "the upstream's answer, not Gatehouse's: {body}"
    );
    assert_eq!(body["id"], 301);
    let seen = upstream.received().last().unwrap().clone();
    assert_eq!(seen.headers["mcp-protocol-version"], "v999.0.0");
    assert_eq!(seen.body["method"], "server/discover");
}
