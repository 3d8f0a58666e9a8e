//! Audit sinks beside the store: a JSON-lines file, syslog (RFC 5424), OTLP logs and signed
//! webhooks (`[[audit.sinks]]`, docs/audit.md "Sinks").
//!
//! The writer hands each committed batch to [`AuditSinks`] (never before the commit, so a sink
//! never sees an event the trail lacks). Each sink has a bounded queue and a task of its own:
//! handing over is a `try_send`, so a slow, stuck or failing sink never delays the writer or
//! a request; a full queue drops that sink's events only, counted in its [`SinkCounters`].

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{
    audit::CommittedRows,
    config::audit_sinks::{AuditSinkConfig, SinkEvents},
    upstream::client::UpstreamClient,
};
use gatehouse_model::audit::{AuditRow, Decision};

mod file;
mod http;
mod syslog;

/// One sink's delivery: a batch of rows, in commit order.
pub trait Sink: Send + 'static {
    fn deliver(
        &mut self,
        rows: &[Arc<AuditRow>],
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// What a sink did with the events it was offered (for `/metrics`; the registry owns them).
#[derive(Debug, Default)]
pub struct SinkCounters {
    /// Events the sink delivered.
    pub delivered: AtomicU64,
    /// Events dropped because the sink's queue was full (the trail has them).
    pub dropped: AtomicU64,
    /// Events whose delivery failed (for a webhook: after every retry; those are in its
    /// dead-letter file unless `dead_lettered` says otherwise).
    pub failed: AtomicU64,
    /// Webhook events written to the dead-letter file.
    pub dead_lettered: AtomicU64,
}

struct Handle {
    name: String,
    events: Vec<SinkEvents>,
    tx: mpsc::Sender<Arc<AuditRow>>,
    counters: Arc<SinkCounters>,
}

/// The configured sinks, each with its queue, task and counters.
#[derive(Default)]
pub struct AuditSinks {
    sinks: Vec<Handle>,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkSetupError {
    #[error("audit sink {name}: {why}")]
    Invalid { name: String, why: String },
}

impl AuditSinks {
    /// Starts a task per sink on the current runtime; they end at `stop`. Webhook secrets are
    /// read from the environment variables the configuration names.
    pub fn start(
        configs: &[AuditSinkConfig],
        client: &UpstreamClient,
        stop: &CancellationToken,
    ) -> Result<AuditSinks, SinkSetupError> {
        Self::start_with_env(configs, client, stop, |name| std::env::var(name).ok())
    }

    /// [`AuditSinks::start`], reading variables through `env`.
    pub fn start_with_env(
        configs: &[AuditSinkConfig],
        client: &UpstreamClient,
        stop: &CancellationToken,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<AuditSinks, SinkSetupError> {
        let mut sinks = Vec::with_capacity(configs.len());
        for config in configs {
            let name = config.name();
            let invalid = |why: String| SinkSetupError::Invalid {
                name: name.clone(),
                why,
            };
            let (tx, rx) = mpsc::channel(config.queue());
            let counters = Arc::new(SinkCounters::default());
            match config {
                AuditSinkConfig::File {
                    path,
                    max_bytes,
                    max_age,
                    keep,
                    ..
                } => {
                    let sink = file::FileSink::new(path.clone(), *max_bytes, *max_age, *keep);
                    spawn(sink, rx, counters.clone(), stop.clone(), name.clone());
                }
                AuditSinkConfig::Syslog {
                    address, transport, ..
                } => {
                    let sink = syslog::SyslogSink::new(address.clone(), *transport);
                    spawn(sink, rx, counters.clone(), stop.clone(), name.clone());
                }
                AuditSinkConfig::Otlp {
                    endpoint, timeout, ..
                } => {
                    let sink =
                        http::OtlpSink::new(client.clone(), endpoint, *timeout).map_err(invalid)?;
                    spawn(sink, rx, counters.clone(), stop.clone(), name.clone());
                }
                AuditSinkConfig::Webhook {
                    url,
                    secret_env,
                    retries,
                    backoff,
                    timeout,
                    dead_letter,
                    ..
                } => {
                    let secret = env(secret_env).ok_or_else(|| {
                        invalid(format!("the environment variable {secret_env} is not set"))
                    })?;
                    let sink = http::WebhookSink::new(
                        client.clone(),
                        url,
                        &secret,
                        http::Retries {
                            retries: *retries,
                            backoff: *backoff,
                            timeout: *timeout,
                        },
                        dead_letter.clone(),
                        counters.clone(),
                    )
                    .map_err(invalid)?;
                    spawn(sink, rx, counters.clone(), stop.clone(), name.clone());
                }
            }
            sinks.push(Handle {
                name,
                events: config.events().to_vec(),
                tx,
                counters,
            });
        }
        Ok(AuditSinks { sinks })
    }

    /// Each sink's name and counters, in configuration order.
    pub fn counters(&self) -> Vec<(String, Arc<SinkCounters>)> {
        self.sinks
            .iter()
            .map(|s| (s.name.clone(), s.counters.clone()))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }
}

impl CommittedRows for AuditSinks {
    fn committed(&self, rows: &[AuditRow]) {
        for row in rows {
            let mut shared: Option<Arc<AuditRow>> = None;
            for sink in &self.sinks {
                if !sink.events.iter().any(|events| takes(*events, row)) {
                    continue;
                }
                let row = shared.get_or_insert_with(|| Arc::new(row.clone())).clone();
                if sink.tx.try_send(row).is_err() {
                    sink.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Whether a filter takes the row.
pub fn takes(events: SinkEvents, row: &AuditRow) -> bool {
    let event = &row.event;
    match events {
        SinkEvents::All => true,
        SinkEvents::Deny => event.decision == Decision::Deny,
        SinkEvents::GuardrailBlock => event
            .reason
            .as_deref()
            .is_some_and(|reason| reason.starts_with("guardrail_blocked")),
        SinkEvents::Admin => event.operator.is_some(),
    }
}

/// Rows a sink takes from its queue at a time.
const BATCH: usize = 256;

fn spawn<S: Sink>(
    mut sink: S,
    mut rx: mpsc::Receiver<Arc<AuditRow>>,
    counters: Arc<SinkCounters>,
    stop: CancellationToken,
    name: String,
) {
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                received = rx.recv_many(&mut batch, BATCH) => {
                    if received == 0 {
                        return;
                    }
                }
                () = stop.cancelled() => return,
            }
            let delivered = tokio::select! {
                delivered = sink.deliver(&batch) => delivered,
                () = stop.cancelled() => return,
            };
            let count = batch.len() as u64;
            match delivered {
                Ok(()) => {
                    counters.delivered.fetch_add(count, Ordering::Relaxed);
                }
                Err(why) => {
                    counters.failed.fetch_add(count, Ordering::Relaxed);
                    tracing::warn!(sink = %name, events = count, error = %why, "audit sink delivery failed");
                }
            }
            batch.clear();
        }
    });
}

/// The row as sinks send it: its JSON (chain place and hashes included).
pub(crate) fn row_json(row: &AuditRow) -> String {
    serde_json::to_string(row).unwrap_or_default()
}
