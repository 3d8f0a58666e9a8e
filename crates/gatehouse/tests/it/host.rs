//! RFC 9112 §3.2 on every route: exactly one `Host`, and the authority a request targets is
//! the one the DNS-rebinding check judges.

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    helpers::{TestApp, call},
    scripted_upstream::Upstream,
};

/// Sends `head` (request line and headers, without the blank line) and `body` over a fresh
/// connection; returns the status and the body.
async fn raw(app: &TestApp, head: &str, body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(app.server.addr)
        .await
        .unwrap();
    let request = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn reason(body: &str) -> Value {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    value["error"]["data"]["reason"].clone()
}

#[tokio::test]
async fn a_request_names_exactly_one_host_on_every_route() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    let host = app.server.addr.to_string();
    let post = |extra: &str| {
        format!(
            "POST /demo/mcp HTTP/1.1\r\n{extra}Authorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream"
        )
    };
    let body = call("echo").to_string();

    let (status, answer) = raw(&app, &post(&format!("Host: {host}\r\n")), &body).await;
    assert_eq!(status, 200, "the well-formed request works: {answer}");

    let (status, answer) = raw(&app, &post(""), &body).await;
    assert_eq!(status, 400, "no Host: {answer}");
    assert_eq!(reason(&answer), "invalid_host_header");
    let refusal: Value = serde_json::from_str(&answer).unwrap();
    insta::assert_json_snapshot!("invalid_host_header", refusal);

    let (status, answer) = raw(
        &app,
        &post(&format!("Host: {host}\r\nHost: evil.example.com\r\n")),
        &body,
    )
    .await;
    assert_eq!(status, 400, "two Hosts: {answer}");
    assert_eq!(reason(&answer), "invalid_host_header");

    // Absolute form: the target's authority is what is judged, not the Host header.
    let absolute = post(&format!("Host: {host}\r\n")).replacen(
        "POST /demo/mcp",
        "POST http://evil.example.com/demo/mcp",
        1,
    );
    let (status, answer) = raw(&app, &absolute, &body).await;
    assert_eq!(status, 403, "absolute form naming another host: {answer}");
    assert_eq!(reason(&answer), "host_not_allowed");
    let own = post("Host: evil.example.com\r\n").replacen(
        "POST /demo/mcp",
        &format!("POST http://{host}/demo/mcp"),
        1,
    );
    let (status, answer) = raw(&app, &own, &body).await;
    assert_eq!(status, 200, "absolute form naming this host: {answer}");

    // Other routes too, each in its own protocol.
    let (status, _) = raw(&app, "GET /healthz HTTP/1.1", "").await;
    assert_eq!(status, 400, "no Host on /healthz");
    let (status, _) = raw(
        &app,
        &format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nHost: {host}"),
        "",
    )
    .await;
    assert_eq!(status, 400, "two Hosts on /healthz");
    let (status, answer) = raw(
        &app,
        "POST /oauth/token HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, 400, "no Host on /oauth/token: {answer}");
    let value: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(value["error"], "invalid_request", "an OAuth error body");
    // HTTP/1.0 has no Host requirement.
    let (status, _) = raw(&app, "GET /healthz HTTP/1.0", "").await;
    assert_eq!(status, 200);

    let calls = upstream
        .received()
        .iter()
        .filter(|r| r.body["method"] == "tools/call")
        .count();
    assert_eq!(
        calls, 2,
        "only the two well-formed calls reached the upstream"
    );
}
