//! Redis in `/readyz` and `/metrics`: a line `redis: ok` or `redis: unreachable for Ns; …`,
//! and `gatehouse_backend_up{backend="redis"}`. With `redis.on_outage = "closed"` an outage
//! makes the replica unready (503); with `"local"` it stays in the load balancer.

use gatehouse::config::OnOutage;
use gatehouse_testkit::redis::Redis;
use std::time::{Duration, Instant};

use crate::{cluster::TestCluster, helpers::TestApp};

async fn cluster_with(on_outage: OnOutage, redis: &Redis) -> TestCluster {
    TestCluster::start_on(None, redis.url(), move |config| {
        config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
        if let Some(redis) = config.redis.as_mut() {
            redis.on_outage = on_outage;
        }
    })
    .await
}

async fn readyz(replica: &TestApp) -> (u16, String) {
    let response = replica
        .http
        .get(replica.url("/readyz"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn backend_up(replica: &TestApp) -> String {
    let admin = replica.server.admin_addr.unwrap();
    let text = replica
        .http
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|line| line.starts_with(r#"gatehouse_backend_up{backend="redis"}"#))
        .unwrap_or_else(|| panic!("no gatehouse_backend_up for redis in:\n{text}"))
        .to_owned()
}

/// Polls `/readyz` until its answer satisfies `done` (Redis being marked down or up again
/// takes a probe or two).
async fn readyz_until(replica: &TestApp, what: &str, done: impl Fn(u16, &str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, text) = readyz(replica).await;
        if done(status, &text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: last answer {status}\n{text}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn closed_makes_the_replica_unready_while_redis_is_down() {
    let redis = Redis::private().unwrap();
    let cluster = cluster_with(OnOutage::Closed, &redis).await;
    let a = &cluster.replicas[0];
    let (status, text) = readyz(a).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\nredis: ok\n"), "{text}");
    assert_eq!(
        backend_up(a).await,
        r#"gatehouse_backend_up{backend="redis"} 1"#
    );

    redis.stop().unwrap();
    let text = readyz_until(a, "unready with Redis down", |status, _| status == 503).await;
    assert!(text.starts_with("not ready\n"), "{text}");
    assert!(
        text.contains("redis: unreachable for ") && text.contains("s; stateful policies refused"),
        "{text}"
    );
    assert_eq!(
        backend_up(a).await,
        r#"gatehouse_backend_up{backend="redis"} 0"#
    );

    redis.start_again().unwrap();
    let text = readyz_until(a, "ready once Redis returns", |status, _| status == 200).await;
    assert!(text.contains("\nredis: ok\n"), "{text}");
    assert_eq!(
        backend_up(a).await,
        r#"gatehouse_backend_up{backend="redis"} 1"#
    );
}

#[tokio::test]
async fn local_stays_ready_and_says_it_counts_per_replica() {
    let redis = Redis::private().unwrap();
    let cluster = cluster_with(OnOutage::Local, &redis).await;
    let a = &cluster.replicas[0];
    redis.stop().unwrap();
    let text = readyz_until(a, "Redis reported down", |_, text| {
        text.contains("redis: unreachable")
    })
    .await;
    assert!(text.starts_with("ready, degraded\n"), "{text}");
    assert!(text.contains("s; counters per replica"), "{text}");
    assert_eq!(
        readyz(a).await.0,
        200,
        "degraded stays in the load balancer"
    );
    assert_eq!(
        backend_up(a).await,
        r#"gatehouse_backend_up{backend="redis"} 0"#
    );
}
