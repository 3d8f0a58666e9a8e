//! Redis behind Sentinel: the replicas find the master through the sentinel and follow a
//! failover by asking again once the old master refuses them.

use gatehouse::config::OnOutage;
use gatehouse_testkit::redis::SentinelTrio;
use serde_json::json;
use std::time::{Duration, Instant};

use crate::{cluster::TestCluster, helpers::call, scripted_upstream::Upstream};

#[tokio::test]
async fn a_cluster_on_sentinel_follows_a_failover() {
    let trio = SentinelTrio::start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !trio.replica_known() {
        assert!(
            Instant::now() < deadline,
            "the sentinel never saw the replica"
        );
        tokio::task::yield_now().await;
    }
    let upstream = Upstream::start().await;
    let sentinel = trio.sentinel_addr();
    let cluster = TestCluster::start_on(None, String::new(), move |config| {
        if let Some(redis) = config.redis.as_mut() {
            redis.url = None;
            redis.sentinels = vec![sentinel.clone()];
            redis.master_name = Some(SentinelTrio::MASTER_NAME.into());
            // A refusal, not a local count, shows when the master cannot be written.
            redis.on_outage = OnOutage::Closed;
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
            json!({ "requests": 100, "period": "1h", "burst": 100 }),
            (None, None, Some("echo")),
        )
        .await;
    cluster.reload().await;
    let status = |n: usize| {
        let request = cluster.replicas[n].post("demo", Some(&key), &call("echo"));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    for n in 0..3 {
        assert_eq!(
            status(n).await,
            200,
            "replica {n} through the sentinel's master"
        );
    }

    // Blocks this test briefly (the replicas are idle meanwhile), as `cli` does.
    let answer = trio.fail_over(deadline).unwrap();
    assert_eq!(answer, "OK");
    while trio.master_port().unwrap() != trio.replica.port() {
        assert!(Instant::now() < deadline, "the failover never completed");
        tokio::task::yield_now().await;
    }
    // Once the old master follows the new one it refuses writes (READONLY); each replica
    // then asks the sentinel again and counts on the new master.
    while !trio
        .master
        .cli(&["ROLE"])
        .is_ok_and(|role| role.starts_with("slave"))
    {
        assert!(
            Instant::now() < deadline,
            "the old master was never demoted"
        );
        tokio::task::yield_now().await;
    }
    for n in 0..3 {
        loop {
            match status(n).await {
                200 => break,
                503 => {}
                other => panic!("replica {n}: {other}"),
            }
            assert!(
                Instant::now() < deadline,
                "replica {n} never followed the failover"
            );
            tokio::task::yield_now().await;
        }
    }
    let keys: u64 = trio.replica.cli(&["DBSIZE"]).unwrap().parse().unwrap();
    assert!(keys > 0, "the counts are on the new master");
}
