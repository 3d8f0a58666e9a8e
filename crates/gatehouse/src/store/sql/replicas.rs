//! [`ReplicaStore`] on every SQL backend.

use async_trait::async_trait;

use super::Columns;
use super::backend::{SqlBackend, query};
use super::records::SqlStore;
use crate::store::{StoreResult, replicas::ReplicaStore};
use gatehouse_model::records::ReplicaHeartbeat;

fn replica_from(row: &impl Columns) -> StoreResult<ReplicaHeartbeat> {
    Ok(ReplicaHeartbeat {
        replica_id: row.text("replica_id")?,
        applied_generation: row.int("applied_generation")?,
        heartbeat_ms: row.int("heartbeat_ms")?,
        started_ms: row.int("started_ms")?,
        version: row.text("version")?,
        listen: row.text("listen")?,
    })
}

#[async_trait]
impl<B: SqlBackend> ReplicaStore for SqlStore<B> {
    async fn report_replica(&self, beat: &ReplicaHeartbeat) -> StoreResult<()> {
        query(
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
        .execute(&mut *self.b.acquire().await?)
        .await?;
        Ok(())
    }

    async fn remove_replica(&self, replica_id: &str) -> StoreResult<()> {
        query("DELETE FROM replicas WHERE replica_id = $1")
            .bind(replica_id)
            .execute(&mut *self.b.acquire().await?)
            .await?;
        Ok(())
    }

    async fn list_replicas(&self) -> StoreResult<Vec<ReplicaHeartbeat>> {
        let rows = query("SELECT * FROM replicas ORDER BY replica_id")
            .fetch_all(&mut *self.b.acquire().await?)
            .await?;
        rows.iter().map(replica_from).collect()
    }

    async fn forget_replicas_before(&self, before_ms: i64) -> StoreResult<u64> {
        let done = query("DELETE FROM replicas WHERE heartbeat_ms < $1")
            .bind(before_ms)
            .execute(&mut *self.b.acquire().await?)
            .await?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(id: &str, applied: i64, heartbeat_ms: i64) -> ReplicaHeartbeat {
        ReplicaHeartbeat {
            replica_id: id.into(),
            applied_generation: applied,
            heartbeat_ms,
            started_ms: 1,
            version: "v".into(),
            listen: "127.0.0.1:1".into(),
        }
    }

    #[tokio::test]
    async fn one_row_per_replica_replaced_removed_and_forgotten_when_silent() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/r.db", dir.path().display());
        let store = crate::store::SqliteStore::open(&url).await.unwrap();
        store.report_replica(&beat("b", 1, 100)).await.unwrap();
        store.report_replica(&beat("a", 1, 100)).await.unwrap();
        store.report_replica(&beat("a", 5, 900)).await.unwrap();
        assert_eq!(
            store.list_replicas().await.unwrap(),
            [beat("a", 5, 900), beat("b", 1, 100)],
            "a's second report replaced its first"
        );

        assert_eq!(store.forget_replicas_before(900).await.unwrap(), 1);
        assert_eq!(store.list_replicas().await.unwrap(), [beat("a", 5, 900)]);
        store.remove_replica("a").await.unwrap();
        assert!(store.list_replicas().await.unwrap().is_empty());
    }
}
