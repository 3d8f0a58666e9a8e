//! One heartbeat row per serving process (replica), so a change can be waited on until every
//! live replica has applied it, not just the one that reported last.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Generation, StoreResult};

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

#[async_trait]
pub trait ReplicaStore: Send + Sync + 'static {
    /// Creates or replaces the replica's row.
    async fn report_replica(&self, heartbeat: &ReplicaHeartbeat) -> StoreResult<()>;
    /// Removes the replica's row (a graceful shutdown), so nobody waits for it.
    async fn remove_replica(&self, replica_id: &str) -> StoreResult<()>;
    /// Every row, live or not, ordered by replica id.
    async fn list_replicas(&self) -> StoreResult<Vec<ReplicaHeartbeat>>;
    /// Removes rows whose last heartbeat is older than `before_ms` (a crashed replica never
    /// removes its own); returns how many.
    async fn forget_replicas_before(&self, before_ms: i64) -> StoreResult<u64>;
}
