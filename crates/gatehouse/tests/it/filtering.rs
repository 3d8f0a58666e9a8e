//! `tools/list` shows only granted tools, in JSON and in SSE responses, and streams keep
//! their framing.

use crate::{
    helpers::{TestApp, list_tools, rpc_message, tool_names},
    scripted_upstream::Upstream,
};

async fn setup(tools: &str) -> (TestApp, String) {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", tools).await;
    (app, key)
}

#[tokio::test]
async fn json_tools_list_is_filtered() {
    let (app, key) = setup("echo,read_*").await;
    let (status, headers, message) = rpc_message(
        app.post("demo", Some(&key), &list_tools())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(tool_names(&message), ["echo", "read_file"]);
    assert_eq!(
        message["result"]["nextCursor"], "page-2",
        "other fields survive"
    );
    assert_eq!(message["id"], 3);
    assert!(
        headers
            .get("content-length")
            .is_none_or(|v| v.to_str().unwrap().parse::<usize>().unwrap() > 0)
    );
}

#[tokio::test]
async fn sse_tools_list_is_filtered_and_framing_is_kept() {
    let (app, key) = setup("echo").await;
    let response = app
        .post("demo", Some(&key), &list_tools())
        .header("x-test-want-sse", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    assert!(
        text.starts_with("id: 0\nretry: 1500\ndata: \n\n"),
        "priming event passed through untouched: {text:?}"
    );
    assert!(text.contains("id: 1\n"), "event id kept: {text:?}");
    let data = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .find(|l| l.starts_with('{'))
        .unwrap();
    let message: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(tool_names(&message), ["echo"]);
}

#[tokio::test]
async fn key_narrowing_applies_to_the_list_too() {
    let (app, _) = setup("*").await;
    let narrow = app.key("agent", Some("add")).await;
    let (_, _, message) = rpc_message(
        app.post("demo", Some(&narrow), &list_tools())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(tool_names(&message), ["add"]);
}

#[tokio::test]
async fn full_grants_see_everything_unchanged() {
    let (app, key) = setup("*").await;
    let (_, _, message) = rpc_message(
        app.post("demo", Some(&key), &list_tools())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(tool_names(&message), crate::scripted_upstream::TOOLS);
}

#[tokio::test]
async fn get_streams_are_filtered_too() {
    let (app, key) = setup("echo").await;
    // Open a session first: GET is bound to its owner.
    let init =
        serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {} });
    let response = app.post("demo", Some(&key), &init).send().await.unwrap();
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = app
        .http
        .get(app.mcp("demo"))
        .bearer_auth(&key)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.starts_with(": primed\n\n"), "{text:?}");
    assert!(text.contains("id: 9\nevent: message\n"), "{text:?}");
    let data = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .next()
        .unwrap();
    let message: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(tool_names(&message), ["echo"]);
}
