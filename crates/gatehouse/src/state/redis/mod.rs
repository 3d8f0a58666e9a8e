//! Runtime state in Redis, shared by every replica (docs/adr/0005-cluster-mode.md, section 3).
//! One file per trait; atomic operations are Lua scripts (`scripts/`), run where the data is.

pub mod counters;
pub mod link;

pub use counters::RedisCounters;
pub use link::RedisLink;
