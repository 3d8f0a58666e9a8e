//! [`ReplicaStore`] on SQLite.

use async_trait::async_trait;
use sqlx::{Row, sqlite::SqliteRow};

use super::SqliteStore;
use crate::store::{
    StoreResult,
    replicas::{ReplicaHeartbeat, ReplicaStore},
};

fn replica_from(row: &SqliteRow) -> StoreResult<ReplicaHeartbeat> {
    Ok(ReplicaHeartbeat {
        replica_id: row.try_get("replica_id")?,
        applied_generation: row.try_get("applied_generation")?,
        heartbeat_ms: row.try_get("heartbeat_ms")?,
        started_ms: row.try_get("started_ms")?,
        version: row.try_get("version")?,
        listen: row.try_get("listen")?,
    })
}

#[async_trait]
impl ReplicaStore for SqliteStore {
    async fn report_replica(&self, beat: &ReplicaHeartbeat) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO replicas (replica_id, applied_generation, heartbeat_ms, started_ms, \
             version, listen) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (replica_id) DO UPDATE SET \
             applied_generation = excluded.applied_generation, \
             heartbeat_ms = excluded.heartbeat_ms, started_ms = excluded.started_ms, \
             version = excluded.version, listen = excluded.listen",
        )
        .bind(&beat.replica_id)
        .bind(beat.applied_generation)
        .bind(beat.heartbeat_ms)
        .bind(beat.started_ms)
        .bind(&beat.version)
        .bind(&beat.listen)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn remove_replica(&self, replica_id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM replicas WHERE replica_id = $1")
            .bind(replica_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_replicas(&self) -> StoreResult<Vec<ReplicaHeartbeat>> {
        let rows = sqlx::query("SELECT * FROM replicas ORDER BY replica_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(replica_from).collect()
    }

    async fn forget_replicas_before(&self, before_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM replicas WHERE heartbeat_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
