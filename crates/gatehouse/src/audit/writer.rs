//! The batching audit writer.
//!
//! Requests hand events to a bounded channel; one task drains it in batches (whatever has
//! accumulated while the previous batch was being written) and appends them, chained, in one
//! transaction. A full channel makes requests wait rather than drop events. In durable mode
//! each request waits until its event is committed.
//!
//! Each writer appends to a chain of its own, opened by its first append (`registry.rs`):
//! writers sharing a database (processes, replicas) never contend for one chain head. A
//! writer does not continue a chain after a restart; the next process opens the next chain.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::audit::{checkpoint::KeyedCheckpoint, registry::KeyedChainStart};
use crate::{
    audit::{
        chain::{self, GENESIS},
        registry,
    },
    policy::geo::GeoDb,
    secrets::Keyring,
    store::DynStore,
};
use gatehouse_model::audit::{AuditEvent, AuditRow, ChainStart, Checkpoint};

/// Told of each batch once it is committed (the sinks beside the store). Must not block: it
/// runs on the writer's thread between appends.
pub trait CommittedRows: Send + Sync {
    fn committed(&self, rows: &[AuditRow]);
}

struct Pending {
    event: AuditEvent,
    committed: Option<oneshot::Sender<()>>,
}

/// The request side: cheap to clone.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Pending>,
    durable: bool,
    /// Set by the writer while its appends fail (the database is unreachable), cleared by
    /// the next append that commits.
    failing: Arc<AtomicBool>,
    /// How long a request waits for room in a full queue before it is refused.
    queue_wait: Duration,
    /// Durable mode: how long an answer waits for its commit before it is broken off.
    commit_timeout: Duration,
    /// Cancelled when shutdown's grace period is over: requests still running end now.
    cut: CancellationToken,
    in_flight: Arc<InFlightCount>,
}

#[derive(Default)]
struct InFlightCount {
    count: AtomicUsize,
    idle: Notify,
}

/// Held by a request until its event has been handed to the writer.
pub struct InFlight(Arc<InFlightCount>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The trail cannot take another request's event now (see [`AuditSink::admit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditUnavailable;

/// `audit.queue_wait` and `audit.commit_timeout` unless configured.
const DEFAULT_QUEUE_WAIT: Duration = Duration::from_secs(1);
const DEFAULT_COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

impl AuditSink {
    /// Sets how long a request waits for room in a full queue (`audit.queue_wait`) and, in
    /// durable mode, for its commit (`audit.commit_timeout`).
    pub fn with_waits(mut self, queue_wait: Duration, commit_timeout: Duration) -> Self {
        self.queue_wait = queue_wait;
        self.commit_timeout = commit_timeout;
        self
    }

    /// Whether a request may be forwarded: its event must be recordable, or the request is
    /// refused before anything runs upstream rather than answered unrecorded. In durable mode
    /// nothing is admitted while appends fail (its answer could only be held, then broken
    /// off); otherwise it waits up to `queue_wait` for room in a full queue. The room is not
    /// kept: the event comes later and queues whatever happens then.
    pub async fn admit(&self) -> Result<(), AuditUnavailable> {
        if self.durable && self.failing.load(Ordering::Acquire) {
            return Err(AuditUnavailable);
        }
        if self.tx.capacity() > 0 {
            return Ok(());
        }
        match tokio::time::timeout(self.queue_wait, self.tx.reserve()).await {
            Ok(Ok(_room)) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(AuditUnavailable),
        }
    }

    /// Events queued for the writer now (`/metrics`).
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// How many events the queue holds at most.
    pub fn queue_capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    /// Waits up to `commit_timeout` for a commit; whether it came. One that does not come in
    /// time counts as a failing append (the writer may still be waiting on an unreachable
    /// database's connect timeout), so durable mode stops admitting at once; the next append
    /// that commits clears it.
    pub async fn committed_within(&self, committed: oneshot::Receiver<()>) -> bool {
        if tokio::time::timeout(self.commit_timeout, committed)
            .await
            .is_ok()
        {
            return true;
        }
        if !self.failing.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                "an audit commit is overdue: durable mode refuses new requests until appends succeed"
            );
        }
        false
    }

    /// Records without waiting, for code that cannot await (stream transforms, drops). A
    /// full queue hands the event to a task instead of dropping it.
    pub fn record_detached(&self, event: AuditEvent) {
        let pending = Pending {
            event,
            committed: None,
        };
        self.enqueue(pending);
    }

    /// Queues the event without waiting; in durable mode, returns what resolves once it is
    /// committed. Dropping that loses nothing: the event is already queued.
    pub fn submit(&self, event: AuditEvent) -> Option<oneshot::Receiver<()>> {
        let (committed, wait) = if self.durable {
            let (done, wait) = oneshot::channel();
            (Some(done), Some(wait))
        } else {
            (None, None)
        };
        self.enqueue(Pending { event, committed });
        wait
    }

    /// Waits for room in the queue (back-pressure). The event is handed over only once there
    /// is room, so a caller dropped while waiting still holds it and loses nothing.
    /// `Err(true)` when the queue stayed full for `queue_wait`: the caller hands the event
    /// on with [`AuditSink::record_detached`] instead of waiting on.
    pub async fn reserve(&self) -> Result<AuditPermit<'_>, bool> {
        match tokio::time::timeout(self.queue_wait, self.tx.reserve()).await {
            Ok(Ok(permit)) => Ok(AuditPermit {
                permit,
                durable: self.durable,
            }),
            Err(_) => Err(true),
            Ok(Err(_)) => {
                tracing::error!("audit writer has stopped; event not recorded");
                Err(false)
            }
        }
    }

    fn enqueue(&self, pending: Pending) {
        match self.tx.try_send(pending) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(pending)) => {
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(pending).await;
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("audit writer has stopped; event not recorded");
            }
        }
    }

    /// Counts a request in flight until the returned guard is dropped.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.count.fetch_add(1, Ordering::AcqRel);
        InFlight(self.in_flight.clone())
    }

    /// Cancelled when shutdown cuts the requests still in flight.
    pub fn cut_signal(&self) -> CancellationToken {
        self.cut.clone()
    }

    /// Waits up to `wait` until no request is in flight: every request has handed its event
    /// on (in durable mode, committed it). Whether that happened in time.
    pub async fn settled(&self, wait: Duration) -> bool {
        let idle = async {
            loop {
                let notified = self.in_flight.idle.notified();
                if self.in_flight.count.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(wait, idle).await.is_ok()
    }

    /// Ends the requests still in flight (each records its event with outcome `shutdown`)
    /// and waits up to `wait` for their events to be queued, before the writer's last flush.
    pub async fn cut_in_flight(&self, wait: Duration) {
        self.cut.cancel();
        if !self.settled(wait).await {
            tracing::warn!(
                requests = self.in_flight.count.load(Ordering::Acquire),
                "requests still running after shutdown cut them; their events may be lost"
            );
        }
    }

    pub async fn record(&self, event: AuditEvent) {
        if self.durable {
            let (done, wait) = oneshot::channel();
            let pending = Pending {
                event,
                committed: Some(done),
            };
            // Bounded: with the database down a commit may not come for a long time.
            if self.enqueue_within(pending).await {
                self.committed_within(wait).await;
            }
        } else {
            let pending = Pending {
                event,
                committed: None,
            };
            // Without a suspension point while there is room: the response leaves as soon as
            // the handler returns. A full queue still makes the request wait, not drop.
            match self.tx.try_send(pending) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(pending)) => {
                    self.enqueue_within(pending).await;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    tracing::error!("audit writer has stopped; event not recorded");
                }
            }
        }
    }

    /// Queues the event, waiting up to `queue_wait` for room and then handing it to a task
    /// that waits on (it is never dropped). Whether the writer is still running.
    async fn enqueue_within(&self, pending: Pending) -> bool {
        match tokio::time::timeout(self.queue_wait, self.tx.reserve()).await {
            Ok(Ok(permit)) => {
                permit.send(pending);
                true
            }
            Err(_) => {
                self.enqueue(pending);
                true
            }
            Ok(Err(_)) => {
                tracing::error!("audit writer has stopped; event not recorded");
                false
            }
        }
    }
}

/// Room for one event in the writer's queue.
pub struct AuditPermit<'a> {
    permit: mpsc::Permit<'a, Pending>,
    durable: bool,
}

impl AuditPermit<'_> {
    /// Queues the event; in durable mode, returns what resolves once it is committed.
    pub fn send(self, event: AuditEvent) -> Option<oneshot::Receiver<()>> {
        let (committed, wait) = if self.durable {
            let (done, wait) = oneshot::channel();
            (Some(done), Some(wait))
        } else {
            (None, None)
        };
        self.permit.send(Pending { event, committed });
        wait
    }
}

pub struct AuditWriter {
    rx: mpsc::Receiver<Pending>,
    /// Shared with the sinks: whether appends are failing now.
    failing: Arc<AtomicBool>,
    store: DynStore,
    keyring: Arc<Keyring>,
    batch_size: usize,
    /// How long a batch may wait for company before it is written (zero in durable mode,
    /// where the request is waiting for the commit).
    linger: Duration,
    /// This writer's chain, once its first append has registered it.
    chain: Option<ChainStart>,
    /// `(chain_seq, hash)` of the chain's last row written; read again after errors.
    head: Option<(i64, String)>,
    /// Names this process in the chain's registry entry.
    writer: String,
    /// Reused for every row's chain hash input.
    scratch: Vec<u8>,
    /// Fills in the events' `country` here, off the request path.
    geo: Option<Arc<GeoDb>>,
    /// Durable mode: how many events the last commit carried (see `gather`).
    last_batch: usize,
    /// The append in progress: where it would leave the chain, kept while its outcome is
    /// unknown (a failure reported after the commit).
    attempt: Option<Attempt>,
    /// Handed every committed batch (the sinks), if any.
    committed: Option<Arc<dyn CommittedRows>>,
    /// Write lag, events written and failed appends, for `/metrics`.
    metrics: Option<crate::metrics::AuditMetrics>,
}

/// Where an append leaves the chain when it commits.
struct Attempt {
    chain_id: i64,
    head: (i64, String),
    opens: Option<ChainStart>,
}

/// Durable mode: the longest a commit waits for the events of concurrent requests.
const GROUP_WAIT: Duration = Duration::from_micros(200);
/// How often it looks for them meanwhile.
const GROUP_STEP: Duration = Duration::from_micros(40);

impl AuditWriter {
    pub fn new(
        store: DynStore,
        keyring: Arc<Keyring>,
        capacity: usize,
        batch_size: usize,
        durable: bool,
        linger: Duration,
    ) -> (AuditSink, AuditWriter) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let failing = Arc::new(AtomicBool::new(false));
        (
            AuditSink {
                tx,
                durable,
                failing: failing.clone(),
                queue_wait: DEFAULT_QUEUE_WAIT,
                commit_timeout: DEFAULT_COMMIT_TIMEOUT,
                cut: CancellationToken::new(),
                in_flight: Arc::default(),
            },
            AuditWriter {
                rx,
                failing,
                store,
                keyring,
                batch_size: batch_size.max(1),
                linger: if durable { Duration::ZERO } else { linger },
                chain: None,
                head: None,
                attempt: None,
                writer: registry::this_writer(),
                scratch: Vec::new(),
                geo: None,
                last_batch: 0,
                committed: None,
                metrics: None,
            },
        )
    }

    /// Hands every committed batch to `committed` (the audit sinks).
    pub fn with_committed(mut self, committed: Option<Arc<dyn CommittedRows>>) -> Self {
        self.committed = committed;
        self
    }

    /// Looks up each event's country from its IP address (requests record only the address).
    pub fn with_geo(mut self, geo: Option<Arc<GeoDb>>) -> Self {
        self.geo = geo;
        self
    }

    /// Records each commit's lag and size into `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::AuditMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Starts the writer on a thread of its own (a single-threaded runtime), so that a request
    /// waiting for its commit is one thread hand-off away from the append instead of three
    /// (the writer task, the blocking pool, and back). The returned future ends when the
    /// writer has written what was queued at `shutdown`.
    pub fn start(
        self,
        shutdown: CancellationToken,
    ) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
        // IO too: a network database's appender connects from this runtime.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .enable_io()
            .build()?;
        let (done, finished) = oneshot::channel();
        std::thread::Builder::new()
            .name("gatehouse-audit".into())
            .spawn(move || {
                runtime.block_on(self.run(shutdown));
                let _ = done.send(());
            })?;
        Ok(async move {
            let _ = finished.await;
        })
    }

    /// Runs until `shutdown`, then writes whatever is still queued and returns.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut batch = Vec::with_capacity(self.batch_size);
        loop {
            tokio::select! {
                received = self.rx.recv_many(&mut batch, self.batch_size) => {
                    if received == 0 {
                        break;
                    }
                    self.gather(&mut batch).await;
                    self.write(&mut batch).await;
                }
                () = shutdown.cancelled() => {
                    self.rx.close();
                    while self.rx.recv_many(&mut batch, self.batch_size).await > 0 {
                        self.write(&mut batch).await;
                    }
                    break;
                }
            }
        }
    }

    /// Lets more events join the batch for up to `linger`: one transaction for many requests
    /// instead of one each. The writer sleeps rather than waiting on the channel, so requests
    /// that arrive meanwhile do not each wake it (a cross-thread wake-up per request cost more
    /// than everything else the audit does).
    async fn gather(&mut self, batch: &mut Vec<Pending>) {
        if self.linger.is_zero() {
            self.gather_group(batch);
            return;
        }
        if batch.len() >= self.batch_size {
            return;
        }
        tokio::time::sleep(self.linger).await;
        while batch.len() < self.batch_size {
            match self.rx.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
    }

    /// Durable mode's group commit. Each request waits for its commit, so the events of
    /// concurrent requests arrive a few microseconds apart: committing the first alone makes
    /// every request pay a whole commit and two thread wake-ups. When the last commit carried
    /// several events (requests are running concurrently), this one waits up to
    /// [`GROUP_WAIT`] for as many to arrive; a lone request (the last batch had one) is
    /// committed at once. Like PostgreSQL's `commit_delay` with `commit_siblings`. The sleep
    /// blocks only the writer's own thread (`start`).
    fn gather_group(&mut self, batch: &mut Vec<Pending>) {
        let expected = self.last_batch.min(self.batch_size);
        if expected > 1 && batch.len() < expected {
            let deadline = std::time::Instant::now() + GROUP_WAIT;
            while batch.len() < expected && std::time::Instant::now() < deadline {
                std::thread::sleep(GROUP_STEP);
                while batch.len() < self.batch_size {
                    match self.rx.try_recv() {
                        Ok(pending) => batch.push(pending),
                        Err(_) => break,
                    }
                }
            }
        }
        self.last_batch = batch.len();
    }

    /// Appends the batch; on failure re-reads the chain head (or, before the chain is
    /// registered, the registry) and retries, so nothing queued is lost.
    async fn write(&mut self, batch: &mut Vec<Pending>) {
        // The events move into the rows (no copy); only the commit notifications stay behind.
        let mut committed = Vec::new();
        let oldest_ms = batch.iter().map(|p| p.event.ts_ms).min();
        let mut rows: Vec<AuditRow> = batch
            .drain(..)
            .map(|mut pending| {
                committed.extend(pending.committed);
                if let Some(geo) = &self.geo
                    && pending.event.country.is_none()
                    && let Some(ip) = pending.event.ip.as_deref().and_then(|ip| ip.parse().ok())
                {
                    pending.event.country = geo.country(ip);
                }
                AuditRow {
                    seq: 0,
                    chain_id: 0,
                    chain_seq: 0,
                    hash_version: chain::HASH_VERSION,
                    event: pending.event,
                    prev_hash: String::new(),
                    hash: String::new(),
                }
            })
            .collect();
        let mut backoff = Duration::from_millis(50);
        let mut in_doubt: Option<Attempt> = None;
        loop {
            // A failed append may have committed all the same (its answer lost with the
            // connection): relinking its events would write them twice. The chain's
            // checkpoint, moved in the same transaction, tells which it was.
            if let Some(attempt) = in_doubt.take() {
                match self.landed(&attempt).await {
                    Ok(true) => {
                        self.adopt(attempt);
                        break;
                    }
                    Ok(false) => {}
                    Err(err) => {
                        self.mark_failing();
                        tracing::error!(error = %err, events = rows.len(), "audit write failed; retrying");
                        in_doubt = Some(attempt);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            match self.try_write(&mut rows).await {
                Ok(()) => break,
                Err(crate::store::StoreError::Conflict { name, .. }) if self.chain.is_none() => {
                    self.attempt = None;
                    tracing::debug!(chain = %name, "another writer opened that chain first");
                }
                Err(err) => {
                    in_doubt = self.attempt.take();
                    if let Some(metrics) = &self.metrics {
                        metrics.append_failures.inc();
                    }
                    self.mark_failing();
                    tracing::error!(error = %err, events = rows.len(), "audit write failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        if self.failing.swap(false, Ordering::AcqRel) {
            tracing::info!("audit appends succeed again; queued events written");
        }
        if let Some(committed) = &self.committed {
            committed.committed(&rows);
        }
        if let (Some(metrics), Some(oldest_ms)) = (&self.metrics, oldest_ms) {
            let lag_ms = u64::try_from(crate::now_ms().saturating_sub(oldest_ms)).unwrap_or(0);
            metrics.write_lag.observe(Duration::from_millis(lag_ms));
            metrics.events_written.inc_by(rows.len() as u64);
        }
        for done in committed {
            let _ = done.send(());
        }
    }

    /// Marks appends failing (logged once per outage, each retry is logged as an error).
    fn mark_failing(&self) {
        if !self.failing.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                "audit appends are failing: events queue; durable mode refuses new requests"
            );
        }
    }

    /// Links the rows onto the chain's head (again, after a failure: the head may have moved,
    /// or another writer may have taken the chain id) and appends them in one transaction.
    async fn try_write(&mut self, rows: &mut Vec<AuditRow>) -> crate::store::StoreResult<()> {
        let (chain_id, head, opens) = match &self.chain {
            Some(chain) => {
                let head = match self.head.take() {
                    Some(head) => head,
                    None => self.stored_head(chain).await?,
                };
                (chain.chain_id, head, None)
            }
            None => {
                let start = self.next_chain().await?;
                (start.chain_id, (0, start.hash.clone()), Some(start))
            }
        };
        let (mut seq, mut prev_hash) = head;
        for row in rows.iter_mut() {
            seq += 1;
            let hash = chain::link_with(
                &self.keyring,
                chain_id,
                &prev_hash,
                seq,
                &row.event,
                &mut self.scratch,
            );
            row.chain_id = chain_id;
            row.chain_seq = seq;
            row.prev_hash = std::mem::replace(&mut prev_hash, hash.clone());
            row.hash = hash;
        }
        // Shared with the store for the append, then taken back (the store holds no copy
        // once it has answered), so a retry relinks the same rows.
        let checkpoint =
            Checkpoint::sign(&self.keyring, chain_id, seq, &prev_hash, crate::now_ms());
        self.attempt = Some(Attempt {
            chain_id,
            head: (seq, prev_hash.clone()),
            opens: opens.clone(),
        });
        let shared = Arc::new(std::mem::take(rows));
        let appended = self
            .store
            .append_audit(shared.clone(), checkpoint, opens.clone())
            .await;
        *rows = Arc::try_unwrap(shared).unwrap_or_else(|still_shared| (*still_shared).clone());
        // The table positions the store gave the rows, so the sinks send them as stored.
        for (row, seq) in rows.iter_mut().zip(appended?) {
            row.seq = seq;
        }
        self.attempt = None;
        if let Some(start) = opens {
            self.chain = Some(start);
        }
        self.head = Some((seq, prev_hash));
        Ok(())
    }

    /// Whether the append of `attempt` committed: its chain's checkpoint (authentic) is the
    /// head it would have left. One writer appends to a chain, so nothing else moves it there.
    async fn landed(&self, attempt: &Attempt) -> crate::store::StoreResult<bool> {
        let checkpoint = self.store.audit_checkpoint(attempt.chain_id).await?;
        Ok(checkpoint.is_some_and(|c| {
            c.is_authentic(&self.keyring) && (c.seq, &c.hash) == (attempt.head.0, &attempt.head.1)
        }))
    }

    /// Continues after an append that committed though it reported a failure.
    fn adopt(&mut self, attempt: Attempt) {
        tracing::warn!(
            chain = attempt.chain_id,
            "an audit append reported a failure after committing; its events are kept once"
        );
        if let Some(start) = attempt.opens {
            self.chain = Some(start);
        }
        self.head = Some(attempt.head);
    }

    /// The registry entry for a new chain: the id after the newest entry's, linking to it (the
    /// first entry links to the last row written before chains).
    async fn next_chain(&self) -> crate::store::StoreResult<ChainStart> {
        let (chain_id, prev) = match self.store.audit_chains().await?.pop() {
            Some(newest) => (newest.chain_id + 1, newest.hash),
            None => (
                1,
                self.store
                    .audit_chain_head(0)
                    .await?
                    .map_or_else(|| GENESIS.to_owned(), |(_, hash)| hash),
            ),
        };
        Ok(ChainStart::new(
            &self.keyring,
            chain_id,
            &prev,
            crate::now_ms(),
            &self.writer,
        ))
    }

    /// Where the chain continues: the checkpoint when it is ahead of the last row, so rows
    /// deleted from the end leave a gap in the numbering instead of being written over.
    async fn stored_head(&self, chain: &ChainStart) -> crate::store::StoreResult<(i64, String)> {
        let last_row = self.store.audit_chain_head(chain.chain_id).await?;
        let checkpoint = self
            .store
            .audit_checkpoint(chain.chain_id)
            .await?
            .filter(|c| c.is_authentic(&self.keyring))
            .map(|c| (c.seq, c.hash));
        Ok(match (last_row, checkpoint) {
            (Some(row), Some(checkpoint)) if checkpoint.0 > row.0 => checkpoint,
            (Some(row), _) => row,
            (None, Some(checkpoint)) => checkpoint,
            (None, None) => (0, chain.hash.clone()),
        })
    }
}

#[cfg(test)]
mod tests;
