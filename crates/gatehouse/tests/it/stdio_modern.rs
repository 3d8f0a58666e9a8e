//! A stdio server's answers to 2026-07-28 requests carry that transport's HTTP statuses,
//! which a program cannot set: a removed or unknown method is 404, a request whose `_meta`
//! lacks a required field 400; the same answers in a legacy session stay 200. A result goes
//! as SSE to a client that accepts it.

use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, call, rpc_message},
    stdio::{add_stdio, child},
};

fn request(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 5, "method": method, "params": params})
}

fn meta() -> Value {
    json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}}})
}

#[tokio::test]
async fn removed_methods_are_404_and_a_tools_answer_200_in_the_modern_era() {
    let app = TestApp::start().await;
    add_stdio(&app, "local", child("shared")).await;
    let key = app.client_with_key("agent", "local", "*").await;

    // `tasks/result` and `tasks/list` left with tasks' move to an extension (SEP-2663): the
    // 2025-11-25 program still has them, so Gatehouse answers.
    for method in [
        "ping",
        "initialize",
        "logging/setLevel",
        "tasks/result",
        "tasks/list",
    ] {
        let response = app
            .post_stateless("local", Some(&key), &request(method, meta()))
            .send()
            .await
            .unwrap();
        let (status, _, message) = rpc_message(response).await;
        assert_eq!(status, 404, "{method}: {message}");
        assert_eq!(message["error"]["code"], -32601, "{method}");
        assert_eq!(message["id"], 5);
    }
    let answered = app
        .post_stateless("local", Some(&key), &call("echo"))
        .send()
        .await
        .unwrap();
    assert!(
        answered.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "a client that accepts SSE gets an SSE stream"
    );
    let (status, _, message) = rpc_message(answered).await;
    assert_eq!(
        (status, message["result"].is_object()),
        (200, true),
        "{message}"
    );

    // The same unknown method in a legacy session: 200 (404 would end the session).
    let initialize = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}});
    let opened = app
        .post("local", Some(&key), &initialize)
        .send()
        .await
        .unwrap();
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let (status, _, message) = rpc_message(
        app.post("local", Some(&key), &request("ping", json!({})))
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-06-18")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, message["error"]["code"].clone()),
        (200, json!(-32601))
    );
}

#[tokio::test]
async fn server_discover_is_answered_from_the_programs_initialize_when_it_does_not_know_it() {
    let app = TestApp::start().await;
    add_stdio(&app, "local", child("shared")).await;
    let key = app.client_with_key("agent", "local", "*").await;
    let response = app
        .post_stateless("local", Some(&key), &request("server/discover", meta()))
        .send()
        .await
        .unwrap();
    let (status, _, message) = rpc_message(response).await;
    assert_eq!(status, 200, "{message}");
    let result = &message["result"];
    assert_eq!(result["resultType"], "complete");
    assert_eq!(
        result["capabilities"]["tools"],
        json!({}),
        "the program's own"
    );
    assert!(
        result["capabilities"]["extensions"]
            .get("io.modelcontextprotocol/oauth-client-credentials")
            .is_some(),
        "and Gatehouse's extensions, as for an HTTP server"
    );
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "stdio-child"
    );
    // Only the program's own version: its results are not in the modern shapes, so a client
    // falls back to `initialize` (as for the Go SDK's stateful servers).
    assert_eq!(result["supportedVersions"], json!(["2025-11-25"]));
    assert_eq!(message["id"], 5);
}
