//! Row → record conversions for the SQLite store.

use sqlx::{Row, sqlite::SqliteRow};

use super::super::*;
use crate::audit::event::{AuditEvent, Decision, Outcome};

pub(super) fn json_list(text: Option<String>) -> StoreResult<Option<Vec<String>>> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

/// A stored tool list that is not JSON, kept as a pattern no name can match and no compile
/// accepts (`(` is not a tool-name character): the row then fails on its own when the snapshot
/// is built (the key or connection is left out, and reported) instead of failing the whole load.
pub(super) fn tool_list_or_unreadable(text: Option<String>) -> Option<Vec<String>> {
    let text = text?;
    Some(
        serde_json::from_str(&text)
            .unwrap_or_else(|e| vec![format!("(stored tool list is not JSON: {e})")]),
    )
}

pub(super) fn server_from(row: &SqliteRow) -> StoreResult<ServerRecord> {
    Ok(ServerRecord {
        name: row.try_get("name")?,
        url: row.try_get("url")?,
        credential_header: row.try_get("credential_header")?,
        credential_sealed: row.try_get("credential_sealed")?,
        allow_anonymous: row.try_get("allow_anonymous")?,
        allow_unknown_methods: row.try_get("allow_unknown_methods")?,
        pin_action: row.try_get("pin_action")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(super) fn client_from(row: &SqliteRow) -> StoreResult<ClientRecord> {
    Ok(ClientRecord {
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        disabled_at: row.try_get("disabled_at")?,
        created_at: row.try_get("created_at")?,
        oauth: super::oauth::client_oauth(row.try_get("oauth")?)?,
    })
}

pub(super) fn key_from(row: &SqliteRow) -> StoreResult<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.try_get("id")?,
        client: row.try_get("client")?,
        label: row.try_get("label")?,
        secret_hash: row.try_get("secret_hash")?,
        tools: tool_list_or_unreadable(row.try_get("tools")?),
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        rotated_from: row.try_get("rotated_from")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

pub(super) fn connection_from(row: &SqliteRow) -> StoreResult<ConnectionRecord> {
    Ok(ConnectionRecord {
        client: row.try_get("client")?,
        server: row.try_get("server")?,
        tools: tool_list_or_unreadable(row.try_get("tools")?).unwrap_or_default(),
        resources: row.try_get("resources")?,
        prompts: row.try_get("prompts")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(super) fn audit_from(row: &SqliteRow) -> StoreResult<AuditRow> {
    let decision: String = row.try_get("decision")?;
    let status: i64 = row.try_get("status")?;
    let upstream_status: Option<i64> = row.try_get("upstream_status")?;
    let to_u16 = |v: i64| u16::try_from(v).map_err(|_| StoreError::Corrupt(format!("status {v}")));
    Ok(AuditRow {
        seq: row.try_get("seq")?,
        chain_id: row.try_get("chain_id")?,
        chain_seq: row.try_get("chain_seq")?,
        event: AuditEvent {
            ts_ms: row.try_get("ts_ms")?,
            request_id: row.try_get("request_id")?,
            client: row.try_get("client")?,
            credential_id: row.try_get("credential_id")?,
            user: row.try_get("user_id")?,
            ip: row.try_get("ip")?,
            country: row.try_get("country")?,
            server: row.try_get("server")?,
            http_method: row.try_get("http_method")?,
            rpc_method: row.try_get("rpc_method")?,
            tool: row.try_get("tool")?,
            decision: Decision::parse(&decision)
                .ok_or_else(|| StoreError::Corrupt(format!("decision {decision:?}")))?,
            reason: row.try_get("reason")?,
            status: to_u16(status)?,
            upstream_status: upstream_status.map(to_u16).transpose()?,
            latency_us: row.try_get("latency_us")?,
            outcome: match row.try_get::<Option<String>, _>("outcome")? {
                Some(text) => Some(
                    Outcome::parse(&text)
                        .ok_or_else(|| StoreError::Corrupt(format!("outcome {text:?}")))?,
                ),
                None => None,
            },
            response_bytes: row
                .try_get::<Option<i64>, _>("response_bytes")?
                .and_then(|n| u64::try_from(n).ok()),
            batch: match row.try_get::<Option<String>, _>("batch")? {
                Some(text) => serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("batch: {e}")))?,
                None => Vec::new(),
            },
        },
        // A version no build wrote is reported by verification as a modified row.
        hash_version: u8::try_from(row.try_get::<i64, _>("hash_version")?).unwrap_or(0),
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

pub(super) fn policy_from(row: &SqliteRow) -> StoreResult<PolicyRecord> {
    let spec: String = row.try_get("spec")?;
    let mut kind: String = row.try_get("kind")?;
    // An unreadable spec must not fail the whole load: the record keeps its id and scope, and
    // a kind no compile accepts, so it becomes a reported deny-all for that scope.
    let spec = serde_json::from_str(&spec).unwrap_or_else(|e| {
        kind = format!("{kind} (stored spec is not JSON: {e})");
        serde_json::Value::Null
    });
    Ok(PolicyRecord {
        id: row.try_get("id")?,
        kind,
        client: row.try_get("client")?,
        server: row.try_get("server")?,
        tools: row.try_get("tools")?,
        spec,
        created_at: row.try_get("created_at")?,
    })
}
