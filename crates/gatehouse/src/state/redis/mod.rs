//! Runtime state in Redis, shared by every replica (docs/adr/0005-cluster-mode.md, section 3).
//! One file per trait; atomic operations are Lua scripts (`scripts/`), run where the data is.

pub mod counters;
pub mod feed;
pub mod link;
pub mod replay;
pub mod sessions;
pub mod tasks;

pub use counters::RedisCounters;
pub use feed::{RedisAnnouncer, RedisFeed};
pub use link::RedisLink;
pub use replay::RedisReplay;
pub use sessions::RedisSessions;
pub use tasks::RedisTaskOwners;
