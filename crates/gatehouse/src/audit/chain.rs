//! The hash chain: `hash(n) = HMAC(audit key, prev_hash ‖ version ‖ seq ‖ canonical form of
//! event n)`.
//!
//! Keyed with a key derived from the master key, so someone who can edit the database but
//! does not hold the master key cannot recompute a consistent chain after an edit.
//!
//! The canonical form is versioned and stored with each row, so a row is always verified
//! against the form it was written in:
//! - version 1 (rows written before versioning): the event's sixteen original fields as JSON,
//!   in declaration order, absent values as `null`; the input has no version marker.
//! - version 2: the fields in declaration order with absent values (`None`, empty lists)
//!   left out, and `v2` in the input. A field added later is appended to this form and left
//!   out when absent, so every row written before it keeps its hash.

use serde::Serialize;

use crate::{
    audit::{
        checkpoint::Checkpoint,
        event::{AuditEvent, AuditRow, BatchEntry, Decision, Outcome},
        operator::OperatorAction,
    },
    secrets::Keyring,
    store::{Store, StoreResult},
};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The canonical form new rows are written in.
pub const HASH_VERSION: u8 = 2;

/// The hash of a new row (current version).
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
    write_v2(prev_hash, seq, event, scratch);
    hex::encode(keyring.audit_mac(&[scratch]))
}

/// The hash of a row written in canonical form `version`; `None` for a version this build
/// does not know (a row from a newer Gatehouse, or an edited version column).
pub fn link_version(
    keyring: &Keyring,
    version: u8,
    prev_hash: &str,
    seq: i64,
    event: &AuditEvent,
    scratch: &mut Vec<u8>,
) -> Option<String> {
    match version {
        1 => write_v1(prev_hash, seq, event, scratch),
        2 => write_v2(prev_hash, seq, event, scratch),
        _ => return None,
    }
    Some(hex::encode(keyring.audit_mac(&[scratch])))
}

// Writing to a Vec and serialising plain structs of strings and integers cannot fail.
fn write_v1(prev_hash: &str, seq: i64, event: &AuditEvent, scratch: &mut Vec<u8>) {
    use std::io::Write as _;
    scratch.clear();
    scratch.extend_from_slice(prev_hash.as_bytes());
    let _ = write!(scratch, "\n{seq}\n");
    let _ = serde_json::to_writer(&mut *scratch, &V1::from(event));
}

fn write_v2(prev_hash: &str, seq: i64, event: &AuditEvent, scratch: &mut Vec<u8>) {
    use std::io::Write as _;
    scratch.clear();
    scratch.extend_from_slice(prev_hash.as_bytes());
    let _ = write!(scratch, "\nv2\n{seq}\n");
    let _ = serde_json::to_writer(&mut *scratch, &V2::from(event));
}

/// Canonical form 1: exactly what `serde_json` made of the event before versioning.
#[derive(Serialize)]
struct V1<'a> {
    ts_ms: i64,
    request_id: &'a str,
    client: &'a Option<String>,
    credential_id: &'a Option<String>,
    user: &'a Option<String>,
    ip: &'a Option<String>,
    country: &'a Option<String>,
    server: &'a Option<String>,
    http_method: &'a str,
    rpc_method: &'a Option<String>,
    tool: &'a Option<String>,
    decision: Decision,
    reason: &'a Option<String>,
    status: u16,
    upstream_status: Option<u16>,
    latency_us: i64,
}

impl<'a> From<&'a AuditEvent> for V1<'a> {
    fn from(e: &'a AuditEvent) -> Self {
        V1 {
            ts_ms: e.ts_ms,
            request_id: &e.request_id,
            client: &e.client,
            credential_id: &e.credential_id,
            user: &e.user,
            ip: &e.ip,
            country: &e.country,
            server: &e.server,
            http_method: &e.http_method,
            rpc_method: &e.rpc_method,
            tool: &e.tool,
            decision: e.decision,
            reason: &e.reason,
            status: e.status,
            upstream_status: e.upstream_status,
            latency_us: e.latency_us,
        }
    }
}

/// Canonical form 2. Append new fields at the end, optional and skipped when absent; never
/// reorder or rename (the golden vectors in the tests below fail if anyone does).
#[derive(Serialize)]
struct V2<'a> {
    ts_ms: i64,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<&'a str>,
    http_method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rpc_method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool: Option<&'a str>,
    decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_status: Option<u16>,
    latency_us: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_bytes: Option<u64>,
    #[serde(skip_serializing_if = "<[BatchEntry]>::is_empty")]
    batch: &'a [BatchEntry],
    #[serde(skip_serializing_if = "Option::is_none")]
    operator: Option<&'a OperatorAction>,
}

impl<'a> From<&'a AuditEvent> for V2<'a> {
    fn from(e: &'a AuditEvent) -> Self {
        V2 {
            ts_ms: e.ts_ms,
            request_id: &e.request_id,
            client: e.client.as_deref(),
            credential_id: e.credential_id.as_deref(),
            user: e.user.as_deref(),
            ip: e.ip.as_deref(),
            country: e.country.as_deref(),
            server: e.server.as_deref(),
            http_method: &e.http_method,
            rpc_method: e.rpc_method.as_deref(),
            tool: e.tool.as_deref(),
            decision: e.decision.as_str(),
            reason: e.reason.as_deref(),
            status: e.status,
            upstream_status: e.upstream_status,
            latency_us: e.latency_us,
            outcome: e.outcome.map(Outcome::as_str),
            response_bytes: e.response_bytes,
            batch: &e.batch,
            operator: e.operator.as_ref(),
        }
    }
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
    /// The chain ends before a checkpoint: its newest rows were deleted.
    Truncated { last_seq: i64, checkpoint_seq: i64 },
    /// The row a checkpoint names has another hash (rows replaced).
    CheckpointMismatch { seq: i64 },
    /// The checkpoint's MAC does not match (edited, or not made with this master key).
    CheckpointForged { seq: i64 },
    /// Rows written with checkpoints exist, but the stored checkpoint is gone.
    CheckpointMissing,
    /// Rows follow the stored checkpoint: an older checkpoint was put back.
    CheckpointBehind { checkpoint_seq: i64, last_seq: i64 },
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
            ChainProblem::Truncated {
                last_seq,
                checkpoint_seq,
            } => write!(
                f,
                "rows {} to {checkpoint_seq} are missing (deleted from the end; a checkpoint \
                 names row {checkpoint_seq})",
                last_seq + 1
            ),
            ChainProblem::CheckpointMismatch { seq } => {
                write!(f, "row {seq} does not match the checkpoint that names it")
            }
            ChainProblem::CheckpointForged { seq } => write!(
                f,
                "the checkpoint at row {seq} is not signed with this master key (edited?)"
            ),
            ChainProblem::CheckpointMissing => write!(
                f,
                "the stored checkpoint is missing (deleted with the newest rows?)"
            ),
            ChainProblem::CheckpointBehind {
                checkpoint_seq,
                last_seq,
            } => write!(
                f,
                "the stored checkpoint names row {checkpoint_seq} but rows go on to \
                 {last_seq} (an older checkpoint was put back?)"
            ),
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

/// Walks the whole chain in pages and checks it against the stored checkpoint; reports every
/// problem found, not just the first.
pub async fn verify(store: &dyn Store, keyring: &Keyring) -> StoreResult<VerifyReport> {
    verify_with(store, keyring, None).await
}

/// [`verify`], also checking a checkpoint exported earlier and kept elsewhere: the chain must
/// still hold the row it names, unchanged.
pub async fn verify_with(
    store: &dyn Store,
    keyring: &Keyring,
    exported: Option<&Checkpoint>,
) -> StoreResult<VerifyReport> {
    let mut walk = Walk {
        keyring,
        exported,
        report: VerifyReport::default(),
        prev_hash: GENESIS.to_owned(),
        prev_seq: 0,
        scratch: Vec::new(),
        checkpointed_rows: false,
    };
    if let Some(exported) = exported
        && !exported.is_authentic(keyring)
    {
        walk.report
            .problems
            .push(ChainProblem::CheckpointForged { seq: exported.seq });
    }
    walk.rows(store).await?;
    // Read after the walk: every row walked was committed with a checkpoint at or after it,
    // so a checkpoint behind the last row was put back. One ahead may be rows appended
    // during the walk: walk on before calling them deleted.
    let mut stored = store.audit_checkpoint().await?;
    while let Some(checkpoint) = &stored
        && checkpoint.seq > walk.prev_seq
    {
        if !walk.rows(store).await? {
            break;
        }
        stored = store.audit_checkpoint().await?;
    }
    let mut report = walk.finish(stored.as_ref());
    report.last_seq = (walk.prev_seq > 0).then_some(walk.prev_seq);
    Ok(report)
}

struct Walk<'a> {
    keyring: &'a Keyring,
    exported: Option<&'a Checkpoint>,
    report: VerifyReport,
    prev_hash: String,
    prev_seq: i64,
    scratch: Vec<u8>,
    /// Whether rows written with checkpoints (version 2 and later) were seen.
    checkpointed_rows: bool,
}

impl Walk<'_> {
    /// Checks the rows after the last one checked; whether there were any.
    async fn rows(&mut self, store: &dyn Store) -> StoreResult<bool> {
        let mut any = false;
        loop {
            let page: Vec<AuditRow> = store.audit_page(self.prev_seq, 1_000).await?;
            if page.is_empty() {
                return Ok(any);
            }
            any = true;
            for row in page {
                self.row(row);
            }
        }
    }

    fn row(&mut self, row: AuditRow) {
        let problems = &mut self.report.problems;
        if row.seq != self.prev_seq + 1 {
            problems.push(ChainProblem::Missing {
                after_seq: self.prev_seq,
                next_seq: row.seq,
            });
        }
        if row.prev_hash != self.prev_hash {
            problems.push(ChainProblem::BrokenLink { seq: row.seq });
        }
        let computed = link_version(
            self.keyring,
            row.hash_version,
            &row.prev_hash,
            row.seq,
            &row.event,
            &mut self.scratch,
        );
        if computed.as_deref() != Some(row.hash.as_str()) {
            problems.push(ChainProblem::Modified { seq: row.seq });
        }
        if let Some(exported) = self.exported
            && exported.seq == row.seq
            && exported.hash != row.hash
        {
            problems.push(ChainProblem::CheckpointMismatch { seq: row.seq });
        }
        self.checkpointed_rows |= row.hash_version >= 2;
        self.report.rows_checked += 1;
        self.prev_seq = row.seq;
        self.prev_hash = row.hash;
    }

    fn finish(&mut self, stored: Option<&Checkpoint>) -> VerifyReport {
        let last_seq = self.prev_seq;
        let mut report = std::mem::take(&mut self.report);
        let problems = &mut report.problems;
        for anchor in stored.iter().copied().chain(self.exported) {
            if anchor.seq > last_seq {
                problems.push(ChainProblem::Truncated {
                    last_seq,
                    checkpoint_seq: anchor.seq,
                });
            }
        }
        match stored {
            None if self.checkpointed_rows => problems.push(ChainProblem::CheckpointMissing),
            None => {}
            Some(checkpoint) => {
                if !checkpoint.is_authentic(self.keyring) {
                    problems.push(ChainProblem::CheckpointForged {
                        seq: checkpoint.seq,
                    });
                }
                if checkpoint.seq < last_seq {
                    problems.push(ChainProblem::CheckpointBehind {
                        checkpoint_seq: checkpoint.seq,
                        last_seq,
                    });
                } else if checkpoint.seq == last_seq && checkpoint.hash != self.prev_hash {
                    problems.push(ChainProblem::CheckpointMismatch { seq: last_seq });
                }
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::{BatchEntry, Decision, Outcome};

    fn ring() -> Keyring {
        Keyring::from_master(&[7; 32])
    }

    /// A refused call, as recorded before versioning (no field added since is set).
    fn legacy_event() -> AuditEvent {
        AuditEvent {
            ts_ms: 1_750_000_000_123,
            request_id: "01jq8x4c0000002a".into(),
            client: Some("analytics-agent".into()),
            credential_id: Some("3f9a2c1b7d0e".into()),
            user: None,
            ip: Some("10.1.2.3".into()),
            country: Some("NL".into()),
            server: Some("finance".into()),
            http_method: "POST".into(),
            rpc_method: Some("tools/call".into()),
            tool: Some("get_balance".into()),
            decision: Decision::Deny,
            reason: Some("tool_not_granted".into()),
            status: 403,
            upstream_status: None,
            latency_us: 412,
            outcome: None,
            response_bytes: None,
            batch: Vec::new(),
            operator: None,
        }
    }

    /// Computed by the chain code before versioning existed: rows already stored must keep
    /// verifying, whatever is added to `AuditEvent`.
    #[test]
    fn version_1_hashes_match_rows_written_before_versioning() {
        let ring = ring();
        let event = legacy_event();
        let mut scratch = Vec::new();
        let first = link_version(&ring, 1, GENESIS, 1, &event, &mut scratch).unwrap();
        assert_eq!(
            first,
            "34d3c467eb7764545c1de21b7d18d119f9aaf9d2b2218ef34c10a5ea607b7e8c"
        );
        let second = link_version(&ring, 1, &first, 2, &event, &mut scratch).unwrap();
        assert_eq!(
            second,
            "c3053b423ad7490a162d124fbde46ce8afa9a958f46dad43204be3b013493c6b"
        );
    }

    #[test]
    fn version_2_golden_vectors() {
        let ring = ring();
        let mut scratch = Vec::new();
        let plain = link_version(&ring, 2, GENESIS, 1, &legacy_event(), &mut scratch).unwrap();
        assert_eq!(plain, V2_PLAIN);
        let ended = AuditEvent {
            decision: Decision::Error,
            reason: Some("upstream_truncated".into()),
            status: 200,
            upstream_status: Some(200),
            outcome: Some(Outcome::UpstreamTruncated),
            response_bytes: Some(17),
            batch: vec![
                BatchEntry {
                    method: "tools/call".into(),
                    tool: Some("a".into()),
                },
                BatchEntry {
                    method: "ping".into(),
                    tool: None,
                },
            ],
            ..legacy_event()
        };
        let full = link_version(&ring, 2, &plain, 2, &ended, &mut scratch).unwrap();
        assert_eq!(full, V2_FULL);
        assert_eq!(
            link(&ring, &plain, 2, &ended),
            V2_FULL,
            "new rows use version 2"
        );
    }

    /// The hashed bytes themselves, so a change to the form shows as text, not only as a hash.
    #[test]
    fn version_2_leaves_absent_fields_out() {
        let mut scratch = Vec::new();
        write_v2(GENESIS, 1, &legacy_event(), &mut scratch);
        let text = String::from_utf8(scratch).unwrap();
        assert_eq!(
            text,
            format!(
                "{GENESIS}\nv2\n1\n{{\"ts_ms\":1750000000123,\"request_id\":\"01jq8x4c0000002a\",\
                 \"client\":\"analytics-agent\",\"credential_id\":\"3f9a2c1b7d0e\",\
                 \"ip\":\"10.1.2.3\",\"country\":\"NL\",\"server\":\"finance\",\
                 \"http_method\":\"POST\",\"rpc_method\":\"tools/call\",\"tool\":\"get_balance\",\
                 \"decision\":\"deny\",\"reason\":\"tool_not_granted\",\"status\":403,\
                 \"latency_us\":412}}"
            )
        );
    }

    const V2_PLAIN: &str = "bc08a9290d042c97e2e99d37d916814c5de49ebeb5f30067f3d8a2a50de7312d";
    const V2_FULL: &str = "48e4835ce257666f1f3d13a1ab6fc8dca8a9ba155024b9dfae878e2aec33527f";

    #[test]
    fn the_version_is_part_of_the_hash() {
        let ring = ring();
        let mut scratch = Vec::new();
        let event = legacy_event();
        let v1 = link_version(&ring, 1, GENESIS, 1, &event, &mut scratch);
        let v2 = link_version(&ring, 2, GENESIS, 1, &event, &mut scratch);
        assert_ne!(v1, v2);
        assert_eq!(
            link_version(&ring, 3, GENESIS, 1, &event, &mut scratch),
            None
        );
    }
}
