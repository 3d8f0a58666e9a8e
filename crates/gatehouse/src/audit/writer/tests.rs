use super::*;
use crate::{audit::chain, store::SqliteStore};
use gatehouse_model::audit::Decision;

fn event(n: u32) -> AuditEvent {
    AuditEvent {
        ts_ms: 1_750_000_000_000,
        request_id: format!("req-{n}"),
        client: Some("agent".into()),
        credential_id: None,
        user: None,
        ip: None,
        country: None,
        server: Some("demo".into()),
        http_method: "POST".into(),
        rpc_method: None,
        tool: None,
        decision: Decision::Allow,
        reason: None,
        status: 200,
        upstream_status: Some(200),
        latency_us: 1,
        outcome: None,
        response_bytes: None,
        batch: Vec::new(),
        operator: None,
        rule: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_makes_requests_wait_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    let store: DynStore = Arc::new(SqliteStore::open(&url).await.unwrap());
    let keyring = Arc::new(Keyring::from_master(&[7; 32]));
    // Room for one event: most of the 200 senders find the queue full.
    let (sink, writer) = AuditWriter::new(
        store.clone(),
        keyring.clone(),
        1,
        512,
        false,
        Duration::from_millis(5),
    );
    let stop = CancellationToken::new();
    let running = tokio::spawn(writer.run(stop.clone()));
    let mut senders = tokio::task::JoinSet::new();
    for n in 0..200 {
        let sink = sink.clone();
        senders.spawn(async move { sink.record(event(n)).await });
    }
    while let Some(sent) = senders.join_next().await {
        sent.unwrap();
    }
    stop.cancel();
    running.await.unwrap();

    let report = chain::verify(&*store, &keyring).await.unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.rows_checked, 200);
    let rows = store.audit_page(0, 1_000).await.unwrap();
    let mut ids: Vec<&str> = rows.iter().map(|r| r.event.request_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 200);
}

fn pending(n: u32) -> Pending {
    Pending {
        event: event(n),
        committed: None,
    }
}

#[tokio::test]
async fn durable_commits_a_lone_request_alone_and_groups_concurrent_ones() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    let store: DynStore = Arc::new(SqliteStore::open(&url).await.unwrap());
    let keyring = Arc::new(Keyring::from_master(&[7; 32]));
    let (sink, mut writer) =
        AuditWriter::new(store, keyring, 64, 512, true, Duration::from_millis(5));
    // Two more events are already queued behind the first.
    sink.record_detached(event(2));
    sink.record_detached(event(3));
    // The last commit carried one event: no concurrency seen, the first goes alone.
    let mut batch = vec![pending(1)];
    writer.gather(&mut batch).await;
    assert_eq!(batch.len(), 1, "a lone request must not wait for company");
    // The last commit carried three: this one takes the others that are there.
    writer.last_batch = 3;
    let mut batch = vec![pending(1)];
    writer.gather(&mut batch).await;
    assert_eq!(batch.len(), 3, "concurrent requests share one commit");
    assert_eq!(writer.last_batch, 3);
}

/// A SQLite backend whose first audit append commits and then reports a failure, as
/// when a commit's answer is lost with the connection.
struct CommitsThenFails {
    inner: crate::store::SqliteBackend,
    failed: std::sync::atomic::AtomicBool,
}

impl crate::store::sql::SqlBackend for CommitsThenFails {
    type Connection = <crate::store::SqliteBackend as crate::store::sql::SqlBackend>::Connection;
    type Pooled = <crate::store::SqliteBackend as crate::store::sql::SqlBackend>::Pooled;
    type Tx = <crate::store::SqliteBackend as crate::store::sql::SqlBackend>::Tx;
    const DIALECT: &'static crate::store::sql::Dialect =
        <crate::store::SqliteBackend as crate::store::sql::SqlBackend>::DIALECT;

    async fn acquire(&self) -> crate::store::StoreResult<Self::Pooled> {
        self.inner.acquire().await
    }
    async fn begin_write(&self) -> crate::store::StoreResult<Self::Tx> {
        self.inner.begin_write().await
    }
    async fn begin_snapshot(&self) -> crate::store::StoreResult<Self::Tx> {
        self.inner.begin_snapshot().await
    }
    async fn commit(tx: Self::Tx) -> crate::store::StoreResult<()> {
        <crate::store::SqliteBackend as crate::store::sql::SqlBackend>::commit(tx).await
    }
    async fn append_audit(
        &self,
        rows: Arc<Vec<AuditRow>>,
        checkpoint: gatehouse_model::audit::Checkpoint,
        opens: Option<ChainStart>,
    ) -> crate::store::StoreResult<Vec<i64>> {
        let seqs = self.inner.append_audit(rows, checkpoint, opens).await?;
        if self.failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            Ok(seqs)
        } else {
            Err(crate::store::StoreError::Audit(
                "connection lost after the commit".into(),
            ))
        }
    }
}

/// The first append (which also opens the chain) commits but reports a failure: its
/// events are kept once, not relinked and written again, and the chain goes on from it.
#[tokio::test]
async fn an_append_that_failed_after_committing_is_not_written_twice() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    let inner = SqliteStore::open(&url).await.unwrap().b;
    let store: DynStore = Arc::new(crate::store::SqlStore::new(CommitsThenFails {
        inner,
        failed: std::sync::atomic::AtomicBool::new(false),
    }));
    let keyring = Arc::new(Keyring::from_master(&[7; 32]));
    let (sink, writer) = AuditWriter::new(
        store.clone(),
        keyring.clone(),
        64,
        512,
        true,
        Duration::ZERO,
    );
    let stop = CancellationToken::new();
    let running = tokio::spawn(writer.run(stop.clone()));
    for n in 0..5 {
        sink.record(event(n)).await;
    }
    stop.cancel();
    running.await.unwrap();

    let rows = store.audit_page(0, 100).await.unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.event.request_id.as_str()).collect();
    assert_eq!(ids, ["req-0", "req-1", "req-2", "req-3", "req-4"]);
    assert_eq!(store.audit_chains().await.unwrap().len(), 1);
    let report = chain::verify(&*store, &keyring).await.unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
}
