//! Persistence behind one trait. Business code talks to `dyn Store`; each backend lives in
//! its own file with its own migrations (`migrations/<backend>`), so there is no backend `if`
//! anywhere else.
//!
//! Every method that changes what the gateway's snapshot is built from returns the store's new
//! *generation*; a running server polls the generation and rebuilds when it moves.
//!
//! What every backend must do is written down as tests: the store contract suite
//! (`tests/it/store_contract/`) runs unchanged against each backend it lists.

mod audit_chain;
pub mod oauth;
mod reload_report;
pub mod replicas;
mod sql;
mod sqlite;
pub mod users;

pub use sqlite::SqliteStore;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::audit::event::{AuditFilter, AuditRow};
pub use audit_chain::{ChainStart, Checkpoint};
pub use oauth::{
    ClientSecretRecord, OAuthClientMetadata, OAuthStore, RefreshOutcome, RefreshTokenRecord,
    RevokedToken, SigningKeyRecord,
};
pub use reload_report::{RecordIssue, ReloadReport};
pub use replicas::{ReplicaHeartbeat, ReplicaStore};
pub use users::{
    AuthorizationCodeRecord, CodeRedemption, GroupConnectionRecord, UserRecord, UserStore,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{kind} {name:?} already exists")]
    Conflict { kind: &'static str, name: String },
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Backend(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Writing the audit trail failed (the writer retries; nothing is dropped).
    #[error("audit trail: {0}")]
    Audit(String),
    #[error("unsupported database: {0}")]
    Unsupported(String),
}

impl StoreError {
    pub fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        StoreError::NotFound {
            kind,
            name: name.into(),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

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
    pub allow_anonymous: bool,
    pub allow_unknown_methods: bool,
    /// What happens when a tool definition changes: `block`, `warn` or `off`.
    pub pin_action: String,
    pub created_at: i64,
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

/// The pinned definition of one tool of one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolPin {
    pub server: String,
    pub tool: String,
    pub approved_hash: Option<String>,
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

#[async_trait]
pub trait Store: OAuthStore + UserStore + ReplicaStore {
    async fn insert_server(&self, server: &ServerRecord) -> StoreResult<Generation>;
    async fn list_servers(&self) -> StoreResult<Vec<ServerRecord>>;
    async fn get_server(&self, name: &str) -> StoreResult<ServerRecord>;
    /// Replaces the server's settings (URL, credential, flags); its connections stay.
    async fn update_server(&self, server: &ServerRecord) -> StoreResult<Generation>;
    /// Removes the server and its connections.
    async fn delete_server(&self, name: &str) -> StoreResult<Generation>;

    async fn insert_client(&self, client: &ClientRecord) -> StoreResult<Generation>;
    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>>;
    async fn get_client(&self, name: &str) -> StoreResult<ClientRecord>;
    async fn set_client_disabled(&self, name: &str, at: Option<i64>) -> StoreResult<Generation>;

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<Generation>;
    async fn list_api_keys(&self, client: Option<&str>) -> StoreResult<Vec<ApiKeyRecord>>;
    async fn get_api_key(&self, id: &str) -> StoreResult<ApiKeyRecord>;
    /// Inserts `new` and shortens `old_id`'s validity to `old_expires_at`, atomically.
    async fn rotate_api_key(
        &self,
        old_id: &str,
        new: &ApiKeyRecord,
        old_expires_at: i64,
    ) -> StoreResult<Generation>;
    async fn revoke_api_key(&self, id: &str, at: i64) -> StoreResult<Generation>;
    /// Batched `last_used_at` write-back; does not move the generation.
    async fn record_key_usage(&self, usage: &[(String, i64)]) -> StoreResult<()>;

    /// Creates or replaces the connection `client → server`.
    async fn upsert_connection(&self, connection: &ConnectionRecord) -> StoreResult<Generation>;
    async fn list_connections(&self) -> StoreResult<Vec<ConnectionRecord>>;
    async fn delete_connection(&self, client: &str, server: &str) -> StoreResult<Generation>;

    async fn insert_policy(&self, policy: &PolicyRecord) -> StoreResult<Generation>;
    async fn list_policies(&self) -> StoreResult<Vec<PolicyRecord>>;
    /// Removes the policy and its quota counters.
    async fn delete_policy(&self, id: &str) -> StoreResult<Generation>;
    async fn load_quota_usage(&self) -> StoreResult<Vec<QuotaUsage>>;
    /// Adds each delta to the stored usage of its window (`used = used + delta`, never below
    /// zero), atomically per row.
    async fn add_quota_usage(&self, deltas: &[QuotaDelta]) -> StoreResult<()>;

    async fn list_tool_pins(&self) -> StoreResult<Vec<ToolPin>>;
    /// Records a definition; returns the new generation when the pin state changed.
    async fn observe_tool(&self, seen: &ToolObservation) -> StoreResult<Option<Generation>>;
    /// Approves pending definitions (all of the server's, or the named tools); returns the
    /// generation and how many were approved.
    async fn approve_tools(
        &self,
        server: &str,
        tools: &[String],
        at: i64,
    ) -> StoreResult<(Generation, u64)>;

    async fn generation(&self) -> StoreResult<Generation>;
    async fn load_contents(&self) -> StoreResult<StoreContents>;
    /// What the running server's last reload reported (records it could not compile), for
    /// `gatehouse status`; written only when it changes.
    async fn report_reload(&self, report: &crate::store::ReloadReport) -> StoreResult<()>;
    async fn reload_report(&self) -> StoreResult<Option<crate::store::ReloadReport>>;

    /// The last row of a chain: its `(chain_seq, hash)`, where the chain's writer continues.
    async fn audit_chain_head(&self, chain_id: i64) -> StoreResult<Option<(i64, String)>>;
    /// Appends one chain's rows and moves its checkpoint to the last of them, in one
    /// transaction; with `opens`, adds the chain's registry entry in it too (refused, like the
    /// rows, if another writer took that chain id or registry position first). The store
    /// numbers the rows' `seq` in commit order. Shared, so a backend may hand them to a
    /// blocking thread without copying them; the caller keeps them for a retry.
    async fn append_audit(
        &self,
        rows: Arc<Vec<AuditRow>>,
        checkpoint: crate::store::Checkpoint,
        opens: Option<crate::store::ChainStart>,
    ) -> StoreResult<()>;
    /// A chain's checkpoint (none before its first append that wrote one).
    async fn audit_checkpoint(
        &self,
        chain_id: i64,
    ) -> StoreResult<Option<crate::store::Checkpoint>>;
    /// Every chain's checkpoint, by chain id.
    async fn audit_checkpoints(&self) -> StoreResult<Vec<crate::store::Checkpoint>>;
    /// The chain registry, by chain id.
    async fn audit_chains(&self) -> StoreResult<Vec<crate::store::ChainStart>>;
    /// The ids of the chains that have rows, in order.
    async fn audit_chain_ids(&self) -> StoreResult<Vec<i64>>;
    async fn query_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRow>>;
    /// Rows in table order (`seq`) after `after_seq`.
    async fn audit_page(&self, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditRow>>;
    /// One chain's rows in chain order after `after_chain_seq`, for verification.
    async fn audit_chain_page(
        &self,
        chain_id: i64,
        after_chain_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditRow>>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the backend named by the URL scheme (`sqlite://…`).
pub async fn open(database_url: &str) -> StoreResult<DynStore> {
    if database_url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(database_url).await?))
    } else {
        Err(StoreError::Unsupported(format!(
            "database URL {database_url:?}: only sqlite:// is available in this build"
        )))
    }
}
