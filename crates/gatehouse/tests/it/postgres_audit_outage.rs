//! The audit trail while PostgreSQL is down (ADR 0005 section 4): without durability events
//! queue and are appended, in order and on the same chain, when it returns, and a full queue
//! refuses with `audit_unavailable` after `audit.queue_wait`; in durable mode an answer
//! waiting for its commit is broken off after `audit.commit_timeout` and new requests are
//! refused before forwarding until appends succeed again.

use gatehouse::audit::chain;
use gatehouse_testkit::postgres::Postgres;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

use crate::{helpers::TestApp, scripted_upstream::Upstream};

async fn app_on(
    pg: &Postgres,
    adjust: impl FnOnce(&mut gatehouse::Config),
) -> (TestApp, String, Upstream) {
    let upstream = Upstream::start().await;
    let url = pg.empty_database();
    let app = TestApp::start_with(move |config| {
        config.database_url = Some(url);
        adjust(config);
    })
    .await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "*").await;
    (app, key, upstream)
}

fn numbered(n: u64) -> Value {
    json!({ "jsonrpc": "2.0", "id": n, "method": "tools/call", "params": { "name": "echo", "arguments": {} } })
}

/// `(status, body)`; the body `None` when it broke off.
async fn send(app: &TestApp, key: &str, body: &Value) -> (u16, Option<Value>) {
    let answer = app.post("demo", Some(key), body).send().await.unwrap();
    let status = answer.status().as_u16();
    let body = match answer.bytes().await {
        Ok(bytes) => serde_json::from_slice(&bytes).ok().or(Some(Value::Null)),
        Err(_) => None,
    };
    (status, body)
}

/// The request ids of the trail once `ready` holds for it.
async fn trail_until(
    app: &TestApp,
    what: &str,
    ready: impl Fn(&[gatehouse_model::audit::AuditRow]) -> bool,
) -> Vec<gatehouse_model::audit::AuditRow> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let rows = app.store.audit_page(0, 10_000).await.unwrap_or_default();
        if ready(&rows) {
            return rows;
        }
        assert!(Instant::now() < deadline, "{what}: {} rows", rows.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn without_durability_events_queue_and_land_on_the_same_chain_when_postgres_returns() {
    let pg = Postgres::private().unwrap();
    let (app, key, _upstream) = app_on(&pg, |config| config.audit.durable = false).await;
    assert_eq!(send(&app, &key, &numbered(1)).await.0, 200);
    let before = trail_until(&app, "the first call's event", |rows| {
        rows.iter().any(|r| r.event.tool.as_deref() == Some("echo"))
    })
    .await;
    let chain_id = before.last().unwrap().chain_id;

    pg.stop().unwrap();
    for n in 2..=6 {
        let (status, body) = send(&app, &key, &numbered(n)).await;
        assert_eq!(
            status, 200,
            "answered from the snapshot while it is down: {body:?}"
        );
    }
    pg.restart().unwrap();

    let rows = trail_until(&app, "the events queued during the outage", |rows| {
        rows.iter()
            .filter(|r| r.event.tool.as_deref() == Some("echo"))
            .count()
            == 6
    })
    .await;
    let calls: Vec<_> = rows
        .iter()
        .filter(|r| r.event.tool.as_deref() == Some("echo"))
        .collect();
    assert!(
        calls.iter().all(|r| r.chain_id == chain_id),
        "one chain across the outage: {:?}",
        calls.iter().map(|r| r.chain_id).collect::<Vec<_>>()
    );
    assert!(
        calls
            .windows(2)
            .all(|w| w[0].chain_seq < w[1].chain_seq && w[0].seq < w[1].seq),
        "in the order they were answered"
    );
    let report = chain::verify(&*app.store, &app.keyring).await.unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
}

#[tokio::test]
async fn a_full_queue_refuses_with_audit_unavailable_after_queue_wait() {
    let pg = Postgres::private().unwrap();
    let (app, key, upstream) = app_on(&pg, |config| {
        config.audit.durable = false;
        config.audit.channel_capacity = 2;
        config.audit.queue_wait = Duration::from_millis(200);
    })
    .await;
    pg.stop().unwrap();
    // The writer holds one batch while it retries; the queue behind it fills.
    let mut refused = None;
    for n in 1..=20 {
        let (status, body) = send(&app, &key, &numbered(n)).await;
        if status == 503 {
            refused = Some((n, body.unwrap()));
            break;
        }
        assert_eq!(status, 200, "{body:?}");
    }
    let (n, body) = refused.expect("a full queue must refuse");
    let forwarded = upstream.hits();
    assert_eq!(
        forwarded,
        usize::try_from(n - 1).unwrap(),
        "the refused call never reached the upstream"
    );
    // Which call finds the queue full depends on how many the writer took into its batch.
    assert_eq!(body["id"], n);
    insta::assert_json_snapshot!("audit_unavailable", body, { ".id" => "[the call's id]" });

    pg.restart().unwrap();
    // Every answered call and the refusal itself are written once it returns.
    let rows = trail_until(&app, "everything queued", |rows| {
        rows.iter()
            .filter(|r| r.event.tool.as_deref() == Some("echo"))
            .count()
            == usize::try_from(n).unwrap()
    })
    .await;
    assert!(
        rows.iter()
            .any(|r| r.event.reason.as_deref() == Some("audit_unavailable")),
        "the refusal is recorded too"
    );
    let (status, _) = send(&app, &key, &numbered(100)).await;
    assert_eq!(status, 200, "served again once the queue drained");
    let report = chain::verify(&*app.store, &app.keyring).await.unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
}

#[tokio::test]
async fn durable_mode_breaks_off_an_uncommitted_answer_then_refuses_until_postgres_returns() {
    let pg = Postgres::private().unwrap();
    let (app, key, upstream) = app_on(&pg, |config| {
        config.audit.durable = true;
        config.audit.commit_timeout = Duration::from_millis(500);
    })
    .await;
    pg.stop().unwrap();
    let (status, body) = send(&app, &key, &numbered(1)).await;
    assert_eq!(status, 200, "the head was relayed before the commit failed");
    assert_eq!(
        body, None,
        "an answer whose event is not committed never ends cleanly"
    );
    assert_eq!(upstream.hits(), 1);

    let (status, body) = send(&app, &key, &numbered(2)).await;
    assert_eq!(status, 503, "{body:?}");
    assert_eq!(
        body.unwrap()["error"]["data"]["reason"],
        "audit_unavailable"
    );
    assert_eq!(upstream.hits(), 1, "refused before forwarding");

    pg.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (status, body) = send(&app, &key, &numbered(3)).await;
        if status == 200 {
            assert!(body.is_some(), "ended cleanly once committed");
            break;
        }
        assert_eq!(status, 503, "{body:?}");
        assert!(Instant::now() < deadline, "still refused after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = trail_until(&app, "the queued events", |rows| {
        rows.iter()
            .any(|r| r.event.reason.as_deref() == Some("audit_unavailable"))
            && rows
                .iter()
                .filter(|r| r.event.tool.as_deref() == Some("echo") && r.event.status == 200)
                .count()
                >= 2
    })
    .await;
    let report = chain::verify(&*app.store, &app.keyring).await.unwrap();
    assert!(
        report.is_intact(),
        "{:?} ({} rows)",
        report.problems,
        rows.len()
    );
}
