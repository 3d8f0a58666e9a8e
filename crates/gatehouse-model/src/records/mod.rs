//! The records the store keeps, as plain values: what every layer reads and the store's
//! backends write. Validation of their text fields lives with the value types
//! ([`crate::names`], [`crate::tool_pattern`]); compiling them is the library's job.

mod admin;
mod oauth;
mod reload;
mod replicas;
mod stdio;
mod users;

use serde::{Deserialize, Serialize};

use crate::pin_action::PinAction;

pub use admin::{AdminRole, AdminTokenRecord, IdempotencyRecord};
pub use oauth::{
    ClientSecretRecord, OAuthClientMetadata, RefreshOutcome, RefreshTokenRecord, RevokedToken,
    SigningKeyRecord,
};
pub use reload::{RecordIssue, ReloadReport};
pub use replicas::ReplicaHeartbeat;
pub use stdio::{Sharing, StdioLimits, StdioSettings, command_allowed, valid_env_name};
pub use users::{
    AuthorizationCodeRecord, CodeRedemption, GroupConnectionRecord, UpstreamGrantRecord, UserRecord,
};

/// Generation counter value after a change.
pub type Generation = i64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRecord {
    pub name: String,
    pub url: String,
    /// Header name of the injected upstream credential; its value is sealed below.
    pub credential_header: Option<String>,
    #[serde(skip)]
    pub credential_sealed: Option<Vec<u8>>,
    /// Tokens fetched for the upstream and the identity assertion (ADR 0006 §5–6).
    #[serde(default)]
    pub upstream_auth: crate::upstream_auth::UpstreamAuthRecord,
    pub allow_anonymous: bool,
    pub allow_unknown_methods: bool,
    /// What happens when a tool definition changes (stored as `block`, `warn` or `off`).
    pub pin_action: PinAction,
    pub created_at: i64,
    /// Set for a server that is a local program (`url` is then `stdio://{name}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdio: Option<StdioSettings>,
    /// Set for a virtual server (`url` is then `virtual://{name}`): the names of the servers
    /// it aggregates, in the order their lists are merged (ADR 0006 §4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub name: String,
    pub description: String,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    /// Set when the client may use the OAuth authorization server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthClientMetadata>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub client: String,
    pub label: String,
    #[serde(skip)]
    pub secret_hash: Vec<u8>,
    pub tools: Option<Vec<String>>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub rotated_from: Option<String>,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    pub client: String,
    pub server: String,
    pub tools: Vec<String>,
    pub resources: bool,
    pub prompts: bool,
    pub created_at: i64,
}

/// A policy as stored: a scope, a kind and its JSON spec (validated by `crate::policy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub id: String,
    pub kind: String,
    pub client: Option<String>,
    pub server: Option<String>,
    /// Tool pattern the policy is limited to.
    pub tools: Option<String>,
    pub spec: serde_json::Value,
    pub created_at: i64,
}

/// Persisted quota consumption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaUsage {
    pub policy_id: String,
    pub subject: String,
    pub window_start: i64,
    pub used: i64,
}

/// Quota consumption counted since the last write-back, added to the stored usage (so
/// replicas sharing a store add up instead of overwriting each other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaDelta {
    pub policy_id: String,
    pub subject: String,
    /// The window the calls were counted in: a delta for a later window than the stored one
    /// starts that window afresh; one for an earlier window is dropped.
    pub window_start: i64,
    /// Calls counted less calls refunded (negative when more were refunded).
    pub delta: i64,
}

/// The longest approved definition kept for review (bytes of JSON).
pub const MAX_PINNED_DEFINITION: usize = 64 * 1024;

/// The pinned definition of one tool of one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolPin {
    pub server: String,
    pub tool: String,
    pub approved_hash: Option<String>,
    /// The approved definition's JSON; `None` for pins approved before it was kept, or over
    /// [`MAX_PINNED_DEFINITION`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_definition: Option<String>,
    pub pending_hash: Option<String>,
    pub pending_definition: Option<String>,
    pub pending_reason: Option<String>,
    pub first_seen: i64,
    pub updated_at: i64,
}

/// A tool definition seen in a `tools/list` result.
#[derive(Debug, Clone)]
pub struct ToolObservation {
    pub server: String,
    pub tool: String,
    pub hash: String,
    pub definition: String,
    /// Set when the description carries prompt-injection markers (not trusted on first sight).
    pub suspicious: Option<String>,
    pub at: i64,
}

/// Everything the snapshot is built from, read in one consistent transaction.
#[derive(Debug, Clone, Default)]
pub struct StoreContents {
    pub generation: Generation,
    pub servers: Vec<ServerRecord>,
    pub clients: Vec<ClientRecord>,
    /// Not revoked (expired ones included: they may still be inside a rotation overlap check).
    pub api_keys: Vec<ApiKeyRecord>,
    pub connections: Vec<ConnectionRecord>,
    pub policies: Vec<PolicyRecord>,
    pub tool_pins: Vec<ToolPin>,
    /// Live (not revoked) client secrets; expired ones are filtered by the snapshot.
    pub client_secrets: Vec<ClientSecretRecord>,
    pub signing_keys: Vec<SigningKeyRecord>,
    /// Revoked access tokens not yet expired.
    pub revoked_tokens: Vec<RevokedToken>,
    /// Enabled users.
    pub users: Vec<UserRecord>,
    pub group_connections: Vec<GroupConnectionRecord>,
}
