//! Counters shared through Redis: a limit holds across replicas, as if one process counted,
//! and Redis's GCRA script is `Gcra::step` exactly.

use futures_util::future::join_all;
use gatehouse::{
    config::RedisConfig,
    state::{CounterScope, Denied, Gcra, Subject, redis},
};
use gatehouse_testkit::redis::Redis;
use proptest::prelude::*;
use serde_json::json;
use std::{
    sync::{Arc, LazyLock},
    time::Instant,
};

use crate::{cluster::TestCluster, helpers::call, scripted_upstream::Upstream};

#[tokio::test]
async fn a_rate_limit_across_three_replicas_admits_what_one_would() {
    const N: u32 = 30;
    let upstream = Upstream::start().await;
    let cluster = TestCluster::start(None).await;
    let first = &cluster.replicas[0];
    first.add_server("demo", &upstream.url()).await;
    let key = first.client_with_key("alice", "demo", "*").await;
    first
        .policy(
            "per-minute",
            "rate_limit",
            json!({ "requests": N, "period": "1m", "burst": N }),
            (None, None, None),
        )
        .await;
    cluster.reload().await;
    let started = Instant::now();
    let requests = (0..3 * N as usize).map(|n| {
        let replica = &cluster.replicas[n % 3];
        let key = key.clone();
        async move {
            replica
                .post("demo", Some(&key), &call("echo"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = join_all(requests).await;
    let elapsed = started.elapsed();
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(admitted + refused, statuses.len(), "{statuses:?}");
    // The burst, plus one per interval (2 s) that passed while the requests ran.
    let refilled = (elapsed.as_secs() / 2) as usize;
    assert!(
        (N as usize..=N as usize + refilled).contains(&admitted),
        "{admitted} admitted of {} across three replicas, limit {N} (+{refilled} refilled)",
        statuses.len()
    );
}

#[tokio::test]
async fn a_quota_across_replicas_counts_once_and_refunds() {
    let upstream = Upstream::start().await;
    let cluster = TestCluster::start(None).await;
    let first = &cluster.replicas[0];
    first.add_server("demo", &upstream.url()).await;
    let key = first.client_with_key("alice", "demo", "*").await;
    first
        .policy(
            "daily",
            "quota",
            json!({ "limit": 4, "window": "day" }),
            (None, None, None),
        )
        .await;
    // A rate limit after the quota refuses the fourth call: the quota gives it back.
    first
        .policy(
            "slow",
            "rate_limit",
            json!({ "requests": 3, "period": "1h", "burst": 3 }),
            (None, None, None),
        )
        .await;
    cluster.reload().await;
    let mut statuses = Vec::new();
    for n in 0..4 {
        let replica = &cluster.replicas[n % 3];
        let response = replica
            .post("demo", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429], "the rate limit's refusal");
    first.store.delete_policy("slow").await.unwrap();
    cluster.reload().await;
    let mut more = Vec::new();
    for n in 0..3 {
        let response = cluster.replicas[n % 3]
            .post("demo", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap();
        more.push(response.status().as_u16());
    }
    assert_eq!(
        more,
        [200, 429, 429],
        "3 of 4 counted across replicas, the refused call given back"
    );
}

/// One link for the property test, on a runtime of its own (a connection belongs to the
/// runtime that made it).
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
});
static COUNTERS: LazyLock<redis::RedisCounters> = LazyLock::new(|| {
    let config = RedisConfig {
        url: Some(Redis::shared().url()),
        key_prefix: format!("p{}:", gatehouse::secrets::random_id(8).unwrap()),
        ..RedisConfig::default()
    };
    let _guard = RUNTIME.enter();
    redis::RedisCounters::new(
        redis::RedisLink::open(&config).unwrap(),
        redis::counters::Outage {
            on_outage: gatehouse::config::OnOutage::Closed,
            live_replicas: Arc::default(),
        },
    )
});

#[derive(Debug)]
struct Named(String);

impl gatehouse::state::CounterSubject for Named {
    fn key(&self) -> gatehouse::state::SubjectKey {
        gatehouse::state::SubjectKey::of_text(&self.0)
    }

    fn text(&self) -> String {
        self.0.clone()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Intervals of at least a second keep the cells alive in Redis's real time while the
    /// steps run at the given instants.
    #[test]
    fn the_gcra_script_answers_as_gcra_step(
        interval_us in 1_000_000i64..60_000_000,
        burst in 1i64..8,
        steps in proptest::collection::vec((0i64..120_000_000, any::<bool>()), 1..24),
        case in any::<u64>(),
    ) {
        let gcra = Gcra {
            interval_ns: i128::from(interval_us) * 1_000,
            tolerance_ns: i128::from(interval_us * burst) * 1_000,
        };
        let cells = COUNTERS.rate_cells(CounterScope { policy_id: "prop", spec: "{}" });
        let subject = Named(format!("case-{case}-{}", gatehouse::secrets::random_id(6).unwrap()));
        let mut now_us = 1_700_000_000_000_000i64;
        let mut tat: Option<i128> = None;
        for (gap, charge) in steps {
            now_us += gap % (3 * interval_us);
            let now_ns = i128::from(now_us) * 1_000;
            let expected = match gcra.step(tat, now_ns) {
                Ok(next) => {
                    if charge {
                        tat = Some(next);
                    }
                    Ok(())
                }
                Err(wait) => Err(Denied::Wait(wait)),
            };
            let answered = RUNTIME.block_on(cells.take_at(
                Subject::new(&subject),
                gcra,
                Some(now_us),
                charge,
            ));
            prop_assert_eq!(answered, expected, "at {} charge {}", now_us, charge);
        }
    }
}
