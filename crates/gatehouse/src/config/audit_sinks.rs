//! `[[audit.sinks]]`: where audit events go besides the store (docs/audit.md, "Sinks").
//! Each sink is fed after the primary commit from a bounded queue of its own; a slow or
//! failing sink drops its own events (counted) and never holds up the trail or a request.

use serde::{Deserialize, Serialize};
use std::{path::PathBuf, time::Duration};

use gatehouse_model::duration::serde_human;

/// Which events a sink takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkEvents {
    /// Every event.
    All,
    /// Refused requests (decision `deny`).
    Deny,
    /// Requests or answers a guardrail blocked.
    GuardrailBlock,
    /// Changes made by operators (the operator events).
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogTransport {
    Udp,
    /// Octet-counting framing (RFC 6587).
    Tcp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuditSinkConfig {
    /// JSON lines, rotated by size and age (renamed to `path.1`, `path.2`, …).
    File {
        path: PathBuf,
        #[serde(default = "default_max_bytes")]
        max_bytes: u64,
        #[serde(default = "default_max_age", with = "serde_human")]
        max_age: Duration,
        /// Rotated files kept besides the current one.
        #[serde(default = "default_keep")]
        keep: usize,
        #[serde(default = "all_events")]
        events: Vec<SinkEvents>,
        #[serde(default = "default_queue")]
        queue: usize,
    },
    /// RFC 5424 messages with structured data, for SIEMs.
    Syslog {
        /// `host:port`.
        address: String,
        #[serde(default = "default_transport")]
        transport: SyslogTransport,
        #[serde(default = "all_events")]
        events: Vec<SinkEvents>,
        #[serde(default = "default_queue")]
        queue: usize,
    },
    /// OpenTelemetry logs, OTLP/HTTP with the JSON encoding.
    Otlp {
        /// The full URL, usually ending in `/v1/logs`.
        endpoint: String,
        #[serde(default = "all_events")]
        events: Vec<SinkEvents>,
        #[serde(default = "default_queue")]
        queue: usize,
        #[serde(default = "default_timeout", with = "serde_human")]
        timeout: Duration,
    },
    /// One signed POST per event (Standard Webhooks headers), retried with back-off, then
    /// written to a dead-letter file.
    Webhook {
        url: String,
        /// The environment variable holding the signing secret (`whsec_…` base64, or raw
        /// text); the secret itself is never in the file.
        secret_env: String,
        #[serde(default = "decisions")]
        events: Vec<SinkEvents>,
        #[serde(default = "default_retries")]
        retries: u32,
        #[serde(default = "default_backoff", with = "serde_human")]
        backoff: Duration,
        #[serde(default = "default_timeout", with = "serde_human")]
        timeout: Duration,
        /// JSON lines of the events given up on.
        dead_letter: PathBuf,
        #[serde(default = "default_queue")]
        queue: usize,
    },
}

impl AuditSinkConfig {
    pub fn events(&self) -> &[SinkEvents] {
        match self {
            AuditSinkConfig::File { events, .. }
            | AuditSinkConfig::Syslog { events, .. }
            | AuditSinkConfig::Otlp { events, .. }
            | AuditSinkConfig::Webhook { events, .. } => events,
        }
    }

    pub fn queue(&self) -> usize {
        match self {
            AuditSinkConfig::File { queue, .. }
            | AuditSinkConfig::Syslog { queue, .. }
            | AuditSinkConfig::Otlp { queue, .. }
            | AuditSinkConfig::Webhook { queue, .. } => (*queue).max(1),
        }
    }

    /// How the sink is named in logs and counters: its kind and where it sends.
    pub fn name(&self) -> String {
        match self {
            AuditSinkConfig::File { path, .. } => format!("file:{}", path.display()),
            AuditSinkConfig::Syslog { address, .. } => format!("syslog:{address}"),
            AuditSinkConfig::Otlp { endpoint, .. } => format!("otlp:{endpoint}"),
            AuditSinkConfig::Webhook { url, .. } => format!("webhook:{url}"),
        }
    }
}

fn default_max_bytes() -> u64 {
    100 * 1024 * 1024
}
fn default_max_age() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_keep() -> usize {
    7
}
fn all_events() -> Vec<SinkEvents> {
    vec![SinkEvents::All]
}
fn decisions() -> Vec<SinkEvents> {
    vec![
        SinkEvents::Deny,
        SinkEvents::GuardrailBlock,
        SinkEvents::Admin,
    ]
}
fn default_queue() -> usize {
    10_000
}
fn default_transport() -> SyslogTransport {
    SyslogTransport::Udp
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_retries() -> u32 {
    5
}
fn default_backoff() -> Duration {
    Duration::from_millis(500)
}
