//! Every call that reaches an upstream is recorded, however it ends: the client leaving,
//! shutdown, or an upstream body that breaks off. The upstream here is a raw TCP server, so
//! the tests can send exactly the broken bytes they need.

use crate::helpers::{TestApp, call, list_tools, rpc_message};
use gatehouse_model::audit::{AuditRow, Decision, Outcome};
use std::time::Duration;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

/// What the raw upstream does once it has read a request.
#[derive(Clone)]
enum Answer {
    /// Writes these bytes, then closes the connection.
    Send(&'static str),
    /// Never answers (the connection stays open).
    Hang,
}

/// Starts a raw upstream; each request's body is reported on the returned channel.
async fn raw_upstream(answer: Answer) -> (String, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let (tx, answer) = (tx.clone(), answer.clone());
            tokio::spawn(serve(socket, tx, answer));
        }
    });
    (url, rx)
}

async fn serve(mut socket: TcpStream, received: mpsc::UnboundedSender<String>, answer: Answer) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let body = loop {
        let n = socket.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        let Some(head_end) = text.find("\r\n\r\n") else {
            continue;
        };
        let length = text[..head_end]
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        if buf.len() >= head_end + 4 + length {
            break text[head_end + 4..].to_owned();
        }
    };
    let _ = received.send(body);
    match answer {
        Answer::Send(bytes) => {
            let _ = socket.write_all(bytes.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
        Answer::Hang => {
            // Holds the connection open until the test ends.
            let _ = socket.read(&mut chunk).await;
        }
    }
}

async fn app_in_front_of(url: &str, tools: &str) -> (TestApp, String) {
    let app = TestApp::start_with(|c| c.admin_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    app.add_server("demo", url).await;
    let key = app.client_with_key("agent", "demo", tools).await;
    (app, key)
}

/// Polls the trail until `count` events are there (they may be written after the response).
async fn events(app: &TestApp, count: usize) -> Vec<AuditRow> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = app.audit().await;
        if rows.len() >= count {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {count} audit events, found {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_call_whose_client_left_is_recorded_as_forwarded() {
    let (url, mut received) = raw_upstream(Answer::Hang).await;
    let (app, key) = app_in_front_of(&url, "*").await;
    let request = app.post("demo", Some(&key), &call("echo")).send();
    let client = tokio::spawn(request);
    // The call has reached the upstream; now the client goes away.
    let body = received.recv().await.unwrap();
    assert!(body.contains("tools/call"), "{body}");
    client.abort();

    let rows = events(&app, 1).await;
    let e = &rows[0].event;
    assert_eq!(
        (e.decision, e.outcome, e.status),
        (Decision::Allow, Some(Outcome::ClientGone), 499)
    );
    assert_eq!(
        (e.client.as_deref(), e.tool.as_deref()),
        (Some("agent"), Some("echo"))
    );
    let admin = app.server.admin_addr.unwrap();
    let metrics = app
        .http
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "gatehouse_requests_total{server=\"demo\",method=\"tools/call\",tool=\"echo\",decision=\"allow\",reason=\"client_gone\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_call_cut_by_shutdown_is_recorded() {
    let (url, mut received) = raw_upstream(Answer::Hang).await;
    let (app, key) = app_in_front_of(&url, "*").await;
    let client = tokio::spawn(app.post("demo", Some(&key), &call("echo")).send());
    received.recv().await.unwrap();
    let TestApp { server, store, .. } = app;
    server.shutdown().await;

    let rows = store
        .query_audit(&gatehouse_model::audit::AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let e = &rows[0].event;
    assert_eq!(
        (e.decision, e.outcome, e.status),
        (Decision::Allow, Some(Outcome::Shutdown), 503)
    );
    // The client got an answer, not a silently dropped connection.
    let response = client.await.unwrap().unwrap();
    assert_eq!(response.status(), 503);
}

const CUT_JSON: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
    content-length: 100\r\n\r\n{\"jsonrpc\":";

const CUT_SSE: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
    transfer-encoding: chunked\r\n\r\n10\r\ndata: {\"jsonrpc\"\r\n";

#[tokio::test]
async fn a_body_shorter_than_its_length_is_recorded_as_truncated() {
    let (url, _received) = raw_upstream(Answer::Send(CUT_JSON)).await;
    let (app, key) = app_in_front_of(&url, "*").await;
    let response = app
        .post("demo", Some(&key), &call("echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the head was relayed");
    assert!(
        response.bytes().await.is_err(),
        "the cut reaches the client"
    );

    let rows = events(&app, 1).await;
    let e = &rows[0].event;
    assert_eq!(
        (e.decision, e.outcome, e.reason.as_deref(), e.response_bytes),
        (
            Decision::Error,
            Some(Outcome::UpstreamTruncated),
            Some("upstream_truncated"),
            Some(11)
        )
    );
}

#[tokio::test]
async fn a_broken_chunked_stream_is_recorded_as_truncated_filtered_or_not() {
    let (url, _received) = raw_upstream(Answer::Send(CUT_SSE)).await;
    // "*" relays the stream as it is; "echo" filters it event by event.
    for (n, tools) in ["*", "echo"].into_iter().enumerate() {
        let app = TestApp::start().await;
        app.add_server("demo", &url).await;
        let key = app.client_with_key("agent", "demo", tools).await;
        let response = app
            .post("demo", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap();
        assert!(response.bytes().await.is_err(), "case {n}");
        let rows = events(&app, 1).await;
        let e = &rows[0].event;
        assert_eq!(
            (e.decision, e.outcome),
            (Decision::Error, Some(Outcome::UpstreamTruncated)),
            "case {n}: {e:?}"
        );
    }
}

#[tokio::test]
async fn a_broken_tools_list_body_is_not_called_too_large() {
    let (url, _received) = raw_upstream(Answer::Send(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\nbroke",
    ))
    .await;
    // A narrowed grant: the list is read whole to be filtered.
    let (app, key) = app_in_front_of(&url, "echo").await;
    let (status, _, body) = rpc_message(
        app.post("demo", Some(&key), &list_tools())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 502);
    insta::assert_json_snapshot!("upstream_response_broken", body);
    let rows = events(&app, 1).await;
    assert_eq!(
        rows[0].event.reason.as_deref(),
        Some("upstream_response_broken")
    );
}

#[tokio::test]
async fn a_complete_answer_records_its_outcome_and_size() {
    let (url, _received) = raw_upstream(Answer::Send(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 36\r\n\r\n\
         {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}",
    ))
    .await;
    let (app, key) = app_in_front_of(&url, "*").await;
    let response = app
        .post("demo", Some(&key), &call("echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.bytes().await.unwrap().len(), 36);
    // Durable mode: the answer's end waited for the commit, so the event is there at once.
    let rows = app.audit().await;
    assert_eq!(rows.len(), 1);
    let e = &rows[0].event;
    assert_eq!(
        (e.decision, e.outcome, e.response_bytes, e.status),
        (Decision::Allow, Some(Outcome::Complete), Some(36), 200)
    );
}

/// An SSE answer whose chunked body ends properly (the last chunk sent) after `body`.
fn sse_ended_cleanly_after(body: &str) -> &'static str {
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
         transfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    // Each test's upstream answers with it for as long as the test runs.
    Box::leak(answer.into_boxed_str())
}

const LISTED: &str =
    r#"data: {"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"echo"},{"name":"rm"}]}}"#;

/// One request through a gateway in front of an upstream answering `body` as an SSE stream,
/// relayed as it is (`*`: a call passes untouched) and rewritten (`echo`: a `tools/list` is
/// filtered event by event). Returns, per way, what the client read and the single event.
async fn through_both_ways(body: &str) -> Vec<(String, AuditRow, String)> {
    through_both_ways_answered(sse_ended_cleanly_after(body)).await
}

async fn through_both_ways_answered(answer: &'static str) -> Vec<(String, AuditRow, String)> {
    let (url, _received) = raw_upstream(Answer::Send(answer)).await;
    let mut seen = Vec::new();
    for (tools, message) in [("*", call("echo")), ("echo", list_tools())] {
        let (app, key) = app_in_front_of(&url, tools).await;
        let response = app.post("demo", Some(&key), &message).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let text = response
            .text()
            .await
            .expect("the stream ends as the upstream ended it, cleanly");
        let rows = events(&app, 1).await;
        assert_eq!(rows.len(), 1, "one event per request: {rows:?}");
        let admin = app.server.admin_addr.unwrap();
        let metrics = app
            .http
            .get(format!("http://{admin}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        seen.push((text, rows[0].clone(), metrics));
    }
    seen
}

#[tokio::test]
async fn an_sse_stream_ended_cleanly_inside_an_event_is_recorded_as_truncated() {
    let body = format!(": primed\n\n{LISTED}\n\nid: 2\ndata: {{\"jsonrpc\":\"2.0\",\"id\":3,\"res");
    let seen = through_both_ways(&body).await;
    let (relayed, _, _) = &seen[0];
    assert_eq!(relayed, &body, "relayed as it is, byte for byte");
    let (rewritten, _, _) = &seen[1];
    assert!(
        rewritten.ends_with("}]}}\n\n") && !rewritten.contains("\"rm\""),
        "the unfinished event is not passed on, the complete ones are filtered: {rewritten:?}"
    );
    for (n, (text, row, metrics)) in seen.iter().enumerate() {
        let e = &row.event;
        assert_eq!(
            (e.decision, e.outcome, e.reason.as_deref(), e.status),
            (
                Decision::Error,
                Some(Outcome::UpstreamTruncated),
                Some("upstream_truncated"),
                200
            ),
            "case {n}"
        );
        assert_eq!(e.response_bytes, Some(text.len() as u64), "case {n}");
        let (method, tool) = [("tools/call", "echo"), ("tools/list", "")][n];
        assert!(
            metrics.contains(&format!(
                "gatehouse_requests_total{{server=\"demo\",method=\"{method}\",tool=\"{tool}\",decision=\"error\",reason=\"upstream_truncated\"}} 1"
            )),
            "case {n}: {metrics}"
        );
    }
}

#[tokio::test]
async fn an_sse_body_of_full_length_ending_inside_an_event_is_recorded_as_truncated() {
    // All the bytes its Content-Length announced: the body ends with its last frame.
    let body = format!("{LISTED}\n\ndata: {{\"jsonrpc\":\"2.0\",\"id\":3,\n");
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let seen = through_both_ways_answered(Box::leak(answer.into_boxed_str())).await;
    assert_eq!(seen[0].0, body);
    for (n, (_, row, _)) in seen.iter().enumerate() {
        let e = &row.event;
        assert_eq!(
            (e.decision, e.outcome),
            (Decision::Error, Some(Outcome::UpstreamTruncated)),
            "case {n}"
        );
    }
}

#[tokio::test]
async fn an_sse_stream_ended_on_an_event_boundary_is_complete() {
    let body = format!(": primed\r\n\r\n{LISTED}\r\n\r\n");
    let seen = through_both_ways(&body).await;
    assert_eq!(seen[0].0, body);
    for (n, (_, row, metrics)) in seen.iter().enumerate() {
        let e = &row.event;
        assert_eq!(
            (e.decision, e.outcome, e.reason.as_deref()),
            (Decision::Allow, Some(Outcome::Complete), None),
            "case {n}"
        );
        assert!(
            !metrics.contains("upstream_truncated"),
            "case {n}: {metrics}"
        );
    }
}

#[tokio::test]
async fn an_sse_stream_ended_by_a_comment_is_complete() {
    // A comment after the last event carries nothing a client would dispatch, finished or not.
    let body = format!("{LISTED}\n\n: keep-alive\n: keep-al");
    let seen = through_both_ways(&body).await;
    assert_eq!(seen[0].0, body);
    for (n, (_, row, _)) in seen.iter().enumerate() {
        let e = &row.event;
        assert_eq!(
            (e.decision, e.outcome),
            (Decision::Allow, Some(Outcome::Complete)),
            "case {n}"
        );
    }
}
