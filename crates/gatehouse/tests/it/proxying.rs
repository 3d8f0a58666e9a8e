//! What crosses the gateway: credentials never go upstream, the server's own credential is
//! injected, headers pass both ways, real MCP servers work end to end.

use gatehouse::admin;
use serde_json::json;

use crate::{
    helpers::{TestApp, call, list_tools, rpc_message, tool_names},
    scripted_upstream::Upstream,
};

#[tokio::test]
async fn client_credentials_never_reach_the_upstream() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server_with(admin::NewServer {
        name: "demo".into(),
        url: upstream.url(),
        credential: Some("Authorization: Bearer upstream-secret-123".into()),
        ..Default::default()
    })
    .await;
    let key = app.client_with_key("agent", "demo", "*").await;
    let bearer = app
        .post("demo", Some(&key), &call("echo"))
        .header("cookie", "session=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    let x_api_key = app
        .http
        .post(app.mcp("demo"))
        .header("x-api-key", &key)
        .header("content-type", "application/json")
        .body(call("echo").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(x_api_key.status(), 200);

    let received = upstream.received();
    assert_eq!(received.len(), 2);
    for request in received {
        let all_headers = format!("{:?}", request.headers);
        assert!(
            !all_headers.contains(&key[17..]),
            "client key leaked upstream: {all_headers}"
        );
        assert!(request.headers.get("x-api-key").is_none());
        assert!(request.headers.get("cookie").is_none());
        assert_eq!(
            request.headers["authorization"],
            "Bearer upstream-secret-123"
        );
    }
    // And the stored form is sealed: the plaintext is not in the database.
    let db = app.db();
    if db.url.starts_with("sqlite:") {
        let file = std::fs::read(app.dir.path().join("gatehouse.db")).unwrap();
        assert!(!file.windows(18).any(|w| w == b"upstream-secret-12"));
    } else {
        let clear = db
            .execute(
                "UPDATE servers SET url = url WHERE \
                 position($1 IN encode(credential_sealed, 'escape')) > 0 OR position($1 IN url) > 0",
                &["upstream-secret-12".into()],
            )
            .await;
        assert_eq!(clear, 0, "a stored server holds the credential in clear");
    }
}

#[tokio::test]
async fn custom_headers_pass_both_ways() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "*").await;
    let response = app
        .post("demo", Some(&key), &call("echo"))
        .header("x-probe-unknown", "1")
        .header("mcp-param-region", "eu")
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-upstream-custom"], "kept");
    assert!(response.headers().get("x-request-id").is_some());
    let seen = &upstream.received()[0];
    assert_eq!(seen.headers["x-probe-unknown"], "1");
    assert_eq!(seen.headers["mcp-param-region"], "eu");
    assert_eq!(seen.headers["mcp-protocol-version"], "2025-11-25");
    assert_eq!(seen.body, call("echo"), "the body is forwarded as sent");
}

#[tokio::test]
async fn families_are_granted_per_connection() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    // The helper grants resources but not prompts.
    let key = app.client_with_key("agent", "demo", "echo").await;
    let read = json!({ "jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": { "uri": "test://x" } });
    assert_eq!(
        app.post("demo", Some(&key), &read)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let prompt =
        json!({ "jsonrpc": "2.0", "id": 1, "method": "prompts/get", "params": { "name": "p" } });
    let (status, _, body) =
        rpc_message(app.post("demo", Some(&key), &prompt).send().await.unwrap()).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["data"]["reason"], "method_not_granted");
    // Notifications and the client's answers to server requests pass.
    let answer = json!({ "jsonrpc": "2.0", "id": "srv-1", "result": { "action": "accept" } });
    assert_eq!(
        app.post("demo", Some(&key), &answer)
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
}

#[tokio::test]
async fn batches_are_judged_element_by_element() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    let batch = json!([call("echo"), call("delete_records")]);
    let (status, _, body) =
        rpc_message(app.post("demo", Some(&key), &batch).send().await.unwrap()).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["data"]["tool"], "delete_records");
    assert!(
        upstream.received().is_empty(),
        "nothing of a refused batch is forwarded"
    );
}

#[tokio::test]
async fn tools_through_the_real_example_server() {
    let cancel = tokio_util::sync::CancellationToken::new();
    let example = gatehouse_example_server::ExampleServer::start(
        "127.0.0.1:0".parse().unwrap(),
        cancel.clone(),
    )
    .await
    .unwrap();
    let app = TestApp::start().await;
    app.add_server("demo", &example.mcp_url()).await;
    let key = app
        .client_with_key("agent", "demo", "echo,add,current_time")
        .await;
    let meta = json!({ "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} });
    let stateless = |method: &str, params: serde_json::Value| {
        let mut params = params;
        params["_meta"] = meta.clone();
        app.post(
            "demo",
            Some(&key),
            &json!({ "jsonrpc": "2.0", "id": 5, "method": method, "params": params }),
        )
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
    };
    let (status, _, message) =
        rpc_message(stateless("tools/list", json!({})).send().await.unwrap()).await;
    assert_eq!(status, 200, "{message}");
    let mut names = tool_names(&message);
    names.sort();
    assert_eq!(
        names,
        ["add", "current_time", "echo"],
        "delete_records is filtered out"
    );
    let (status, _, message) = rpc_message(
        stateless(
            "tools/call",
            json!({ "name": "echo", "arguments": { "text": "through the gate" } }),
        )
        .header("mcp-name", "echo")
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(message["result"]["content"][0]["text"], "through the gate");
    let (status, _, _) = rpc_message(
        app.post("demo", Some(&key), &list_tools())
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "Mcp-Method must match the body");
    cancel.cancel();
}

/// An upstream that answers `tools/call` only when told to, and says when a call arrived.
async fn held_upstream() -> (
    String,
    tokio::sync::oneshot::Receiver<()>,
    tokio::sync::oneshot::Sender<()>,
) {
    use std::sync::{Arc, Mutex};
    let (arrived_tx, arrived) = tokio::sync::oneshot::channel::<()>();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let slots = Arc::new(Mutex::new((Some(arrived_tx), Some(released))));
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move || {
            let slots = slots.clone();
            async move {
                let (arrived, released) = {
                    let mut slots = slots.lock().unwrap();
                    (slots.0.take(), slots.1.take())
                };
                if let Some(arrived) = arrived {
                    arrived.send(()).unwrap();
                }
                if let Some(released) = released {
                    released.await.unwrap();
                }
                axum::Json(json!({ "jsonrpc": "2.0", "id": 1, "result": { "content": [] } }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, arrived, release)
}

#[tokio::test]
async fn shutting_down_lets_the_request_in_flight_finish() {
    let (url, arrived, release) = held_upstream().await;
    let app = TestApp::start().await;
    app.add_server("demo", &url).await;
    let key = app.client_with_key("agent", "demo", "*").await;
    let in_flight = tokio::spawn(app.post("demo", Some(&key), &call("echo")).send());
    arrived.await.unwrap();
    // `join!` polls in order: the shutdown has begun (stopped accepting, asked connections
    // to close) before the upstream is released.
    let (_, response) = tokio::join!(app.server.shutdown(), async move {
        release.send(()).unwrap();
        in_flight.await.unwrap()
    });
    let response = response.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["result"]["content"], json!([]));
}

#[tokio::test]
async fn a_stateless_request_without_its_routing_headers_is_refused_like_a_mismatch() {
    let upstream = crate::scripted_upstream::Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    let (status, _, missing_method) = rpc_message(
        app.post("demo", Some(&key), &call("echo"))
            .header("mcp-protocol-version", "2026-07-28")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{missing_method}");
    assert_eq!(missing_method["error"]["code"], -32020);
    assert_eq!(missing_method["error"]["data"]["header"], "Mcp-Method");
    insta::assert_json_snapshot!("header_missing", missing_method);
    let (status, _, missing_name) = rpc_message(
        app.post("demo", Some(&key), &call("echo"))
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{missing_name}");
    assert_eq!(missing_name["error"]["data"]["reason"], "header_missing");
    assert_eq!(missing_name["error"]["data"]["header"], "Mcp-Name");
    assert!(
        upstream.received().is_empty(),
        "nothing reached the upstream"
    );
    // The same request with its headers goes through; an earlier era needs none.
    let (status, _, _) = rpc_message(
        app.post_stateless("demo", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = rpc_message(
        app.post("demo", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
}
