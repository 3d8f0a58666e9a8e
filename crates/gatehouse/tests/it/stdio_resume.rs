//! SEP-1699 for stdio servers (ADR 0013): in a 2025-11-25 session Gatehouse answers with SSE
//! streams it keeps — a priming event with an id and `retry`, an id per event, the POST
//! stream closed after `gateway.sse_poll_after` without its answer — and a client resumes
//! one with `GET` and `Last-Event-ID`. The program is a small MCP server in Python whose
//! `later` call is answered only when `release` is called, so no test waits on a clock.

use gatehouse::admin::{self, NewStdio};
use serde_json::{Value, json};
use std::time::Duration;

use crate::helpers::{TestApp, call, rpc_message};

const CHILD: &str = r#"
import json, sys
held = []
def send(m):
    print(json.dumps(m), flush=True)
for line in sys.stdin:
    m = json.loads(line)
    method = m.get("method")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": m["id"], "result": {"protocolVersion": "2025-11-25",
              "capabilities": {"tools": {}}, "serverInfo": {"name": "held", "version": "1"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": m["id"], "result": {"tools": [
              {"name": n, "inputSchema": {"type": "object"}} for n in ("later", "release")]}})
    elif method == "tools/call" and m["params"]["name"] == "later":
        send({"jsonrpc": "2.0", "method": "notifications/progress", "params": {
              "progressToken": m["params"]["_meta"]["progressToken"], "progress": 1,
              "message": "started"}})
        held.append(m["id"])
    elif method == "tools/call":
        for held_id in held:
            send({"jsonrpc": "2.0", "id": held_id,
                  "result": {"content": [{"type": "text", "text": "done later by ops@example.com"}]}})
        held.clear()
        send({"jsonrpc": "2.0", "id": m["id"], "result": {"content": []}})
"#;

async fn app_with_poll_after(poll_after: Duration) -> (TestApp, String) {
    let app = TestApp::start_with(|config| config.gateway.sse_poll_after = poll_after).await;
    app.add_server_with(admin::NewServer {
        name: "local".into(),
        stdio: Some(NewStdio {
            command: "python3".into(),
            args: vec!["-u".into(), "-c".into(), CHILD.into()],
            ..NewStdio::default()
        }),
        ..Default::default()
    })
    .await;
    let key = app.client_with_key("agent", "local", "*").await;
    (app, key)
}

async fn session(app: &TestApp, key: &str, version: &str) -> String {
    let initialize = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}});
    let response = app
        .post("local", Some(key), &initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

fn in_session(app: &TestApp, key: &str, session: &str, body: &Value) -> reqwest::RequestBuilder {
    app.post("local", Some(key), body)
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
}

/// One SSE event: its id, `retry`, and data (empty for a priming event).
#[derive(Debug)]
struct Event {
    id: Option<String>,
    retry: Option<String>,
    data: String,
}

/// The next event of `response`; `None` when the stream ended.
async fn next(response: &mut reqwest::Response, buffer: &mut String) -> Option<Event> {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let raw: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| {
                raw.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_owned())
            };
            return Some(Event {
                id: field("id:"),
                retry: field("retry:"),
                data: field("data:").unwrap_or_default(),
            });
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("an event or the end within 10 s")
            .unwrap()?;
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

fn is_sse(response: &reqwest::Response) -> bool {
    response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream")
}

async fn resume(app: &TestApp, key: &str, session: &str, last: &str) -> reqwest::Response {
    app.http
        .get(app.mcp("local"))
        .bearer_auth(key)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .header("last-event-id", last)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn each_answer_opens_with_a_priming_event_and_every_event_has_an_id() {
    let (app, key) = app_with_poll_after(Duration::from_secs(30)).await;
    let session = session(&app, &key, "2025-11-25").await;
    // Several streams at once, each its own.
    let mut streams = Vec::new();
    for _ in 0..3 {
        let request = in_session(&app, &key, &session, &crate::helpers::list_tools());
        streams.push(tokio::spawn(request.send()));
    }
    let mut ids = Vec::new();
    for stream in streams {
        let mut response = stream.await.unwrap().unwrap();
        assert_eq!(response.status(), 200);
        assert!(is_sse(&response), "an SSE stream, not JSON");
        let mut buffer = String::new();
        let priming = next(&mut response, &mut buffer).await.unwrap();
        assert_eq!(priming.data, "", "the priming event carries no message");
        assert_eq!(priming.retry.as_deref(), Some("1000"));
        let answer = next(&mut response, &mut buffer).await.unwrap();
        let message: Value = serde_json::from_str(&answer.data).unwrap();
        assert_eq!(message["result"]["tools"][0]["name"], "later");
        let (priming_id, answer_id) = (priming.id.unwrap(), answer.id.unwrap());
        let stream_id = priming_id
            .strip_suffix("_0")
            .expect("the priming event is 0");
        assert_eq!(answer_id, format!("{stream_id}_1"));
        assert!(
            next(&mut response, &mut buffer).await.is_none(),
            "ends after its answer"
        );
        ids.push(stream_id.to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each stream has its own id");
}

#[tokio::test]
async fn a_post_stream_closed_before_its_answer_is_resumed_with_last_event_id() {
    let (app, key) = app_with_poll_after(Duration::from_millis(200)).await;
    let session = session(&app, &key, "2025-11-25").await;
    let later = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "later", "arguments": {}, "_meta": {"progressToken": "p1"}}});
    let mut post = in_session(&app, &key, &session, &later)
        .send()
        .await
        .unwrap();
    assert!(is_sse(&post));
    let mut buffer = String::new();
    let priming = next(&mut post, &mut buffer).await.unwrap();
    let started = next(&mut post, &mut buffer).await.unwrap();
    assert!(started.data.contains("started"), "{started:?}");
    assert!(
        next(&mut post, &mut buffer).await.is_none(),
        "closed after poll_after, before the answer"
    );

    // Resumed after the progress event: the answer comes once the call is released.
    let mut resumed = resume(&app, &key, &session, started.id.as_deref().unwrap()).await;
    assert_eq!(resumed.status(), 200);
    assert!(is_sse(&resumed));
    let release = in_session(&app, &key, &session, &call("release"));
    let (status, _, _) = rpc_message(release.send().await.unwrap()).await;
    assert_eq!(status, 200);
    let mut buffer = String::new();
    let answer = next(&mut resumed, &mut buffer).await.unwrap();
    let message: Value = serde_json::from_str(&answer.data).unwrap();
    assert_eq!(message["id"], json!(7), "the call's own id");
    assert_eq!(
        message["result"]["content"][0]["text"],
        "done later by ops@example.com"
    );
    assert!(next(&mut resumed, &mut buffer).await.is_none());

    // A client that comes back after the answer still gets everything after its event.
    let mut late = resume(&app, &key, &session, priming.id.as_deref().unwrap()).await;
    let mut buffer = String::new();
    assert!(
        next(&mut late, &mut buffer)
            .await
            .unwrap()
            .data
            .contains("started")
    );
    assert!(
        next(&mut late, &mut buffer)
            .await
            .unwrap()
            .data
            .contains("done later")
    );
    assert!(next(&mut late, &mut buffer).await.is_none());
}

#[tokio::test]
async fn a_stream_of_another_session_or_an_unknown_one_is_not_resumed() {
    let (app, key) = app_with_poll_after(Duration::from_millis(200)).await;
    let mine = session(&app, &key, "2025-11-25").await;
    let theirs = session(&app, &key, "2025-11-25").await;
    let mut post = in_session(&app, &key, &mine, &crate::helpers::list_tools())
        .send()
        .await
        .unwrap();
    let mut buffer = String::new();
    let priming = next(&mut post, &mut buffer).await.unwrap();
    let id = priming.id.unwrap();

    let (status, _, message) = rpc_message(resume(&app, &key, &theirs, &id).await).await;
    assert_eq!(status, 400, "another session's stream: {message}");
    assert_eq!(message["error"]["data"]["reason"], "stream_not_resumable");
    insta::assert_json_snapshot!("stream_not_resumable", message);
    for unknown in ["nosuchstream_0", "0/12"] {
        let (status, _, message) = rpc_message(resume(&app, &key, &mine, unknown).await).await;
        assert_eq!(status, 400, "{unknown}: {message}");
        assert_eq!(message["error"]["data"]["reason"], "stream_not_resumable");
    }
    let (status, _, _) = rpc_message(resume(&app, &key, &mine, &id).await).await;
    assert_eq!(status, 200, "the session's own stream resumes");
}

#[tokio::test]
async fn a_session_of_an_earlier_version_gets_json_and_no_priming_events() {
    let (app, key) = app_with_poll_after(Duration::from_millis(200)).await;
    let session = session(&app, &key, "2025-06-18").await;
    let response = app
        .post("local", Some(&key), &crate::helpers::list_tools())
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert!(
        !is_sse(&response),
        "a 2025-06-18 client is answered as before"
    );
    let (status, _, message) = rpc_message(response).await;
    assert_eq!((status, message["id"].clone()), (200, json!(3)));
}

#[tokio::test]
async fn a_tool_scoped_guardrail_applies_to_the_answer_on_a_resumed_stream() {
    let (app, key) = app_with_poll_after(Duration::from_millis(200)).await;
    app.policy(
        "mask-later",
        "guardrail",
        json!({"direction": "response", "action": "redact", "detectors": ["email"]}),
        (None, Some("local"), Some("later")),
    )
    .await;
    let session = session(&app, &key, "2025-11-25").await;
    let later = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "later", "arguments": {}, "_meta": {"progressToken": "p1"}}});
    let mut post = in_session(&app, &key, &session, &later)
        .send()
        .await
        .unwrap();
    let mut buffer = String::new();
    let priming = next(&mut post, &mut buffer).await.unwrap();
    while next(&mut post, &mut buffer).await.is_some() {}
    let mut resumed = resume(&app, &key, &session, priming.id.as_deref().unwrap()).await;
    let release = in_session(&app, &key, &session, &call("release"));
    assert_eq!(rpc_message(release.send().await.unwrap()).await.0, 200);
    let mut buffer = String::new();
    let answer = loop {
        let event = next(&mut resumed, &mut buffer).await.expect("the answer");
        if event.data.contains("done later") {
            break event.data;
        }
    };
    assert!(
        answer.contains("[REDACTED:email]") && !answer.contains("ops@example.com"),
        "the resumed stream knows the call was to `later`: {answer}"
    );
}
