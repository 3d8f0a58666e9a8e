//! Redis stopping under a running cluster: `redis.on_outage = "closed"` refuses stateful
//! policies with 503 `state_unavailable`, `"local"` keeps counting per replica; sessions opened
//! through a replica keep working there; everything resumes by itself when Redis returns.

use gatehouse::config::OnOutage;
use gatehouse_testkit::redis::Redis;
use serde_json::json;
use std::time::{Duration, Instant};

use crate::{cluster::TestCluster, helpers::call, scripted_upstream::Upstream};

fn initialize() -> serde_json::Value {
    json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": { "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } } })
}

async fn cluster_with(on_outage: OnOutage, redis: &Redis) -> (TestCluster, String, Upstream) {
    let upstream = Upstream::start().await;
    let cluster = TestCluster::start_on(None, redis.url(), move |config| {
        if let Some(redis) = config.redis.as_mut() {
            redis.on_outage = on_outage;
        }
    })
    .await;
    let first = &cluster.replicas[0];
    first.add_server("demo", &upstream.url()).await;
    let key = first.client_with_key("alice", "demo", "*").await;
    first
        .policy(
            "hourly",
            "rate_limit",
            json!({ "requests": 6, "period": "1h", "burst": 6 }),
            // Calls of echo only: other requests need no counter.
            (None, None, Some("echo")),
        )
        .await;
    cluster.reload().await;
    (cluster, key, upstream)
}

#[tokio::test]
async fn closed_refuses_while_redis_is_down_and_resumes_when_it_returns() {
    let redis = Redis::private().unwrap();
    let (cluster, key, _upstream) = cluster_with(OnOutage::Closed, &redis).await;
    let [a, b] = [&cluster.replicas[0], &cluster.replicas[1]];
    let opened = a
        .post("demo", Some(&key), &initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 200);
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();

    redis.stop().unwrap();
    let refused = a
        .post("demo", Some(&key), &call("echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["data"]["reason"], "state_unavailable");
    // Sessions need no counter: the one opened through A goes on there, B cannot know it.
    let unlimited = json!({ "jsonrpc": "2.0", "id": 3, "method": "ping" });
    let on_a = a
        .post("demo", Some(&key), &unlimited)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(on_a.status(), 200, "continued through A");
    let on_b = b
        .post("demo", Some(&key), &unlimited)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(on_b.status(), 404, "B re-initialises");

    redis.start_again().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = a
            .post("demo", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(
            Instant::now() < deadline,
            "Redis came back, the limit did not"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn local_counts_per_replica_while_redis_is_down() {
    let redis = Redis::private().unwrap();
    let (cluster, key, _upstream) = cluster_with(OnOutage::Local, &redis).await;
    let a = &cluster.replicas[0];
    redis.stop().unwrap();
    let mut admitted = 0;
    loop {
        let status = a
            .post("demo", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap()
            .status();
        match status.as_u16() {
            200 => admitted += 1,
            429 => break,
            other => panic!("status {other} while counting locally"),
        }
        assert!(admitted <= 6, "more than the whole limit on one replica");
    }
    // Its share (2 of 6 with three live replicas), or the whole limit if it had not yet seen
    // the others' heartbeats.
    assert!(admitted >= 2, "{admitted} admitted");
}

#[tokio::test]
async fn a_session_opened_during_an_outage_reaches_the_others_once_redis_returns() {
    let redis = Redis::private().unwrap();
    let (cluster, key, _upstream) = cluster_with(OnOutage::Local, &redis).await;
    let [a, b] = [&cluster.replicas[0], &cluster.replicas[1]];
    redis.stop().unwrap();
    let opened = a
        .post("demo", Some(&key), &initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 200, "opened with Redis down");
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let ping = json!({ "jsonrpc": "2.0", "id": 3, "method": "ping" });
    let through = |replica: &crate::helpers::TestApp| {
        let request = replica
            .post("demo", Some(&key), &ping)
            .header("mcp-session-id", &session);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(through(b).await, 404, "only A knows it while Redis is down");

    redis.start_again().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // A keeps using it; once Redis answers again, A writes the binding there.
        assert_eq!(through(a).await, 200);
        if through(b).await == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "B never learnt the session");
        tokio::task::yield_now().await;
    }
}
