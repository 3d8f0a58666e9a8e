//! How a replica learns that the store changed. Today it polls the generation counter; a
//! PostgreSQL LISTEN/NOTIFY or Redis pub/sub feed plugs in behind the same trait, and the
//! reload loop (`snapshot::reload_loop`) does not change.

use async_trait::async_trait;
use std::time::Duration;

use crate::store::{DynStore, StoreResult};
use gatehouse_model::records::Generation;

#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// Waits until the store's generation differs from `seen` and returns it. An error comes
    /// no faster than the feed's own pace, so the caller may simply ask again.
    async fn next_change(&self, seen: Generation) -> StoreResult<Generation>;
}

/// Tells every replica that the store changed, after the change is committed, so they reload
/// at once rather than at their next poll (`[redis]`: a message on `P events`). Best effort:
/// polling underneath still carries a change whose announcement is lost.
#[async_trait]
pub trait Announce: Send + Sync {
    async fn changed(&self);
}

/// Reads the generation counter every `interval` (`snapshot.poll_interval`).
pub struct PollingFeed {
    store: DynStore,
    interval: Duration,
}

impl PollingFeed {
    pub fn new(store: DynStore, interval: Duration) -> Self {
        Self { store, interval }
    }
}

#[async_trait]
impl ChangeFeed for PollingFeed {
    async fn next_change(&self, seen: Generation) -> StoreResult<Generation> {
        loop {
            tokio::time::sleep(self.interval).await;
            let generation = self.store.generation().await?;
            if generation != seen {
                return Ok(generation);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;
    use gatehouse_model::records::ClientRecord;
    use std::sync::Arc;

    #[tokio::test]
    async fn polling_reports_the_generation_once_it_moves() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/g.db", dir.path().display());
        let store: DynStore = Arc::new(SqliteStore::open(&url).await.unwrap());
        let seen = store.generation().await.unwrap();
        let feed = PollingFeed::new(store.clone(), Duration::from_millis(5));
        let waiting = tokio::spawn(async move { feed.next_change(seen).await });
        let moved = store
            .insert_client(&ClientRecord {
                name: "agent".into(),
                description: String::new(),
                disabled_at: None,
                created_at: 0,
                oauth: None,
            })
            .await
            .unwrap();
        let reported = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the feed reported no change within 10 s")
            .unwrap()
            .unwrap();
        assert_eq!(reported, moved);
        assert_ne!(reported, seen);
    }
}
