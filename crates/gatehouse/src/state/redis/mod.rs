//! Runtime state in Redis, shared by every replica (docs/adr/0005-cluster-mode.md, section 3).
//! One file per trait; atomic operations are Lua scripts (`scripts/`), run where the data is.

pub mod counters;
pub mod feed;
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
    let link = Arc::new(RedisLink::open(redis)?);
    let pins = RedisPinHolds::new(link.clone(), feed::events_channel(&redis.key_prefix));
    let idle_ms =
        i64::try_from(config.gateway.session_idle_timeout.as_millis()).unwrap_or(i64::MAX);
    Ok(RuntimeState {
        counters: Arc::new(RedisCounters::new(link.clone())),
        sessions: Arc::new(RedisSessions::new(
            link.clone(),
            config.gateway.max_sessions_per_owner,
            idle_ms,
        )),
        tasks: Arc::new(RedisTaskOwners::new(link.clone())),
        client_assertions: Arc::new(RedisReplay::new(link)),
        changes: Arc::new(RedisFeed::start(
            redis,
            store.clone(),
            config.snapshot.poll_interval,
            Some(pins.clone()),
        )?),
        pins,
    })
}
