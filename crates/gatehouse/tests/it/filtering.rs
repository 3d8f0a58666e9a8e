//! `tools/list` shows only granted tools, in JSON and in SSE responses, and streams keep
//! their framing.

use crate::{
    canned_upstream::{Canned, CannedUpstream, canned},
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

const LIST: &str =
    r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"echo"},{"name":"delete_records"}]}}"#;

fn call_echo() -> serde_json::Value {
    serde_json::json!({ "jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": { "name": "echo", "arguments": {} } })
}

/// A Gatehouse in front of `canned`, and a key for `tools` of it.
async fn behind(canned: Canned, tools: &str) -> (TestApp, CannedUpstream, String) {
    let upstream = CannedUpstream::start(canned).await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url).await;
    let key = app.client_with_key("agent", "demo", tools).await;
    (app, upstream, key)
}

#[tokio::test]
async fn an_unreadable_content_type_is_refused_when_rules_apply() {
    let (app, _, key) = behind(canned(200, "text/plain", LIST), "echo").await;
    let response = app
        .post("demo", Some(&key), &list_tools())
        .send()
        .await
        .unwrap();
    let (status, _, body) = rpc_message(response).await;
    assert_eq!(status, 502, "the unfiltered list never reaches the client");
    assert_eq!(body["id"], 3);
    assert!(!body.to_string().contains("delete_records"), "{body}");
    insta::assert_json_snapshot!("upstream_content_unfilterable", body);
    let audit = app.audit().await;
    assert_eq!(audit[0].event.decision.as_str(), "error");
    assert_eq!(
        audit[0].event.reason.as_deref(),
        Some("upstream_content_unfilterable")
    );

    // Without rules (every tool, no list to pin, no guardrail) the answer passes as it came.
    let (app, _, key) = behind(canned(200, "text/plain", LIST), "*").await;
    let response = app
        .post("demo", Some(&key), &call_echo())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), LIST);
}

#[tokio::test]
async fn an_unreadable_error_keeps_its_status_but_not_its_body() {
    let (app, _, key) = behind(
        canned(404, "text/plain", "no session; tools: delete_records"),
        "echo",
    )
    .await;
    let response = app
        .post("demo", Some(&key), &list_tools())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "clients act on the status");
    assert!(response.headers().get("content-type").is_none());
    assert_eq!(response.text().await.unwrap(), "");
    // An empty success (a notification's 202) has nothing to filter.
    let (app, _, key) = behind(canned(202, "text/plain", ""), "echo").await;
    let note = serde_json::json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    let response = app.post("demo", Some(&key), &note).send().await.unwrap();
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn filtered_responses_are_asked_for_uncompressed() {
    let compressing = Canned {
        gzip_when_accepted: true,
        ..canned(200, "application/json", LIST)
    };
    let (app, upstream, key) = behind(compressing.clone(), "echo").await;
    let response = app
        .post("demo", Some(&key), &list_tools())
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("content-encoding").is_none());
    let (status, _, message) = rpc_message(response).await;
    assert_eq!(status, 200);
    assert_eq!(tool_names(&message), ["echo"]);
    assert_eq!(upstream.accept_encodings(), [Some("identity".to_owned())]);

    // Nothing to rewrite: still asked for uncompressed, as the trail reads what is relayed.
    let (app, upstream, key) = behind(compressing, "*").await;
    let response = app
        .post("demo", Some(&key), &call_echo())
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("content-encoding").is_none());
    assert_eq!(upstream.accept_encodings(), [Some("identity".to_owned())]);
}

#[tokio::test]
async fn a_compressed_answer_is_refused_when_rules_apply() {
    for content_type in ["application/json", "text/event-stream"] {
        let always = Canned {
            headers: vec![("content-type", content_type), ("content-encoding", "gzip")],
            ..canned(200, content_type, LIST)
        };
        let (app, _, key) = behind(always, "echo").await;
        let response = app
            .post("demo", Some(&key), &list_tools())
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert!(response.headers().get("content-encoding").is_none());
        let (status, _, body) = rpc_message(response).await;
        assert_eq!(status, 502, "{content_type}");
        assert_eq!(
            body["error"]["data"]["reason"], "upstream_encoding_unfilterable",
            "{content_type}"
        );
        assert!(!body.to_string().contains("delete_records"));
    }
}
