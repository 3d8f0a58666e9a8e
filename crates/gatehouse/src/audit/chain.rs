//! The hash chain: `hash(n) = HMAC(audit key, prev_hash ‖ seq ‖ canonical JSON of event n)`.
//!
//! Keyed with a key derived from the master key, so someone who can edit the database but
//! does not hold the master key cannot recompute a consistent chain after an edit.

use crate::{
    audit::event::{AuditEvent, AuditRow},
    secrets::Keyring,
    store::{Store, StoreResult},
};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub fn link(keyring: &Keyring, prev_hash: &str, seq: i64, event: &AuditEvent) -> String {
    link_with(keyring, prev_hash, seq, event, &mut Vec::new())
}

/// [`link`], building the hashed bytes in `scratch`: the writer reuses one buffer for every
/// row instead of allocating per row.
pub fn link_with(
    keyring: &Keyring,
    prev_hash: &str,
    seq: i64,
    event: &AuditEvent,
    scratch: &mut Vec<u8>,
) -> String {
    use std::io::Write as _;
    scratch.clear();
    scratch.extend_from_slice(prev_hash.as_bytes());
    // Writing to a Vec and serialising a plain struct of strings and integers cannot fail.
    let _ = write!(scratch, "\n{seq}\n");
    let _ = serde_json::to_writer(&mut *scratch, event);
    hex::encode(keyring.audit_mac(&[scratch]))
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum ChainProblem {
    /// Rows between these sequence numbers are missing (deleted).
    Missing { after_seq: i64, next_seq: i64 },
    /// The row's content no longer matches its hash (edited).
    Modified { seq: i64 },
    /// The row does not link to the row before it (rows removed or re-ordered before it).
    BrokenLink { seq: i64 },
}

impl std::fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainProblem::Missing {
                after_seq,
                next_seq,
            } => write!(
                f,
                "rows {} to {} are missing (deleted)",
                after_seq + 1,
                next_seq - 1
            ),
            ChainProblem::Modified { seq } => write!(f, "row {seq} was modified"),
            ChainProblem::BrokenLink { seq } => {
                write!(f, "row {seq} does not link to the row before it")
            }
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifyReport {
    pub rows_checked: u64,
    pub last_seq: Option<i64>,
    pub problems: Vec<ChainProblem>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Walks the whole chain in pages; reports every problem found, not just the first.
pub async fn verify(store: &dyn Store, keyring: &Keyring) -> StoreResult<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut prev_hash = GENESIS.to_owned();
    let mut prev_seq = 0i64;
    loop {
        let page: Vec<AuditRow> = store.audit_page(prev_seq, 1_000).await?;
        if page.is_empty() {
            break;
        }
        for row in page {
            if row.seq != prev_seq + 1 {
                report.problems.push(ChainProblem::Missing {
                    after_seq: prev_seq,
                    next_seq: row.seq,
                });
            }
            if row.prev_hash != prev_hash {
                report
                    .problems
                    .push(ChainProblem::BrokenLink { seq: row.seq });
            }
            if link(keyring, &row.prev_hash, row.seq, &row.event) != row.hash {
                report
                    .problems
                    .push(ChainProblem::Modified { seq: row.seq });
            }
            report.rows_checked += 1;
            prev_seq = row.seq;
            prev_hash = row.hash;
        }
    }
    report.last_seq = (prev_seq > 0).then_some(prev_seq);
    Ok(report)
}
