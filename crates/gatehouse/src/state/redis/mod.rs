//! Runtime state in Redis, shared by every replica (docs/adr/0005-cluster-mode.md, section 3).
//! One file per trait; atomic operations are Lua scripts (`scripts/`), run where the data is.

pub mod counters;
pub mod feed;
pub mod health;
pub mod link;
pub mod pins;
pub mod replay;
pub mod sessions;
pub mod tasks;

pub use counters::RedisCounters;
pub use feed::{RedisAnnouncer, RedisFeed};
pub use link::RedisLink;
pub use pins::RedisPinHolds;
pub use replay::RedisReplay;
pub use sessions::RedisSessions;
pub use tasks::RedisTaskOwners;

use std::sync::Arc;

use crate::{
    config::{Config, RedisConfig},
    state::{RuntimeState, StateError},
    store::DynStore,
};

/// Every runtime-state backend in the Redis `redis` names, sharing one link.
pub fn runtime(
    config: &Config,
    redis: &RedisConfig,
    store: &DynStore,
) -> Result<RuntimeState, StateError> {
    let link = RedisLink::open(redis)?;
    let live_replicas = Arc::new(std::sync::atomic::AtomicUsize::new(1));
    count_live_replicas(store.clone(), Arc::downgrade(&live_replicas));
    let pins = RedisPinHolds::new(link.clone(), feed::events_channel(&redis.key_prefix));
    let idle_ms =
        i64::try_from(config.gateway.session_idle_timeout.as_millis()).unwrap_or(i64::MAX);
    Ok(RuntimeState {
        counters: Arc::new(RedisCounters::new(
            link.clone(),
            counters::Outage {
                on_outage: redis.on_outage,
                live_replicas,
            },
        )),
        sessions: Arc::new(RedisSessions::new(
            link.clone(),
            config.gateway.max_sessions_per_owner,
            idle_ms,
        )),
        tasks: Arc::new(RedisTaskOwners::new(link.clone())),
        client_assertions: Arc::new(RedisReplay::new(link.clone(), replay::ASSERTIONS)),
        dpop_proofs: Arc::new(RedisReplay::new(link.clone(), replay::DPOP_PROOFS)),
        changes: Arc::new(RedisFeed::start(
            redis,
            link.clone(),
            store.clone(),
            config.snapshot.poll_interval,
            Some(pins.clone()),
        )),
        pins,
        backends: vec![Arc::new(health::RedisCheck::new(
            link.clone(),
            redis.on_outage,
        ))],
        // Per replica for now: each replica fetches its own client-credentials token, which
        // costs one token request per replica and lifetime, not correctness.
        upstream_tokens: Arc::new(crate::state::memory::MemoryUpstreamTokens::default()),
    })
}

/// Keeps `live` at the number of replicas with a fresh heartbeat (the last known while the
/// store does not answer), for the share each counts at while Redis is down.
fn count_live_replicas(store: DynStore, live: std::sync::Weak<std::sync::atomic::AtomicUsize>) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            ticker.tick().await;
            let Some(live) = live.upgrade() else {
                return;
            };
            if let Ok(beats) = store.list_replicas().await {
                let now = crate::now_ms();
                let count = beats
                    .iter()
                    .filter(|beat| crate::replicas::is_live(beat, now))
                    .count();
                live.store(count.max(1), std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
}
