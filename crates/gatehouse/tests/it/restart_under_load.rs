//! A replica stopped under load answers every request it read: while callers keep sending,
//! shutdown drains, and afterwards each request either got its whole answer (and its event is
//! committed as complete) or got nothing at all (the connection was refused or closed before
//! any answer) and left no event: it never reached Gatehouse, so a client or balancer may send
//! it elsewhere. No request is half-answered or answered without its event.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use gatehouse_model::audit::{AuditFilter, Outcome};

use crate::helpers::{ACCEPT, TestApp, call};
use crate::scripted_upstream::Upstream;

/// How one request ended, from the caller's side.
enum Ended {
    /// 200 with the whole JSON-RPC answer.
    Answered(String),
    /// No byte of an answer: refused, or closed before the head.
    NothingReceived(String),
}

async fn one_call(http: &reqwest::Client, mcp: &str, key: &str, tool: String) -> Ended {
    let sent = http
        .post(mcp)
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .bearer_auth(key)
        .body(call(&tool).to_string())
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(_) => return Ended::NothingReceived(tool),
    };
    let status = response.status();
    let body = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("{tool}: the answer broke off after its head: {e}"));
    assert_eq!(status, 200, "{tool}: {body}");
    assert!(body.contains(&format!("called {tool}")), "{tool}: {body}");
    Ended::Answered(tool)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopped_under_load_answers_every_request_it_read() {
    let upstream = Upstream::start().await;
    let app = TestApp::start_with(|config| {
        config.shutdown.ready_delay = Duration::from_millis(500);
        config.shutdown.drain_timeout = Duration::from_secs(10);
    })
    .await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "*").await;
    let mcp = app.mcp("demo");
    let http = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));

    let callers: Vec<_> = (0..8)
        .map(|caller| {
            let (http, mcp, key, stop) = (http.clone(), mcp.clone(), key.clone(), stop.clone());
            tokio::spawn(async move {
                let mut ended = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    ended.push(one_call(&http, &mcp, &key, format!("req-{caller}-{n}")).await);
                    n += 1;
                }
                ended
            })
        })
        .collect();

    // Let the load run, then stop the replica under it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while upstream.hits() < 200 {
        assert!(Instant::now() < deadline, "the load never got going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let TestApp {
        server,
        store,
        dir: _dir,
        ..
    } = app;
    server.shutdown().await;
    stop.store(true, Ordering::Release);
    let mut answered = BTreeSet::new();
    let mut unanswered = BTreeSet::new();
    for caller in callers {
        for ended in caller.await.unwrap() {
            match ended {
                Ended::Answered(tool) => answered.insert(tool),
                Ended::NothingReceived(tool) => unanswered.insert(tool),
            };
        }
    }

    let rows = store
        .query_audit(&AuditFilter {
            limit: 100_000,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let mut recorded = BTreeSet::new();
    for row in &rows {
        let Some(tool) = row.event.tool.clone() else {
            continue;
        };
        assert_eq!(
            row.event.outcome,
            Some(Outcome::Complete),
            "{tool}: every request read was answered whole"
        );
        recorded.insert(tool);
    }
    assert_eq!(
        recorded, answered,
        "the events are exactly the answered requests"
    );
    assert!(
        recorded.is_disjoint(&unanswered),
        "a request the caller got nothing for was never read"
    );
    assert!(answered.len() >= 200, "{} answered", answered.len());
    eprintln!(
        "stopped under load: {} answered, {} never read (no byte of an answer)",
        answered.len(),
        unanswered.len()
    );
}
