//! Replicas: every serving process has an id and writes its own heartbeat row (the generation
//! it applied, when). After a change, the CLI asks [`wait_until_applied`] whether every live
//! replica has applied it; one that stopped reporting is ignored, and said to be.

use serde::Serialize;
use std::{net::SocketAddr, time::Duration};

use crate::store::{ReplicaStore, StoreResult};
use gatehouse_model::{
    names::{InvalidValue, ReplicaId},
    records::{Generation, ReplicaHeartbeat},
};

/// How often a replica reports, whether or not anything changed.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// A heartbeat older than this (three missed beats) means the replica is gone: crashed, or
/// cut off from the store, and either way no longer the one to wait for.
pub const LIVE_WITHIN_MS: i64 = 3_000;
/// Rows silent this long are removed when a replica starts: a crashed replica's row is kept
/// for a day so `gatehouse status` can still say it stopped without saying goodbye.
pub const FORGET_AFTER_MS: i64 = 24 * 3_600 * 1_000;
/// Between two looks at the heartbeat rows while waiting.
const WAIT_STEP: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("{0}")]
    InvalidId(#[from] InvalidValue),
    #[error(
        "replica_id {0:?} is in use by another running Gatehouse (its heartbeat is fresh); \
         give each replica its own replica_id, or none for a random one"
    )]
    InUse(String),
    #[error("replica id: {0}")]
    Random(#[from] crate::secrets::SecretError),
    #[error("replica heartbeats: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// This process, as its heartbeat row describes it.
#[derive(Debug, Clone)]
pub struct Replica {
    id: String,
    started_ms: i64,
    listen: String,
}

impl Replica {
    /// `configured` is `replica_id` from the configuration; without it the id is random, so
    /// two processes never share a row by accident.
    pub fn new(configured: Option<&str>, listen: SocketAddr) -> Result<Self, ReplicaError> {
        let id = match configured {
            Some(id) => ReplicaId::parse(id)?.into_string(),
            None => crate::secrets::random_id(12)?,
        };
        Ok(Self {
            id,
            started_ms: crate::now_ms(),
            listen: listen.to_string(),
        })
    }

    /// The address the listener was actually bound to (port 0 picks one).
    pub fn bound_to(mut self, listen: SocketAddr) -> Self {
        self.listen = listen.to_string();
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn heartbeat(&self, applied_generation: Generation, now_ms: i64) -> ReplicaHeartbeat {
        ReplicaHeartbeat {
            replica_id: self.id.clone(),
            applied_generation,
            heartbeat_ms: now_ms,
            started_ms: self.started_ms,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            listen: self.listen.clone(),
        }
    }

    /// Claims the id and writes a first row with generation 0, before the snapshot is
    /// loaded: a change stored from then on is waited for until this replica reports it, and
    /// one stored earlier is in the snapshot it loads. Without it, a change made while the
    /// replica starts could be reported applied everywhere while it serves the older state.
    pub async fn announce(&self, store: &dyn ReplicaStore) -> Result<(), ReplicaError> {
        self.claim(store).await?;
        store
            .report_replica(&self.heartbeat(0, crate::now_ms()))
            .await?;
        Ok(())
    }

    /// Refuses an id another live process reports under: two writers of one row would make
    /// "applied everywhere" depend on which wrote last. A row left by a process that just
    /// crashed goes stale within [`LIVE_WITHIN_MS`], so a restart waits that long first.
    async fn claim(&self, store: &dyn ReplicaStore) -> Result<(), ReplicaError> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(LIVE_WITHIN_MS as u64) + WAIT_STEP;
        loop {
            let now = crate::now_ms();
            let taken = store.list_replicas().await?.into_iter().any(|row| {
                row.replica_id == self.id && row.started_ms != self.started_ms && is_live(&row, now)
            });
            if !taken {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ReplicaError::InUse(self.id.clone()));
            }
            tokio::time::sleep(WAIT_STEP).await;
        }
    }
}

/// Whether the replica reported recently enough to count as running.
pub fn is_live(beat: &ReplicaHeartbeat, now_ms: i64) -> bool {
    now_ms - beat.heartbeat_ms < LIVE_WITHIN_MS
}

/// Where the replicas stand with respect to one generation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Live and serving that generation or a later one.
    pub applied: Vec<ReplicaHeartbeat>,
    /// Live and still serving an older one.
    pub behind: Vec<ReplicaHeartbeat>,
    /// Silent for [`LIVE_WITHIN_MS`] or more: not waited for.
    pub stale: Vec<ReplicaHeartbeat>,
}

impl Progress {
    pub fn of(replicas: Vec<ReplicaHeartbeat>, generation: Generation, now_ms: i64) -> Self {
        let mut progress = Progress::default();
        for replica in replicas {
            let bucket = if !is_live(&replica, now_ms) {
                &mut progress.stale
            } else if replica.applied_generation >= generation {
                &mut progress.applied
            } else {
                &mut progress.behind
            };
            bucket.push(replica);
        }
        progress
    }

    /// Every live replica serves the generation (true, too, when none is running).
    pub fn complete(&self) -> bool {
        self.behind.is_empty()
    }
}

/// Looks at the heartbeat rows until every live replica has applied `generation`, or
/// `timeout` has passed; returns where they stand at that moment.
pub async fn wait_until_applied(
    store: &dyn ReplicaStore,
    generation: Generation,
    timeout: Duration,
) -> StoreResult<Progress> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let progress = Progress::of(store.list_replicas().await?, generation, crate::now_ms());
        if progress.complete() || tokio::time::Instant::now() >= deadline {
            return Ok(progress);
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, applied: Generation, heartbeat_ms: i64) -> ReplicaHeartbeat {
        ReplicaHeartbeat {
            replica_id: id.into(),
            applied_generation: applied,
            heartbeat_ms,
            started_ms: 0,
            version: "test".into(),
            listen: "127.0.0.1:1".into(),
        }
    }

    fn ids(rows: &[ReplicaHeartbeat]) -> Vec<&str> {
        rows.iter().map(|r| r.replica_id.as_str()).collect()
    }

    #[test]
    fn a_change_is_complete_only_when_every_live_replica_has_applied_it() {
        let now = 100_000;
        let rows = vec![row("a", 7, now - 500), row("b", 6, now - 100)];
        let progress = Progress::of(rows.clone(), 7, now);
        assert!(!progress.complete(), "b still serves 6");
        assert_eq!(ids(&progress.applied), ["a"]);
        assert_eq!(ids(&progress.behind), ["b"]);
        assert!(Progress::of(rows, 6, now).complete());
    }

    #[test]
    fn stale_replicas_are_set_apart_not_waited_for() {
        let now = 100_000;
        let rows = vec![
            row("gone", 1, now - LIVE_WITHIN_MS),
            row("live", 9, now - LIVE_WITHIN_MS + 1),
        ];
        let progress = Progress::of(rows, 9, now);
        assert!(progress.complete());
        assert_eq!(ids(&progress.stale), ["gone"]);
        assert_eq!(ids(&progress.applied), ["live"]);
    }

    #[test]
    fn no_replica_at_all_is_complete_and_says_nothing_applied() {
        let progress = Progress::of(Vec::new(), 3, 1);
        assert!(progress.complete());
        assert!(progress.applied.is_empty() && progress.stale.is_empty());
    }

    #[test]
    fn configured_ids_are_checked_and_random_ones_differ() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 8080));
        assert_eq!(
            Replica::new(Some("gw-1.eu_west"), addr).unwrap().id(),
            "gw-1.eu_west"
        );
        for bad in ["", "a b", "x/y", &"a".repeat(65)] {
            assert!(
                matches!(
                    Replica::new(Some(bad), addr),
                    Err(ReplicaError::InvalidId(_))
                ),
                "{bad:?} accepted"
            );
        }
        let one = Replica::new(None, addr).unwrap();
        let two = Replica::new(None, addr).unwrap();
        assert_ne!(one.id(), two.id());
        ReplicaId::parse(one.id()).unwrap();
    }

    #[test]
    fn the_heartbeat_names_the_replica_and_what_it_applied() {
        let replica = Replica::new(Some("gw"), SocketAddr::from(([10, 0, 0, 1], 9000))).unwrap();
        let beat = replica.heartbeat(12, 5_000);
        assert_eq!(beat.replica_id, "gw");
        assert_eq!(beat.applied_generation, 12);
        assert_eq!(beat.heartbeat_ms, 5_000);
        assert_eq!(beat.listen, "10.0.0.1:9000");
        assert_eq!(beat.version, env!("CARGO_PKG_VERSION"));
    }
}
