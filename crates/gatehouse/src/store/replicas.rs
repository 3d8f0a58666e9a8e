//! One heartbeat row per serving process (replica), so a change can be waited on until every
//! live replica has applied it, not just the one that reported last.

use async_trait::async_trait;

use super::StoreResult;
use gatehouse_model::records::ReplicaHeartbeat;

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
