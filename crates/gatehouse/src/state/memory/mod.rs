//! The in-memory implementations of the [`crate::state`] traits: what a single Gatehouse
//! process uses.

pub mod counters;
pub mod pins;
pub mod replay;
pub mod sessions;
pub mod tasks;

pub use counters::{MemoryCounters, MemoryQuota, MemoryRate};
pub use pins::MemoryPinHolds;
pub use replay::MemoryReplay;
pub use sessions::MemorySessions;
pub use tasks::InMemoryTaskOwners;
