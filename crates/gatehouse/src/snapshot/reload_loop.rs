//! The background task that keeps a replica's snapshot current: it rebuilds when the change
//! feed reports a new generation, writes this replica's heartbeat row (so the CLI can wait
//! until every live replica has applied a change), records the reload report, and writes key
//! usage back. On shutdown it flushes usage and removes its heartbeat row.

use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::SnapshotHandle;
use crate::{
    change_feed::ChangeFeed,
    metrics::SnapshotMetrics,
    replicas::{FORGET_AFTER_MS, HEARTBEAT_INTERVAL, Replica},
    store::StoreResult,
};
use gatehouse_model::records::{Generation, ReloadReport};

/// What this replica last wrote to the store, so unchanged facts are not written again.
#[derive(Default)]
struct Reported {
    generation: Option<Generation>,
    reload: Option<ReloadReport>,
}

impl SnapshotHandle {
    /// Runs until `shutdown`; see the module comment.
    pub async fn run(
        &self,
        feed: &dyn ChangeFeed,
        replica: &Replica,
        usage_flush: Duration,
        metrics: Option<&SnapshotMetrics>,
        shutdown: CancellationToken,
    ) {
        let forget_before = crate::now_ms() - FORGET_AFTER_MS;
        if let Err(err) = self.store.forget_replicas_before(forget_before).await {
            tracing::warn!(error = %err, "could not remove long-silent replica rows");
        }
        // The first tick is immediate: the replica announces itself as soon as it runs.
        let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The configuration refuses zero; a library caller passing it must not stop the loop
        // (a zero period panics).
        let usage_flush = usage_flush.max(Duration::from_millis(1));
        let mut flush = tokio::time::interval_at(Instant::now() + usage_flush, usage_flush);
        flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut reported = Reported::default();
        // Kept across heartbeats rather than restarted by them: a slow feed must still finish.
        let mut change = feed.next_change(self.current().generation);
        loop {
            tokio::select! {
                changed = &mut change => {
                    self.apply_change(changed, metrics).await;
                    change = feed.next_change(self.current().generation);
                    self.report_progress(replica, &mut reported, false).await;
                }
                _ = heartbeat.tick() => self.report_progress(replica, &mut reported, true).await,
                _ = flush.tick() => self.flush_usage().await,
                () = shutdown.cancelled() => break,
            }
        }
        self.flush_usage().await;
        if let Err(err) = self.store.remove_replica(replica.id()).await {
            tracing::warn!(error = %err, "could not remove this replica's heartbeat row");
        }
    }

    async fn apply_change(
        &self,
        changed: StoreResult<Generation>,
        metrics: Option<&SnapshotMetrics>,
    ) {
        match changed {
            // An explicit reload may have got there first.
            Ok(generation) if generation != self.current().generation => {
                let started = std::time::Instant::now();
                let reloaded = self.reload().await;
                if let Some(metrics) = metrics {
                    metrics.reload_duration.observe(started.elapsed());
                    if reloaded.is_err() {
                        metrics.reload_errors.inc();
                    }
                }
                match reloaded {
                    Ok(generation) => {
                        *self.reload_error.lock() = None;
                        tracing::info!(generation, "configuration reloaded");
                    }
                    Err(err) => {
                        *self.reload_error.lock() = Some(err.to_string());
                        tracing::error!(error = %err, "reload failed; keeping the previous configuration")
                    }
                }
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "could not read the store generation"),
        }
    }

    /// Writes the reload report when it changed, and the heartbeat when the applied generation
    /// moved or `beat` asks for the periodic one.
    async fn report_progress(&self, replica: &Replica, reported: &mut Reported, beat: bool) {
        let report = self.report();
        if reported.reload.as_ref() != Some(&report) {
            match self.store.report_reload(&report).await {
                Ok(()) => reported.reload = Some(report),
                Err(err) => tracing::warn!(error = %err, "could not record the reload report"),
            }
        }
        let applied = self.current().generation;
        if beat || reported.generation != Some(applied) {
            let row = replica.heartbeat(applied, crate::now_ms());
            match self.store.report_replica(&row).await {
                Ok(()) => reported.generation = Some(applied),
                Err(err) => tracing::warn!(error = %err, "could not write the heartbeat"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        secrets::Keyring,
        store::{DynStore, SqliteStore},
    };
    use async_trait::async_trait;
    use gatehouse_model::records::ClientRecord;
    use std::sync::Arc;
    use tokio::sync::{Mutex, mpsc};

    /// A feed the test drives: each generation sent is one change notification.
    struct ChannelFeed(Mutex<mpsc::UnboundedReceiver<Generation>>);

    #[async_trait]
    impl ChangeFeed for ChannelFeed {
        async fn next_change(&self, _seen: Generation) -> StoreResult<Generation> {
            match self.0.lock().await.recv().await {
                Some(generation) => Ok(generation),
                None => std::future::pending().await,
            }
        }
    }

    async fn applied_by(store: &DynStore, id: &str, generation: Generation) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let rows = store.list_replicas().await.unwrap();
            if rows
                .iter()
                .any(|r| r.replica_id == id && r.applied_generation >= generation)
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "replica {id} did not report generation {generation} within 10 s: {rows:?}"
            );
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn the_loop_rebuilds_on_a_feed_notification_reports_it_and_leaves_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/g.db", dir.path().display());
        let store: DynStore = Arc::new(SqliteStore::open(&url).await.unwrap());
        let keyring = Arc::new(Keyring::load_or_create(dir.path()).unwrap());
        let handle = Arc::new(
            SnapshotHandle::load(store.clone(), keyring, "http://127.0.0.1:1".into())
                .await
                .unwrap(),
        );
        let start = handle.current().generation;
        let (notify, feed) = mpsc::unbounded_channel();
        let feed = ChannelFeed(Mutex::new(feed));
        let replica = Replica::new(Some("solo"), "127.0.0.1:1".parse().unwrap()).unwrap();
        let stop = CancellationToken::new();
        let running = {
            let (handle, stop) = (handle.clone(), stop.clone());
            tokio::spawn(async move {
                handle
                    .run(&feed, &replica, Duration::from_secs(3_600), None, stop)
                    .await
            })
        };
        applied_by(&store, "solo", start).await;

        let changed = store
            .insert_client(&ClientRecord {
                name: "agent".into(),
                description: String::new(),
                disabled_at: None,
                created_at: 0,
                oauth: None,
            })
            .await
            .unwrap();
        assert_eq!(
            handle.current().generation,
            start,
            "nothing polls behind the feed"
        );
        notify.send(changed).unwrap();
        applied_by(&store, "solo", changed).await;
        assert_eq!(handle.current().generation, changed);
        assert!(handle.current().clients.contains_key("agent"));

        stop.cancel();
        running.await.unwrap();
        assert!(
            store.list_replicas().await.unwrap().is_empty(),
            "a graceful stop removes the heartbeat row"
        );
    }
}
