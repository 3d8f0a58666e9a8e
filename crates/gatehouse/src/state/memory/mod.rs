//! The in-memory implementations of the [`crate::state`] traits: what a single Gatehouse
//! process uses.

pub mod counters;
pub mod event_streams;
pub mod pins;
pub mod replay;
pub mod sessions;
pub mod tasks;
pub mod upstream_tokens;

pub use counters::{MemoryCounters, MemoryQuota, MemoryRate};
pub use event_streams::MemoryEventStreams;
pub use pins::MemoryPinHolds;
pub use replay::MemoryReplay;
pub use sessions::MemorySessions;
pub use tasks::InMemoryTaskOwners;
pub use upstream_tokens::MemoryUpstreamTokens;
