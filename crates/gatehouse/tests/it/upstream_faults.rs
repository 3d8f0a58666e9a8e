//! An upstream that is down, slow or answers garbage: the client gets a JSON-RPC error each
//! time, the upstream's circuit breaker opens after `gateway.breaker_failures` failures (no
//! connection is made while it is open: the upstream's hit count says so), one probe closes it
//! again, a client's bad requests never open it, and failing calls leave no task behind.

use serde_json::Value;
use std::time::{Duration, Instant};

use crate::helpers::{ACCEPT, TestApp, call, list_tools, rpc_message};
use crate::scripted_upstream::{Fault, Upstream};

const FAILURES: u32 = 3;

fn breaker(open_for: Duration) -> impl FnOnce(&mut gatehouse::Config) {
    move |config| {
        config.gateway.breaker_failures = FAILURES;
        config.gateway.breaker_open_for = open_for;
        config.gateway.upstream_timeout = Duration::from_millis(300);
        config.gateway.upstream_read_timeout = Duration::from_millis(300);
        config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    }
}

/// A Gatehouse in front of `url` as server `demo`, and a key granting `echo` only (so a
/// `tools/list` answer is read whole to be filtered).
async fn in_front_of(url: &str, open_for: Duration) -> (TestApp, String) {
    let app = TestApp::start_with(breaker(open_for)).await;
    app.add_server("demo", url).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    (app, key)
}

async fn ask(app: &TestApp, key: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = app.post("demo", Some(key), body).send().await.unwrap();
    rpc_message(response).await
}

fn reason(body: &Value) -> &str {
    body["error"]["data"]["reason"].as_str().unwrap_or("(none)")
}

/// Sends `FAILURES` requests that each fail with `status` and `expected`, then asserts the
/// breaker answers for the upstream without reaching it.
async fn fail_until_open(
    app: &TestApp,
    key: &str,
    body: &Value,
    (status, expected): (u16, &str),
    upstream: Option<&Upstream>,
) -> Value {
    for n in 0..FAILURES {
        let (got, _, answer) = ask(app, key, body).await;
        assert_eq!(
            (got, reason(&answer)),
            (status, expected),
            "failure {n}: {answer}"
        );
        assert_eq!(
            answer["id"], body["id"],
            "a JSON-RPC error answering the request"
        );
    }
    let hits = upstream.map(Upstream::hits);
    let (got, headers, answer) = ask(app, key, body).await;
    assert_eq!(
        upstream.map(Upstream::hits),
        hits,
        "no connection while open"
    );
    assert_eq!(got, 503, "{answer}");
    assert_eq!(reason(&answer), "upstream_circuit_open", "{answer}");
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1, "Retry-After {retry_after}");
    assert_eq!(answer["error"]["data"]["retry_after"], retry_after);
    answer
}

/// Requests until one is let through as the probe (the upstream sees it), within a deadline.
async fn until_probed(app: &TestApp, key: &str, upstream: &Upstream) -> (u16, Value) {
    let before = upstream.hits();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, answer) = ask(app, key, &call("echo")).await;
        if upstream.hits() > before {
            assert_eq!(upstream.hits(), before + 1, "one probe, not more");
            return (status, answer);
        }
        assert_eq!(reason(&answer), "upstream_circuit_open", "{answer}");
        assert!(
            Instant::now() < deadline,
            "the breaker never let a probe through"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_closed_port_gets_json_rpc_errors_then_the_breaker_answers() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", closed.local_addr().unwrap());
    drop(closed);
    let (app, key) = in_front_of(&url, Duration::from_secs(60)).await;
    let answer = fail_until_open(
        &app,
        &key,
        &call("echo"),
        (502, "upstream_unavailable"),
        None,
    )
    .await;
    insta::assert_json_snapshot!("upstream_circuit_open", answer);
    let audit = app.audit().await;
    let last = audit.last().unwrap();
    assert_eq!(last.event.reason.as_deref(), Some("upstream_circuit_open"));
    assert_eq!(last.event.decision.as_str(), "error");
    let metrics = format!("http://{}/metrics", app.server.admin_addr.unwrap());
    let metrics = app.http.get(metrics).send().await.unwrap().text().await;
    let metrics = metrics.unwrap();
    assert!(
        metrics.contains("gatehouse_upstream_circuits_open 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_slow_upstream_opens_the_breaker_and_is_not_called_while_open() {
    let upstream = Upstream::start().await;
    upstream.set_fault(Fault::Slow(Duration::from_secs(2)));
    let (app, key) = in_front_of(&upstream.url(), Duration::from_secs(2)).await;
    let timeout = (504, "upstream_timeout");
    fail_until_open(&app, &key, &call("echo"), timeout, Some(&upstream)).await;
    // A probe that fails opens the breaker again; once the upstream is well, a probe closes it.
    let (status, answer) = until_probed(&app, &key, &upstream).await;
    assert_eq!((status, reason(&answer)), (504, "upstream_timeout"));
    let (status, _, answer) = ask(&app, &key, &call("echo")).await;
    assert_eq!(
        (status, reason(&answer)),
        (503, "upstream_circuit_open"),
        "open again after a failed probe"
    );
    upstream.set_fault(Fault::None);
    let (status, answer) = until_probed(&app, &key, &upstream).await;
    assert_eq!(status, 200, "{answer}");
    let before = upstream.hits();
    for _ in 0..3 {
        let (status, _, answer) = ask(&app, &key, &call("echo")).await;
        assert_eq!(status, 200, "closed after the probe: {answer}");
    }
    assert_eq!(upstream.hits(), before + 3);
}

#[tokio::test]
async fn unreadable_and_cut_bodies_are_errors_and_open_the_breaker() {
    for (fault, status, expected) in [
        (Fault::CutBody, 502, "upstream_response_broken"),
        (Fault::NotJson, 200, "upstream_message_unreadable"),
        (Fault::Status(503), 503, "(none)"),
    ] {
        let upstream = Upstream::start().await;
        upstream.set_fault(fault);
        let (app, key) = in_front_of(&upstream.url(), Duration::from_secs(60)).await;
        if expected == "(none)" {
            // An HTML error page keeps its status, not its body; the breaker counts it.
            for _ in 0..FAILURES {
                let response = app
                    .post("demo", Some(&key), &list_tools())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 503, "{fault:?}");
                assert_eq!(response.text().await.unwrap(), "", "{fault:?}");
            }
        } else {
            for _ in 0..FAILURES {
                let (got, _, answer) = ask(&app, &key, &list_tools()).await;
                assert_eq!(got, status, "{fault:?}: {answer}");
                let said = answer["error"]["data"]["reason"].as_str().unwrap_or("");
                assert_eq!(said, expected, "{fault:?}: {answer}");
                assert!(!answer.to_string().contains("Bad Gateway"), "{answer}");
            }
        }
        let hits = upstream.hits();
        let (got, _, answer) = ask(&app, &key, &list_tools()).await;
        assert_eq!(
            (got, reason(&answer)),
            (503, "upstream_circuit_open"),
            "{fault:?}"
        );
        assert_eq!(upstream.hits(), hits, "{fault:?}: no connection while open");
    }
}

#[tokio::test]
async fn a_clients_bad_requests_never_open_the_breaker() {
    let upstream = Upstream::start().await;
    let (app, key) = in_front_of(&upstream.url(), Duration::from_secs(60)).await;
    for _ in 0..(FAILURES * 2) {
        let malformed = app
            .http
            .post(app.mcp("demo"))
            .header("content-type", "application/json")
            .header("accept", ACCEPT)
            .bearer_auth(&key)
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(malformed.status(), 400);
        let (status, _, _) = ask(&app, &key, &call("delete_records")).await;
        assert_eq!(status, 403, "not granted");
    }
    // A tool failing on its arguments (500) and requests the upstream refuses (400) are the
    // caller's, not an outage.
    for status in [500, 400, 404] {
        upstream.set_fault(Fault::Status(status));
        for _ in 0..(FAILURES * 2) {
            let response = app
                .post("demo", Some(&key), &call("echo"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), status);
        }
    }
    upstream.set_fault(Fault::None);
    let (status, _, answer) = ask(&app, &key, &call("echo")).await;
    assert_eq!(status, 200, "the breaker stayed closed: {answer}");
}

#[tokio::test]
async fn failing_calls_leave_no_tasks_behind() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!("http://{}/mcp", closed.local_addr().unwrap());
    drop(closed);
    let cutting = Upstream::start().await;
    cutting.set_fault(Fault::CutBody);
    // The breaker off: every call goes the whole way and fails.
    let app = TestApp::start_with(|config| config.gateway.breaker_failures = 0).await;
    app.add_server("down", &closed_url).await;
    app.add_server("cut", &cutting.url()).await;
    let key = app.client_with_key("agent", "down", "echo").await;
    app.grant("agent", "cut", "echo").await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();

    let load = reqwest::Client::new();
    let calls = (0..2_000).map(|n| {
        let (server, body) = if n % 2 == 0 {
            ("down", call("echo"))
        } else {
            ("cut", list_tools())
        };
        let request = load
            .post(app.mcp(server))
            .header("content-type", "application/json")
            .header("accept", ACCEPT)
            .bearer_auth(&key)
            .body(body.to_string());
        async move { request.send().await.unwrap().status().as_u16() }
    });
    let statuses: Vec<u16> = futures_util::StreamExt::collect(
        futures_util::StreamExt::buffer_unordered(futures_util::stream::iter(calls), 16),
    )
    .await;
    assert!(statuses.iter().all(|s| *s == 502), "{:?}", &statuses[..8]);
    drop(load);

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alive = metrics.num_alive_tasks();
        if alive <= baseline {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{alive} tasks alive after the failing calls, {baseline} before"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
