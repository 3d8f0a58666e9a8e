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
    helpers::{TestApp, call, rpc_message},
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

/// Reads from `tcp` until the peer closes it (or 10 s pass); returns what arrived.
async fn read_until_closed(tcp: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the connection was still open after 10 s");
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn a_trickled_body_is_cut_off_with_408() {
    let upstream = Upstream::start().await;
    let app = TestApp::start_with(|c| c.http.body_read_timeout = Duration::from_millis(300)).await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "*").await;
    let mut tcp = TcpStream::connect(app.server.addr).await.unwrap();
    let head = format!(
        "POST /demo/mcp HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\naccept: application/json, text/event-stream\r\n\
         content-length: 1000\r\n\r\n{{\"jsonrpc\""
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    // One byte at a time keeps the body "arriving" forever; the deadline is on the whole body.
    let trickle = async {
        for _ in 0..500 {
            if tcp.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), trickle).await;
    let answer = read_until_closed(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_body_timeout"), "{answer}");
    assert!(upstream.received().is_empty(), "nothing was forwarded");
}

#[tokio::test]
async fn a_half_sent_head_is_closed_after_the_header_timeout() {
    let app =
        TestApp::start_with(|c| c.http.header_read_timeout = Duration::from_millis(300)).await;
    let mut tcp = TcpStream::connect(app.server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut tcp).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    // A kept-alive connection idle for as long is closed too, after its answer.
    let mut tcp = TcpStream::connect(app.server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The server still answers others.
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn requests_over_the_concurrency_cap_get_503_overloaded() {
    let upstream = Upstream::start().await;
    let app = TestApp::start_with(|c| c.http.max_concurrent_requests = 1).await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "*").await;
    let slow = app.post("demo", Some(&key), &call("slow")).send();
    let slow = tokio::spawn(slow);
    assert!(
        eventually(Duration::from_secs(10), || !upstream.received().is_empty()).await,
        "the slow call reached the upstream"
    );
    let (status, headers, body) = rpc_message(
        app.post("demo", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "1");
    insta::assert_json_snapshot!("overloaded", body);
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);
    // The permit is back: the next call passes.
    let response = app
        .post("demo", Some(&key), &call("echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn over_the_connection_cap_the_oldest_idle_connection_makes_room() {
    let app = TestApp::start_with(|c| c.http.max_connections = 2).await;
    let request = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut tcp = TcpStream::connect(app.server.addr).await.unwrap();
        tcp.write_all(request).await.unwrap();
        let mut buf = [0u8; 512];
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        idle.push(tcp);
        // Distinct idle times, so "oldest" is well defined.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let health = reqwest::Client::new()
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "a new client is served at the cap");
    let oldest = read_until_closed(&mut idle[0]).await;
    assert!(
        oldest.is_empty(),
        "the oldest idle connection was closed: {oldest}"
    );
}

#[tokio::test]
async fn over_the_connection_cap_with_nobody_idle_the_newcomer_gets_503() {
    let upstream = Upstream::start().await;
    let app = TestApp::start_with(|c| c.http.max_connections = 1).await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "*").await;
    let slow = tokio::spawn(app.post("demo", Some(&key), &call("slow")).send());
    assert!(
        eventually(Duration::from_secs(10), || !upstream.received().is_empty()).await,
        "the slow call reached the upstream"
    );
    let mut tcp = TcpStream::connect(app.server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);
}

#[tokio::test]
async fn a_large_token_request_gets_its_413_every_time() {
    let app = TestApp::start().await;
    let body = format!(
        "grant_type=client_credentials&pad={}",
        "x".repeat(1024 * 1024)
    );
    for attempt in 0..4 {
        let tcp = TcpStream::connect(app.server.addr).await.unwrap();
        let (mut read, mut write) = tcp.into_split();
        let request = format!(
            "POST /oauth/token HTTP/1.1\r\nhost: 127.0.0.1\r\n\
             content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        // The whole body is sent before the answer is read: a server that closed without
        // reading it resets the connection, and the reset discards the unread answer.
        let sent =
            tokio::time::timeout(Duration::from_secs(10), write.write_all(request.as_bytes()))
                .await
                .expect("the body could not be sent within 10 s");
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        let read_answer = async {
            loop {
                match read.read(&mut chunk).await {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        answer.extend_from_slice(&chunk[..n]);
                        if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                            break Ok(());
                        }
                    }
                    Err(err) => break Err(err),
                }
            }
        };
        let outcome = tokio::time::timeout(Duration::from_secs(10), read_answer)
            .await
            .expect("no answer within 10 s");
        let text = String::from_utf8_lossy(&answer);
        assert!(
            sent.is_ok() && outcome.is_ok() && text.starts_with("HTTP/1.1 413"),
            "attempt {attempt}: sent {sent:?}, read {outcome:?}: {text}"
        );
    }
}

#[tokio::test]
async fn a_json_token_request_is_invalid_request() {
    let app = TestApp::start().await;
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .json(&json!({ "grant_type": "client_credentials" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn repeated_failed_sign_ins_are_throttled_with_429() {
    use crate::oauth_browser::{Authorize, Browser, PASSWORD, flow_setup_with, pkce};
    let flow = flow_setup_with(|c| c.http.login_max_failures = 2).await;
    let app = &flow.app;
    let mut browser = Browser::new(app);
    let first = browser
        .get(&Authorize::new(app, "spa", &pkce()).url(app))
        .await;
    let login_url = first.location();
    for _ in 0..2 {
        let wrong = sign_in(&mut browser, &login_url, "not-the-password").await;
        assert_eq!(wrong.status, 401, "the form again, with an error");
    }
    let throttled = sign_in(&mut browser, &login_url, PASSWORD).await;
    assert_eq!(throttled.status, 429, "{}", throttled.body);
    let retry: u64 = throttled.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
}

async fn sign_in(
    browser: &mut crate::oauth_browser::Browser,
    login_url: &str,
    password: &str,
) -> crate::oauth_browser::Page {
    let login = browser.get(login_url).await;
    assert_eq!(login.status, 200, "{}", login.body);
    browser
        .post(
            "/oauth/login",
            &[
                ("req", &login.hidden("req")),
                ("csrf", &login.hidden("csrf")),
                ("username", "alice"),
                ("password", password),
            ],
        )
        .await
}

#[tokio::test]
async fn an_upstream_json_body_that_stalls_is_504_after_the_read_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        read_request(&mut tcp).await;
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n";
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp.write_all(br#"{"jsonrpc":"2.0","id":3,"result":{"tools":["#)
            .await
            .unwrap();
        // The rest never comes; the socket stays open.
        let mut rest = [0u8; 64];
        let _ = tcp.read(&mut rest).await;
    });
    let app = TestApp::start_with(|c| {
        c.gateway.upstream_read_timeout = Duration::from_millis(300);
    })
    .await;
    app.add_server("demo", &format!("http://{addr}/mcp")).await;
    // Not every tool is granted, so the tools/list answer is read in full to be filtered.
    let key = app.client_with_key("agent", "demo", "echo").await;
    let response = app
        .post("demo", Some(&key), &crate::helpers::list_tools())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("an answer within 10 s");
    let (status, _, body) = rpc_message(response).await;
    assert_eq!(status, 504);
    assert_eq!(body["error"]["data"]["reason"], "upstream_timeout");
}

#[tokio::test]
async fn a_trusted_issuer_whose_key_set_stalls_is_refused_after_the_read_timeout() {
    use base64::Engine;
    let keys = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let keys_addr = keys.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = keys.accept().await.unwrap();
        read_request(&mut tcp).await;
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n";
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp.write_all(br#"{"keys":["#).await.unwrap();
        let mut rest = [0u8; 64];
        let _ = tcp.read(&mut rest).await;
    });
    let issuer = "https://issuer.example";
    let app = TestApp::start_with(|c| {
        c.gateway.upstream_read_timeout = Duration::from_millis(300);
        c.oauth.trusted_issuers = vec![gatehouse::config::TrustedIssuerConfig {
            name: "corp".into(),
            issuer: issuer.into(),
            jwks_uri: Some(format!("http://{keys_addr}/jwks")),
            audience: None,
            servers: vec!["demo".into()],
            client_claims: vec!["client_id".into()],
            client_map: Default::default(),
            scope_claim: "scope".into(),
            scope_map: Default::default(),
            groups_claim: None,
            group_map: Default::default(),
        }];
    })
    .await;
    let upstream = Upstream::start().await;
    app.add_server("demo", &upstream.url()).await;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let token = format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(json!({ "alg": "RS256", "typ": "JWT", "kid": "k1" })),
        b64(json!({ "iss": issuer, "client_id": "agent", "exp": 4_102_444_800u64 }))
    );
    let response = app
        .post("demo", Some(&token), &call("echo"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("an answer within 10 s");
    // The issuer's keys could not be read: refused as the issuer being unavailable.
    let (status, _, body) = rpc_message(response).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["data"]["reason"], "upstream_unavailable");
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn a_head_over_the_size_limit_gets_431() {
    let app = TestApp::start_with(|c| c.http.max_header_bytes = 2048).await;
    let mut tcp = TcpStream::connect(app.server.addr).await.unwrap();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-padding: {}\r\n\r\n",
        "x".repeat(4096)
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "a head within the limit passes");
}
