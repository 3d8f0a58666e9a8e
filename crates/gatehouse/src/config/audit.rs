//! `[audit]`: how the audit writer batches, waits and commits. Documented in
//! docs/configuration.md and docs/audit.md.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use gatehouse_model::duration::serde_human;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// End each response only once its audit event is committed, so a crash loses nothing
    /// answered. On by default: a trail that loses its last events in a crash is no evidence.
    pub durable: bool,
    /// Events written per transaction at most.
    pub batch_size: usize,
    /// How long a batch may wait for more events before it is written (ignored when durable).
    #[serde(with = "serde_human")]
    pub linger: Duration,
    /// Events buffered in memory before requests wait for the writer (back-pressure, not loss).
    pub channel_capacity: usize,
    /// How long a request waits for room in a full queue before it is refused
    /// (`audit_unavailable`) rather than forwarded and answered unrecorded.
    #[serde(with = "serde_human")]
    pub queue_wait: Duration,
    /// Durable mode: how long an answer is held for its event's commit before it is broken
    /// off (never ended cleanly) while the database does not answer.
    #[serde(with = "serde_human")]
    pub commit_timeout: Duration,
    /// Archive rows older than this into evidence bundles and remove them (`90d`); zero, the
    /// default, keeps every row.
    #[serde(with = "serde_human")]
    pub retention: Duration,
    /// Where retention writes its archives (default: `audit-archive` in the data directory).
    pub archive_dir: Option<std::path::PathBuf>,
    /// How often retention looks for rows to archive.
    #[serde(with = "serde_human")]
    pub retention_interval: Duration,
    /// `[[audit.sinks]]`: where events go besides the store.
    pub sinks: Vec<super::audit_sinks::AuditSinkConfig>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            durable: true,
            batch_size: 512,
            linger: Duration::from_millis(20),
            channel_capacity: 16_384,
            queue_wait: Duration::from_secs(1),
            commit_timeout: Duration::from_secs(10),
            retention: Duration::ZERO,
            archive_dir: None,
            retention_interval: Duration::from_secs(3600),
            sinks: Vec::new(),
        }
    }
}
