//! The edge under slow, large and idle traffic: connections and pools are closed when they
//! should be, and every refusal is an answer.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use serde_json::json;

use crate::{
    helpers::{TestApp, call},
    scripted_upstream::Upstream,
};

/// Polls `done` until it holds or `limit` passes.
async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// Reads one request head and its `Content-Length` body from `tcp`.
async fn read_request(tcp: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tcp.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the request ended early");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

/// An upstream that answers one JSON-RPC call, then reports when Gatehouse closes the socket.
async fn upstream_that_watches_for_close() -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let closed = Arc::new(AtomicBool::new(false));
    let flag = closed.clone();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        read_request(&mut tcp).await;
        let body = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#;
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(answer.as_bytes()).await.unwrap();
        let mut rest = [0u8; 64];
        if let Ok(0) = tcp.read(&mut rest).await {
            flag.store(true, Ordering::SeqCst);
        }
    });
    (format!("http://{addr}/mcp"), closed)
}

#[tokio::test]
async fn idle_upstream_connections_are_closed_after_the_idle_timeout() {
    let (url, closed) = upstream_that_watches_for_close().await;
    let app = TestApp::start_with(|c| {
        c.gateway.upstream_pool_idle_timeout = Duration::from_millis(200);
    })
    .await;
    app.add_server("demo", &url).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    let response = app
        .post("demo", Some(&key), &call("echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || closed.load(Ordering::SeqCst)).await,
        "the idle upstream connection was still open 10 s after a 200 ms idle timeout"
    );
}

#[tokio::test]
async fn a_forged_forwarded_header_does_not_choose_the_address() {
    let upstream = Upstream::start().await;
    // A proxy on loopback that appends to X-Forwarded-For (nginx, ALB) and passes the client's
    // own `Forwarded` through untouched.
    let app = TestApp::start_with(|c| {
        c.policy.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "*").await;
    app.policy(
        "office",
        "ip",
        json!({ "allow": ["203.0.113.0/24"] }),
        (None, None, None),
    )
    .await;
    let response = app
        .post("demo", Some(&key), &call("echo"))
        .header("forwarded", "for=203.0.113.7")
        .header("x-forwarded-for", "198.51.100.1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "the proxy saw 198.51.100.1");
    let audit = app.audit().await;
    assert_eq!(audit[0].event.ip.as_deref(), Some("198.51.100.1"));

    // The client's forwarding headers do not reach the upstream either.
    let response = app
        .post("demo", Some(&key), &call("echo"))
        .header("forwarded", "for=203.0.113.7")
        .header("x-forwarded-for", "203.0.113.8")
        .header("x-real-ip", "203.0.113.9")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = upstream.received().pop().unwrap();
    for name in ["forwarded", "x-forwarded-for", "x-real-ip", "x-hop"] {
        assert!(
            seen.headers.get(name).is_none(),
            "{name} was forwarded upstream"
        );
    }
}
