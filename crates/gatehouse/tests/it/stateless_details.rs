//! What the 2026-07-28 revision asks of an intermediary, through the gateway: filtered lists
//! private to their caller, `server/discover` naming Gatehouse's extensions, multi-round-trip
//! requests passed through untouched yet under the guardrails.

use axum::{Router, body::Bytes, extract::State, routing::post};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

use crate::helpers::{TestApp, rpc_message};

/// An upstream speaking 2026-07-28: list results with cache hints, a discover result with an
/// extension of its own, and a `tools/call` that asks for input until the retry carries it.
#[derive(Clone, Default)]
struct ModernUpstream {
    received: Arc<Mutex<Vec<Value>>>,
}

async fn answer(State(upstream): State<ModernUpstream>, body: Bytes) -> axum::Json<Value> {
    let request: Value = serde_json::from_slice(&body).unwrap();
    upstream.received.lock().unwrap().push(request.clone());
    let result = match request["method"].as_str().unwrap_or("") {
        "server/discover" => json!({
            "supportedVersions": ["2026-07-28"],
            "capabilities": { "tools": {}, "extensions": { "io.modelcontextprotocol/tasks": {} } },
            "ttlMs": 60000, "cacheScope": "public",
        }),
        "tools/list" => json!({
            "tools": [
                { "name": "echo", "inputSchema": { "type": "object" } },
                { "name": "delete_records", "inputSchema": { "type": "object" } },
            ],
            "ttlMs": 3_600_000, "cacheScope": "public",
        }),
        "tools/call" if request["params"].get("inputResponses").is_some() => json!({
            "resultType": "complete",
            "content": [{ "type": "text", "text": "confirmed" }],
        }),
        "tools/call" => json!({
            "resultType": "input_required",
            "inputRequests": {
                "confirm": { "method": "elicitation/create", "params": {
                    "mode": "form",
                    // The server's own words: a question naming CARD shows one.
                    "message": request["params"]["arguments"]["question"].as_str().unwrap_or("")
                        .replace("CARD", "4111 1111 1111 1111"),
                    "requestedSchema": { "type": "object", "properties": {} } } }
            },
            "requestState": "opaque-state-1",
        }),
        _ => json!({}),
    };
    axum::Json(json!({ "jsonrpc": "2.0", "id": request["id"].clone(), "result": result }))
}

async fn setup(tools: &str) -> (TestApp, ModernUpstream, String) {
    let upstream = ModernUpstream::default();
    let router = Router::new()
        .route("/mcp", post(answer))
        .with_state(upstream.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let app = TestApp::start().await;
    app.add_server("demo", &url).await;
    let key = app.client_with_key("agent", "demo", tools).await;
    (app, upstream, key)
}

fn request(id: u64, method: &str, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
}

async fn send(app: &TestApp, key: &str, body: &Value) -> Value {
    let (status, _, message) = rpc_message(
        app.post_stateless("demo", Some(key), body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{message}");
    message
}

#[tokio::test]
async fn a_filtered_list_is_private_and_lives_no_longer_than_the_snapshot() {
    let (app, _upstream, key) = setup("echo").await;
    let list = send(&app, &key, &request(1, "tools/list", json!({}))).await;
    assert_eq!(list["result"]["tools"].as_array().unwrap().len(), 1);
    assert_eq!(
        list["result"]["cacheScope"], "private",
        "the list varies per principal: {list}"
    );
    let poll = u64::try_from(app.server.state.config.snapshot.poll_interval.as_millis()).unwrap();
    assert_eq!(list["result"]["ttlMs"], poll, "{list}");

    // A caller who sees every tool gets the upstream's list and its hints as they are.
    let everything = app.client_with_key("agent-all", "demo", "*").await;
    let full = send(&app, &everything, &request(2, "tools/list", json!({}))).await;
    assert_eq!(full["result"]["tools"].as_array().unwrap().len(), 2);
    assert_eq!(full["result"]["cacheScope"], "public");
    assert_eq!(full["result"]["ttlMs"], 3_600_000);
}

#[tokio::test]
async fn discovery_names_the_extensions_gatehouse_implements() {
    let (app, _upstream, key) = setup("echo").await;
    let discover = send(&app, &key, &request(1, "server/discover", json!({}))).await;
    let extensions = &discover["result"]["capabilities"]["extensions"];
    assert!(
        extensions
            .get("io.modelcontextprotocol/oauth-client-credentials")
            .is_some(),
        "{discover}"
    );
    assert!(
        extensions.get("io.modelcontextprotocol/tasks").is_some(),
        "the upstream's own are kept: {discover}"
    );
}

#[tokio::test]
async fn a_multi_round_trip_request_passes_untouched_under_the_guardrails() {
    let (app, upstream, key) = setup("echo").await;
    let ask = request(
        1,
        "tools/call",
        json!({ "name": "echo", "arguments": { "question": "Proceed?" } }),
    );
    let first = send(&app, &key, &ask).await;
    assert_eq!(first["result"]["resultType"], "input_required");
    assert_eq!(first["result"]["requestState"], "opaque-state-1");
    assert!(
        first["result"].get("cacheScope").is_none() && first["result"].get("ttlMs").is_none(),
        "an input_required step is never given cache hints: {first}"
    );
    let mut retry = ask.clone();
    retry["id"] = json!(2);
    retry["params"]["inputResponses"] = json!({ "confirm": { "action": "accept", "content": {} } });
    retry["params"]["requestState"] = json!("opaque-state-1");
    let done = send(&app, &key, &retry).await;
    assert_eq!(done["result"]["content"][0]["text"], "confirmed");
    let seen = upstream.received.lock().unwrap().clone();
    assert_eq!(
        seen.last().unwrap()["params"],
        retry["params"],
        "inputResponses and requestState reach the upstream as sent"
    );

    // Guardrails read what each side adds: the server's input requests, the client's answers.
    app.policy(
        "no-cards",
        "guardrail",
        json!({ "direction": "both", "action": "block", "detectors": ["credit_card"] }),
        (None, None, None),
    )
    .await;
    let card = "4111 1111 1111 1111";
    let mut smuggled = retry.clone();
    smuggled["id"] = json!(3);
    smuggled["params"]["inputResponses"] =
        json!({ "confirm": { "action": "accept", "content": { "card": card } } });
    let before = upstream.received.lock().unwrap().len();
    let refused = send(&app, &key, &smuggled).await;
    assert_eq!(refused["error"]["data"]["reason"], "guardrail_blocked");
    assert_eq!(upstream.received.lock().unwrap().len(), before);
    let mut asks_for_card = ask.clone();
    asks_for_card["id"] = json!(4);
    asks_for_card["params"]["arguments"]["question"] = json!("Charge CARD?");
    let blocked = send(&app, &key, &asks_for_card).await;
    assert_eq!(
        blocked["error"]["data"]["reason"], "guardrail_blocked",
        "the server's input request carries the card: {blocked}"
    );
    assert_eq!(
        blocked["error"]["data"]["guardrail"]["direction"],
        "response"
    );
    assert!(!blocked.to_string().contains("4111"));
}
