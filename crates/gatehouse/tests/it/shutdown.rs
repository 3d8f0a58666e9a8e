//! Shutdown and readiness: `/readyz` lists its components and turns 503 `draining` as shutdown
//! begins; requests are still served for `shutdown.ready_delay`; then accepting stops, a call
//! in flight completes and its event is committed, and a stream still open at
//! `shutdown.drain_timeout` is cut and recorded as such.

use gatehouse_model::audit::{AuditFilter, Decision, Outcome};
use std::time::{Duration, Instant};

use crate::helpers::{ACCEPT, TestApp, call, rpc_message};
use crate::scripted_upstream::Upstream;

#[tokio::test]
async fn readyz_lists_its_components_and_healthz_answers() {
    let app = TestApp::start().await;
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let text = ready.text().await.unwrap();
    let generation = app.server.state.snapshot.current().generation;
    assert_eq!(
        text,
        format!("ready\nstore: ok\nsnapshot: generation {generation} applied\n")
    );
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

/// Polls `/readyz` until it answers `status`, within a deadline.
async fn readyz_until(http: &reqwest::Client, url: &str, status: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(response) = http.get(url).send().await
            && response.status() == status
        {
            return response.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "/readyz never answered {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn shutdown_drains_a_call_in_flight_and_cuts_a_stream_at_the_deadline() {
    let upstream = Upstream::start().await;
    let app = TestApp::start_with(|config| {
        config.shutdown.ready_delay = Duration::from_secs(2);
        config.shutdown.drain_timeout = Duration::from_secs(3);
    })
    .await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "*").await;

    // A call the upstream answers only when the test says, and a stream that stays open.
    let held = tokio::spawn(app.post("demo", Some(&key), &call("held")).send());
    let mut stream = app
        .http
        .get(app.mcp("demo"))
        .bearer_auth(&key)
        .header("accept", "text/event-stream")
        .header("x-test-hold-open", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let primed = stream.chunk().await.unwrap().unwrap();
    assert!(primed.starts_with(b"id: 1"), "{primed:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstream.hits() < 2 {
        assert!(
            Instant::now() < deadline,
            "the held call never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let TestApp {
        server,
        store,
        http,
        dir: _dir,
        ..
    } = app;
    let readyz = format!("{}/readyz", server.local_url());
    let mcp = format!("{}/demo/mcp", server.local_url());
    let addr = server.addr;
    let stopping = tokio::spawn(server.shutdown());

    let text = readyz_until(&http, &readyz, 503).await;
    assert!(text.starts_with("draining\n"), "{text}");
    // Still served while the load balancer catches up.
    let fresh = http
        .post(&mcp)
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .bearer_auth(&key)
        .body(call("echo").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 200, "served during shutdown.ready_delay");
    assert_eq!(
        fresh.headers()["connection"],
        "close",
        "the client is asked to take its next request elsewhere"
    );

    // Once new connections are refused, the held call is let go: it still completes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "the listener never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    upstream.release.notify_one();
    let (status, _, answer) = rpc_message(held.await.unwrap().unwrap()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], "called held");

    // The stream outlives drain_timeout: it is cut, not ended cleanly.
    let mut cut = false;
    loop {
        match stream.chunk().await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    stopping.await.unwrap();
    assert!(
        cut,
        "a stream cut by shutdown is broken off, never ended cleanly"
    );

    let rows = store
        .query_audit(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let held = rows
        .iter()
        .find(|r| r.event.tool.as_deref() == Some("held"))
        .expect("the held call's event was committed");
    assert_eq!(
        (held.event.decision, held.event.outcome, held.event.status),
        (Decision::Allow, Some(Outcome::Complete), 200)
    );
    let streamed = rows
        .iter()
        .find(|r| r.event.http_method == "GET")
        .expect("the stream's event was committed");
    assert_eq!(streamed.event.outcome, Some(Outcome::Shutdown));
    assert!(
        store.list_replicas().await.unwrap().is_empty(),
        "the heartbeat row is gone"
    );
}
