//! One heartbeat row per serving process (replica), so a change can be waited on until every
//! live replica has applied it, not just the one that reported last.

use serde::{Deserialize, Serialize};

use super::Generation;

/// What one replica last reported about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaHeartbeat {
    pub replica_id: String,
    /// The generation of the snapshot it serves.
    pub applied_generation: Generation,
    /// When it last reported, by its own clock.
    pub heartbeat_ms: i64,
    pub started_ms: i64,
    /// The Gatehouse version it runs.
    pub version: String,
    /// The address its HTTP listener is bound to.
    pub listen: String,
}
