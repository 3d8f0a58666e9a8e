//! Every row of the "Decisions and errors" table: status, headers and a snapshot of the body.

use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, call, rpc_message},
    scripted_upstream::Upstream,
};

async fn app_with_demo() -> (TestApp, String) {
    let upstream = Upstream::start().await;
    let app = TestApp::start_with(|c| {
        c.gateway.max_body_bytes = 1024;
        c.gateway.upstream_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "echo,slow").await;
    (app, key)
}

fn www_authenticate(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn missing_credential_is_401_with_resource_metadata() {
    let (app, _) = app_with_demo().await;
    let (status, headers, body) =
        rpc_message(app.post("demo", None, &call("echo")).send().await.unwrap()).await;
    assert_eq!(status, 401);
    let challenge = www_authenticate(&headers);
    assert_eq!(
        challenge,
        format!(
            "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/demo/mcp\", scope=\"mcp:demo\"",
            app.server.local_url()
        )
    );
    insta::assert_json_snapshot!("missing_credential", body);
}

#[tokio::test]
async fn bad_credentials_are_401_invalid_token() {
    let (app, key) = app_with_demo().await;
    let mut wrong_secret = key.clone();
    wrong_secret.replace_range(20..21, if &key[20..21] == "a" { "b" } else { "a" });
    for (name, credential) in [
        ("malformed", "not-a-key".to_owned()),
        ("checksum", wrong_secret),
    ] {
        let response = app
            .post("demo", Some(&credential), &call("echo"))
            .send()
            .await
            .unwrap();
        let (status, headers, body) = rpc_message(response).await;
        assert_eq!(status, 401, "{name}");
        assert!(
            www_authenticate(&headers)
                .starts_with("Bearer error=\"invalid_token\", resource_metadata=")
        );
        insta::assert_json_snapshot!(format!("invalid_credential_{name}"), body);
    }
    let response = app
        .http
        .post(format!("{}?api_key={key}", app.mcp("demo")))
        .header("content-type", "application/json")
        .body(call("echo").to_string())
        .send()
        .await
        .unwrap();
    let (status, _, body) = rpc_message(response).await;
    assert_eq!(status, 401);
    insta::assert_json_snapshot!("credential_in_query_string", body);
}

#[tokio::test]
async fn tool_not_granted_is_403_without_a_step_up_challenge() {
    let (app, key) = app_with_demo().await;
    let (status, headers, body) = rpc_message(
        app.post("demo", Some(&key), &call("delete_records"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    // The connection refuses, not the credential: no token could help, so no challenge.
    assert!(
        headers.get("www-authenticate").is_none(),
        "{}",
        www_authenticate(&headers)
    );
    assert_eq!(body["id"], 7, "the refused request's id is echoed");
    insta::assert_json_snapshot!("tool_not_granted", body);
}

#[tokio::test]
async fn no_connection_is_403() {
    let (app, _) = app_with_demo().await;
    let upstream = Upstream::start().await;
    app.add_server("other", &upstream.url()).await;
    let key = app.key("agent", None).await;
    let (status, _, body) = rpc_message(
        app.post("other", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    insta::assert_json_snapshot!("no_connection", body);
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let (app, key) = app_with_demo().await;
    let cases: [(&str, String); 4] = [
        ("parse_error", "{\"jsonrpc\": ".into()),
        ("invalid_request", json!({ "jsonrpc": "2.0", "id": 1 }).to_string()),
        (
            "duplicate_key",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"delete_records"}}"#.into(),
        ),
        ("missing_tool_name", json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {} }).to_string()),
    ];
    for (name, body) in cases {
        let response = app
            .http
            .post(app.mcp("demo"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, _, body) = rpc_message(response).await;
        assert_eq!(status, 400, "{name}");
        insta::assert_json_snapshot!(format!("malformed_{name}"), body);
    }
}

#[tokio::test]
async fn header_body_mismatch_is_400() {
    let (app, key) = app_with_demo().await;
    let response = app
        .post("demo", Some(&key), &call("echo"))
        .header("mcp-method", "tools/call")
        .header("mcp-name", "delete_records")
        .send()
        .await
        .unwrap();
    let (status, _, body) = rpc_message(response).await;
    assert_eq!(status, 400);
    insta::assert_json_snapshot!("header_mismatch", body);

    let response = app
        .post("demo", Some(&key), &call("echo"))
        .header(
            "mcp-protocol-version",
            reqwest::header::HeaderValue::from_bytes(b"2031-\xff").unwrap(),
        )
        .send()
        .await
        .unwrap();
    let (status, _, body) = rpc_message(response).await;
    assert_eq!(status, 400);
    insta::assert_json_snapshot!("unsupported_protocol_version", body);
}

#[tokio::test]
async fn oversized_body_is_413() {
    let (app, key) = app_with_demo().await;
    let big = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "echo", "arguments": { "text": "x".repeat(2000) } } });
    let (status, _, body) =
        rpc_message(app.post("demo", Some(&key), &big).send().await.unwrap()).await;
    assert_eq!(status, 413);
    insta::assert_json_snapshot!("payload_too_large", body);
}

#[tokio::test]
async fn upstream_down_is_502_and_slow_is_504() {
    let (app, key) = app_with_demo().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/mcp", closed.local_addr().unwrap());
    drop(closed);
    app.add_server("dead", &dead_url).await;
    app.grant("agent", "dead", "echo").await;
    let (status, _, body) = rpc_message(
        app.post("dead", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 502);
    insta::assert_json_snapshot!("upstream_unavailable", body);

    let (status, _, body) = rpc_message(
        app.post("demo", Some(&key), &call("slow"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 504);
    insta::assert_json_snapshot!("upstream_timeout", body);

    let decisions: Vec<(String, Option<String>)> = app
        .audit()
        .await
        .iter()
        .map(|r| (r.event.decision.as_str().to_owned(), r.event.reason.clone()))
        .collect();
    assert!(decisions.contains(&("error".into(), Some("upstream_unavailable".into()))));
    assert!(decisions.contains(&("error".into(), Some("upstream_timeout".into()))));
}

#[tokio::test]
async fn other_refusals() {
    let (app, key) = app_with_demo().await;
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "unknown_server",
            app.post("nope", Some(&key), &call("echo")),
            404,
        ),
        (
            "origin_not_allowed",
            app.post("demo", Some(&key), &call("echo"))
                .header("origin", "http://evil.example.com"),
            403,
        ),
        (
            "host_not_allowed",
            app.post("demo", Some(&key), &call("echo"))
                .header("host", "evil.example.com"),
            403,
        ),
        (
            "unsupported_media_type",
            app.http
                .post(app.mcp("demo"))
                .bearer_auth(&key)
                .header("content-type", "text/plain")
                .body(call("echo").to_string()),
            415,
        ),
        (
            "http_method_not_allowed",
            app.http.put(app.mcp("demo")).bearer_auth(&key),
            405,
        ),
        (
            "unknown_method",
            app.post(
                "demo",
                Some(&key),
                &json!({ "jsonrpc": "2.0", "id": 1, "method": "admin/shutdown" }),
            ),
            200,
        ),
        (
            "delete_without_session",
            app.http.delete(app.mcp("demo")).bearer_auth(&key),
            400,
        ),
    ];
    for (name, request, expected) in cases {
        let (status, _, body) = rpc_message(request.send().await.unwrap()).await;
        assert_eq!(status, expected, "{name}: {body}");
        assert!(body["error"]["code"].is_i64(), "{name}: {body}");
        insta::assert_json_snapshot!(format!("refused_{name}"), body);
    }
    // Nothing refused reached the upstream as a tools/call.
    let audit = app.audit().await;
    assert!(
        audit.iter().all(|r| r.event.decision.as_str() == "deny"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn error_bodies_never_echo_secrets() {
    let (app, key) = app_with_demo().await;
    let mut tampered = key.clone();
    tampered.replace_range(30..31, if &key[30..31] == "Z" { "Y" } else { "Z" });
    let response = app
        .post("demo", Some(&tampered), &call("echo"))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert!(!text.contains(&tampered[17..]), "{text}");
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["error"]["data"]["reason"], "invalid_credential");
}

/// A refusal decided before the body is read must not break a kept-alive connection:
/// clients (httpx, undici) reuse it for the next request.
#[tokio::test]
async fn connections_survive_refusals_sent_before_the_body_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (app, key) = app_with_demo().await;
    let mut socket = tokio::net::TcpStream::connect(app.server.addr)
        .await
        .unwrap();
    let body = call("echo").to_string();
    let request = |auth: &str| {
        format!(
            "POST /demo/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    // The client sends headers, reads the early refusal, and only then the body (as httpx may,
    // in two writes), then reuses the connection.
    for auth in ["", "Authorization: Bearer gth_unknown\r\n", ""] {
        let text = request(auth);
        let (head, body) = text.split_at(text.find("\r\n\r\n").unwrap() + 4);
        socket.write_all(head.as_bytes()).await.unwrap();
        let response = read_response(&mut socket).await;
        assert!(response.starts_with("HTTP/1.1 401"), "{response}");
        assert!(
            !response.to_ascii_lowercase().contains("connection: close"),
            "{response}"
        );
        socket.write_all(body.as_bytes()).await.unwrap();
    }
    socket
        .write_all(request(&format!("Authorization: Bearer {key}\r\n")).as_bytes())
        .await
        .unwrap();
    let head = read_response(&mut socket).await;
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "the same connection still serves: {head}"
    );

    async fn read_response(socket: &mut tokio::net::TcpStream) -> String {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = socket.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "connection closed after {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    return text[..end].to_owned();
                }
            }
        }
    }
}
