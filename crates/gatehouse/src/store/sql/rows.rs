//! Row → record conversions, for any backend whose rows give the [`Columns`] types.

use super::Columns;
use crate::store::{StoreError, StoreResult};
use gatehouse_model::{
    audit::{AuditEvent, AuditRow, Decision, Outcome},
    pin_action::PinAction,
    records::{
        ApiKeyRecord, AuthorizationCodeRecord, ClientRecord, ClientSecretRecord, ConnectionRecord,
        GroupConnectionRecord, OAuthClientMetadata, PolicyRecord, QuotaUsage, RefreshTokenRecord,
        RevokedToken, ServerRecord, SigningKeyRecord, StdioSettings, ToolPin, UserRecord,
    },
    upstream_auth::UpstreamAuthRecord,
};

fn json_list(text: Option<String>) -> StoreResult<Option<Vec<String>>> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

/// A stored tool list that is not JSON, kept as a pattern no name can match and no compile
/// accepts (`(` is not a tool-name character): the row then fails on its own when the snapshot
/// is built (the key or connection is left out, and reported) instead of failing the whole load.
pub(crate) fn tool_list_or_unreadable(text: Option<String>) -> Option<Vec<String>> {
    let text = text?;
    Some(
        serde_json::from_str(&text)
            .unwrap_or_else(|e| vec![format!("(stored tool list is not JSON: {e})")]),
    )
}

fn client_oauth(text: Option<String>) -> StoreResult<Option<OAuthClientMetadata>> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

pub(crate) fn server_from(row: &impl Columns) -> StoreResult<ServerRecord> {
    Ok(ServerRecord {
        name: row.text("name")?,
        url: row.text("url")?,
        credential_header: row.opt_text("credential_header")?,
        credential_sealed: row.opt_bytes("credential_sealed")?,
        upstream_auth: upstream_auth_from(row)?,
        allow_anonymous: row.flag("allow_anonymous")?,
        allow_unknown_methods: row.flag("allow_unknown_methods")?,
        // A value this version does not know reads as the strictest, so the server still loads.
        pin_action: PinAction::parse(&row.text("pin_action")?).unwrap_or(PinAction::Block),
        created_at: row.int("created_at")?,
        stdio: server_stdio(row.opt_text("stdio")?, row.opt_bytes("stdio_env_sealed")?)?,
        members: server_members(row.opt_text("members")?)?,
    })
}

fn upstream_auth_from(row: &impl Columns) -> StoreResult<UpstreamAuthRecord> {
    let mut record = UpstreamAuthRecord {
        secret_sealed: row.opt_bytes("upstream_secret_sealed")?,
        identity_header: row.opt_text("identity_header")?,
        ..UpstreamAuthRecord::default()
    };
    // Settings this version cannot read leave the one server out (see `unreadable`), not
    // every server.
    if let Some(text) = row.opt_text("upstream_auth")? {
        match serde_json::from_str(&text) {
            Ok(spec) => record.spec = Some(spec),
            Err(e) => record.unreadable = Some(format!("upstream auth settings: {e}")),
        }
    }
    Ok(record)
}

/// A virtual server's member names (a JSON array); none for a server with an upstream.
fn server_members(text: Option<String>) -> StoreResult<Vec<String>> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A stdio server's settings (JSON) and its sealed environment (a column of its own).
fn server_stdio(
    text: Option<String>,
    env_sealed: Option<Vec<u8>>,
) -> StoreResult<Option<StdioSettings>> {
    let Some(text) = text else { return Ok(None) };
    let mut settings: StdioSettings =
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    settings.env_sealed = env_sealed;
    Ok(Some(settings))
}

pub(crate) fn client_from(row: &impl Columns) -> StoreResult<ClientRecord> {
    Ok(ClientRecord {
        name: row.text("name")?,
        description: row.text("description")?,
        disabled_at: row.opt_int("disabled_at")?,
        created_at: row.int("created_at")?,
        oauth: client_oauth(row.opt_text("oauth")?)?,
    })
}

pub(crate) fn key_from(row: &impl Columns) -> StoreResult<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.text("id")?,
        client: row.text("client")?,
        label: row.text("label")?,
        secret_hash: row.bytes("secret_hash")?,
        tools: tool_list_or_unreadable(row.opt_text("tools")?),
        created_at: row.int("created_at")?,
        expires_at: row.opt_int("expires_at")?,
        revoked_at: row.opt_int("revoked_at")?,
        rotated_from: row.opt_text("rotated_from")?,
        last_used_at: row.opt_int("last_used_at")?,
    })
}

pub(crate) fn connection_from(row: &impl Columns) -> StoreResult<ConnectionRecord> {
    Ok(ConnectionRecord {
        client: row.text("client")?,
        server: row.text("server")?,
        tools: tool_list_or_unreadable(row.opt_text("tools")?).unwrap_or_default(),
        resources: row.flag("resources")?,
        prompts: row.flag("prompts")?,
        created_at: row.int("created_at")?,
    })
}

pub(crate) fn policy_from(row: &impl Columns) -> StoreResult<PolicyRecord> {
    let spec = row.text("spec")?;
    let mut kind = row.text("kind")?;
    // An unreadable spec must not fail the whole load: the record keeps its id and scope, and
    // a kind no compile accepts, so it becomes a reported deny-all for that scope.
    let spec = serde_json::from_str(&spec).unwrap_or_else(|e| {
        kind = format!("{kind} (stored spec is not JSON: {e})");
        serde_json::Value::Null
    });
    Ok(PolicyRecord {
        id: row.text("id")?,
        kind,
        client: row.opt_text("client")?,
        server: row.opt_text("server")?,
        tools: row.opt_text("tools")?,
        spec,
        created_at: row.int("created_at")?,
    })
}

pub(crate) fn quota_from(row: &impl Columns) -> StoreResult<QuotaUsage> {
    Ok(QuotaUsage {
        policy_id: row.text("policy_id")?,
        subject: row.text("subject")?,
        window_start: row.int("window_start")?,
        used: row.int("used")?,
    })
}

pub(crate) fn pin_from(row: &impl Columns) -> StoreResult<ToolPin> {
    Ok(ToolPin {
        server: row.text("server")?,
        tool: row.text("tool")?,
        approved_hash: row.opt_text("approved_hash")?,
        approved_definition: row.opt_text("approved_definition")?,
        pending_hash: row.opt_text("pending_hash")?,
        pending_definition: row.opt_text("pending_definition")?,
        pending_reason: row.opt_text("pending_reason")?,
        first_seen: row.int("first_seen")?,
        updated_at: row.int("updated_at")?,
    })
}

pub(crate) fn secret_from(row: &impl Columns) -> StoreResult<ClientSecretRecord> {
    Ok(ClientSecretRecord {
        id: row.text("id")?,
        client: row.text("client")?,
        secret_hash: row.bytes("secret_hash")?,
        created_at: row.int("created_at")?,
        expires_at: row.opt_int("expires_at")?,
        revoked_at: row.opt_int("revoked_at")?,
    })
}

pub(crate) fn signing_key_from(row: &impl Columns) -> StoreResult<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: row.text("kid")?,
        alg: row.text("alg")?,
        private_sealed: row.bytes("private_sealed")?,
        public_jwk: row.text("public_jwk")?,
        created_at: row.int("created_at")?,
        active_at: row.int("active_at")?,
        retired_at: row.opt_int("retired_at")?,
    })
}

pub(crate) fn revoked_from(row: &impl Columns) -> StoreResult<RevokedToken> {
    Ok(RevokedToken {
        jti: row.text("jti")?,
        expires_at: row.int("expires_at")?,
    })
}

pub(crate) fn refresh_from(row: &impl Columns) -> StoreResult<RefreshTokenRecord> {
    Ok(RefreshTokenRecord {
        id: row.text("id")?,
        family: row.text("family")?,
        token_hash: row.bytes("token_hash")?,
        client: row.text("client")?,
        subject: row.opt_text("subject")?,
        scope: row.text("scope")?,
        resource: row.text("resource")?,
        created_at: row.int("created_at")?,
        expires_at: row.int("expires_at")?,
        consumed_at: row.opt_int("consumed_at")?,
        replaced_by: row.opt_text("replaced_by")?,
        revoked_at: row.opt_int("revoked_at")?,
        revocation_hash: row.opt_bytes("revocation_hash")?,
    })
}

pub(crate) fn user_from(row: &impl Columns) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        id: row.text("id")?,
        username: row.text("username")?,
        display_name: row.text("display_name")?,
        password_hash: row.opt_text("password_hash")?,
        idp: row.opt_text("idp")?,
        idp_subject: row.opt_text("idp_subject")?,
        groups: json_list(Some(row.text("groups")?))?.unwrap_or_default(),
        created_at: row.int("created_at")?,
        disabled_at: row.opt_int("disabled_at")?,
        last_login_at: row.opt_int("last_login_at")?,
    })
}

pub(crate) fn group_connection_from(row: &impl Columns) -> StoreResult<GroupConnectionRecord> {
    Ok(GroupConnectionRecord {
        group: row.text("group_name")?,
        server: row.text("server")?,
        tools: tool_list_or_unreadable(Some(row.text("tools")?)).unwrap_or_default(),
        resources: row.flag("resources")?,
        prompts: row.flag("prompts")?,
        created_at: row.int("created_at")?,
    })
}

pub(crate) fn code_from(row: &impl Columns) -> StoreResult<AuthorizationCodeRecord> {
    Ok(AuthorizationCodeRecord {
        code_hash: row.bytes("code_hash")?,
        client: row.text("client")?,
        subject: row.text("subject")?,
        redirect_uri: row.text("redirect_uri")?,
        code_challenge: row.text("code_challenge")?,
        scope: row.text("scope")?,
        resource: row.text("resource")?,
        created_at: row.int("created_at")?,
        expires_at: row.int("expires_at")?,
        consumed_at: row.opt_int("consumed_at")?,
        family: row.opt_text("family")?,
        access_jti: row.opt_text("access_jti")?,
        access_expires_at: row.opt_int("access_expires_at")?,
        dpop_jkt: row.opt_text("dpop_jkt")?,
    })
}

pub(crate) fn audit_from(row: &impl Columns) -> StoreResult<AuditRow> {
    let decision = row.text("decision")?;
    let to_u16 = |v: i64| u16::try_from(v).map_err(|_| StoreError::Corrupt(format!("status {v}")));
    let (batch, operator) = super::audit_details::decode(row.opt_text("batch")?.as_deref())?;
    Ok(AuditRow {
        seq: row.int("seq")?,
        chain_id: row.int("chain_id")?,
        chain_seq: row.int("chain_seq")?,
        event: AuditEvent {
            ts_ms: row.int("ts_ms")?,
            request_id: row.text("request_id")?,
            client: row.opt_text("client")?,
            credential_id: row.opt_text("credential_id")?,
            user: row.opt_text("user_id")?,
            ip: row.opt_text("ip")?,
            country: row.opt_text("country")?,
            server: row.opt_text("server")?,
            http_method: row.text("http_method")?,
            rpc_method: row.opt_text("rpc_method")?,
            tool: row.opt_text("tool")?,
            decision: Decision::parse(&decision)
                .ok_or_else(|| StoreError::Corrupt(format!("decision {decision:?}")))?,
            reason: row.opt_text("reason")?,
            status: to_u16(row.int("status")?)?,
            upstream_status: row.opt_int("upstream_status")?.map(to_u16).transpose()?,
            latency_us: row.int("latency_us")?,
            outcome: match row.opt_text("outcome")? {
                Some(text) => Some(
                    Outcome::parse(&text)
                        .ok_or_else(|| StoreError::Corrupt(format!("outcome {text:?}")))?,
                ),
                None => None,
            },
            response_bytes: row
                .opt_int("response_bytes")?
                .and_then(|n| u64::try_from(n).ok()),
            batch,
            operator,
            rule: row.opt_text("rule")?,
        },
        // A version no build wrote is reported by verification as a modified row.
        hash_version: u8::try_from(row.int("hash_version")?).unwrap_or(0),
        prev_hash: row.text("prev_hash")?,
        hash: row.text("hash")?,
    })
}
