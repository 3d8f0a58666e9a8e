//! The hash chains: `hash(n) = HMAC(audit key, prev_hash ‖ version ‖ chain ‖ seq ‖ canonical
//! form of event n)`, one chain per writer (`registry.rs`), `seq` counting from 1 in each.
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
//! - version 3 (rows written since chains): version 2's form, with `v3` and the chain id in
//!   the input, so a row cannot be moved to another chain. Versions 1 and 2 exist only in
//!   chain 0, the rows written before chains.

use serde::Serialize;

use crate::secrets::Keyring;
use gatehouse_model::audit::{AuditEvent, BatchEntry, Decision, OperatorAction, Outcome};

pub use crate::audit::verify::{
    ChainProblem, ChainSummary, Found, VerifyReport, verify, verify_with,
};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The canonical form new rows are written in.
pub const HASH_VERSION: u8 = 3;

/// The hash of a new row (current version).
pub fn link(
    keyring: &Keyring,
    chain_id: i64,
    prev_hash: &str,
    seq: i64,
    event: &AuditEvent,
) -> String {
    link_with(keyring, chain_id, prev_hash, seq, event, &mut Vec::new())
}

/// [`link`], building the hashed bytes in `scratch`: the writer reuses one buffer for every
/// row instead of allocating per row.
pub fn link_with(
    keyring: &Keyring,
    chain_id: i64,
    prev_hash: &str,
    seq: i64,
    event: &AuditEvent,
    scratch: &mut Vec<u8>,
) -> String {
    write_v3(chain_id, prev_hash, seq, event, scratch);
    hex::encode(keyring.audit_mac(&[scratch]))
}

/// The hash of a row written in canonical form `version`; `None` for a version this build
/// does not know (a row from a newer Gatehouse, or an edited version column), or one that
/// cannot occur in the row's chain.
pub fn link_version(
    keyring: &Keyring,
    version: u8,
    chain_id: i64,
    prev_hash: &str,
    seq: i64,
    event: &AuditEvent,
    scratch: &mut Vec<u8>,
) -> Option<String> {
    match version {
        1 if chain_id == 0 => write_v1(prev_hash, seq, event, scratch),
        2 if chain_id == 0 => write_v2(prev_hash, seq, event, scratch),
        3 => write_v3(chain_id, prev_hash, seq, event, scratch),
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

fn write_v3(chain_id: i64, prev_hash: &str, seq: i64, event: &AuditEvent, scratch: &mut Vec<u8>) {
    use std::io::Write as _;
    scratch.clear();
    scratch.extend_from_slice(prev_hash.as_bytes());
    let _ = write!(scratch, "\nv3\nchain {chain_id}\n{seq}\n");
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
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
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
            rule: e.rule.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_model::audit::{BatchEntry, Decision, Outcome};

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
            rule: None,
        }
    }

    /// Computed by the chain code before versioning existed: rows already stored must keep
    /// verifying, whatever is added to `AuditEvent`.
    #[test]
    fn version_1_hashes_match_rows_written_before_versioning() {
        let ring = ring();
        let event = legacy_event();
        let mut scratch = Vec::new();
        let first = link_version(&ring, 1, 0, GENESIS, 1, &event, &mut scratch).unwrap();
        assert_eq!(
            first,
            "34d3c467eb7764545c1de21b7d18d119f9aaf9d2b2218ef34c10a5ea607b7e8c"
        );
        let second = link_version(&ring, 1, 0, &first, 2, &event, &mut scratch).unwrap();
        assert_eq!(
            second,
            "c3053b423ad7490a162d124fbde46ce8afa9a958f46dad43204be3b013493c6b"
        );
    }

    #[test]
    fn version_2_golden_vectors() {
        let ring = ring();
        let mut scratch = Vec::new();
        let plain = link_version(&ring, 2, 0, GENESIS, 1, &legacy_event(), &mut scratch).unwrap();
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
        let full = link_version(&ring, 2, 0, &plain, 2, &ended, &mut scratch).unwrap();
        assert_eq!(full, V2_FULL);
    }

    #[test]
    fn version_3_golden_vectors() {
        let ring = ring();
        let mut scratch = Vec::new();
        let first = link_version(&ring, 3, 7, GENESIS, 1, &legacy_event(), &mut scratch).unwrap();
        assert_eq!(first, V3_CHAIN_7);
        assert_eq!(
            link(&ring, 7, GENESIS, 1, &legacy_event()),
            V3_CHAIN_7,
            "new rows use version 3"
        );
        write_v3(7, GENESIS, 1, &legacy_event(), &mut scratch);
        let mut v2_form = Vec::new();
        write_v2(GENESIS, 1, &legacy_event(), &mut v2_form);
        assert_eq!(
            String::from_utf8(scratch).unwrap(),
            String::from_utf8(v2_form)
                .unwrap()
                .replacen("\nv2\n", "\nv3\nchain 7\n", 1),
            "version 3 is version 2's form with the chain in the input"
        );
    }

    const V3_CHAIN_7: &str = "b659f049a056d3d05d8c9cfe7bd0d6c44acd1337ad1e7dbc253319b5d3734309";

    /// Versions 1 and 2 belong to chain 0; a row of another chain claiming one was edited.
    #[test]
    fn the_chain_is_part_of_the_hash() {
        let ring = ring();
        let mut scratch = Vec::new();
        let event = legacy_event();
        let in_7 = link_version(&ring, 3, 7, GENESIS, 1, &event, &mut scratch);
        let in_8 = link_version(&ring, 3, 8, GENESIS, 1, &event, &mut scratch);
        assert_ne!(in_7, in_8);
        for version in [1, 2] {
            assert_eq!(
                link_version(&ring, version, 7, GENESIS, 1, &event, &mut scratch),
                None
            );
        }
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

    /// The deciding rule (migration 0016) is the last field of the form: hashed when present,
    /// left out when absent, so an event without one hashes as before it existed (the golden
    /// vectors above are unchanged).
    #[test]
    fn the_rule_is_hashed_last_and_only_when_present() {
        let ring = ring();
        let decided = AuditEvent {
            rule: Some("policy:burst".into()),
            ..legacy_event()
        };
        let mut scratch = Vec::new();
        write_v3(7, GENESIS, 1, &decided, &mut scratch);
        let text = String::from_utf8(scratch).unwrap();
        assert!(
            text.ends_with(",\"latency_us\":412,\"rule\":\"policy:burst\"}"),
            "{text}"
        );
        assert_ne!(link(&ring, 7, GENESIS, 1, &decided), V3_CHAIN_7);
        assert_eq!(link(&ring, 7, GENESIS, 1, &legacy_event()), V3_CHAIN_7);
    }

    const V2_PLAIN: &str = "bc08a9290d042c97e2e99d37d916814c5de49ebeb5f30067f3d8a2a50de7312d";
    const V2_FULL: &str = "48e4835ce257666f1f3d13a1ab6fc8dca8a9ba155024b9dfae878e2aec33527f";

    #[test]
    fn the_version_is_part_of_the_hash() {
        let ring = ring();
        let mut scratch = Vec::new();
        let event = legacy_event();
        let v1 = link_version(&ring, 1, 0, GENESIS, 1, &event, &mut scratch);
        let v2 = link_version(&ring, 2, 0, GENESIS, 1, &event, &mut scratch);
        assert_ne!(v1, v2);
        assert_eq!(
            link_version(&ring, 4, 0, GENESIS, 1, &event, &mut scratch),
            None
        );
    }
}
