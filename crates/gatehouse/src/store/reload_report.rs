//! What a running server reports of its configuration (`/readyz`, `/metrics`, `gatehouse
//! status`): stored so that every replica's report can be read back by the operator's tools.
//! The compiling that produces it is `snapshot/records.rs`.

use serde::{Deserialize, Serialize};

use crate::store::Generation;

/// A stored record the running server could not compile, and what it does instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordIssue {
    /// `server`, `policy`, `guardrail`, `connection`, `group_connection`, `api_key` or
    /// `signing_key`.
    pub record: String,
    /// The record's name or id (`client → server` for a connection).
    pub id: String,
    /// Why it did not compile.
    pub reason: String,
    /// What is refused because of it.
    pub effect: String,
}

impl RecordIssue {
    pub fn new(
        record: &str,
        id: impl Into<String>,
        reason: impl Into<String>,
        effect: &str,
    ) -> Self {
        Self {
            record: record.to_owned(),
            id: id.into(),
            reason: reason.into(),
            effect: effect.to_owned(),
        }
    }
}

impl std::fmt::Display for RecordIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:?}: {} ({})",
            self.record, self.id, self.reason, self.effect
        )
    }
}

/// What the running server's configuration is: the generation it applied, the records it
/// could not compile there, and whether its last attempt to reload failed as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    pub generation: Generation,
    pub issues: Vec<RecordIssue>,
    /// Set when the store could not be read for a newer generation: the server keeps running
    /// `generation` and retries on its next poll.
    pub error: Option<String>,
}

impl ReloadReport {
    pub fn is_clean(&self) -> bool {
        self.issues.is_empty() && self.error.is_none()
    }
}
