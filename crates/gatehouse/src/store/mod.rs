//! Persistence behind one trait. Business code talks to `dyn Store`; each backend lives in
//! its own file with its own migrations (`migrations/<backend>`), so there is no backend `if`
//! anywhere else.
//!
//! Every method that changes what the gateway's snapshot is built from returns the store's new
//! *generation*; a running server polls the generation and rebuilds when it moves.
//!
//! What every backend must do is written down as tests: the store contract suite
//! (`tests/it/store_contract/`) runs unchanged against each backend it lists.

pub mod admin_api;
pub mod oauth;
mod postgres;
pub mod replicas;
pub(crate) mod sql;
mod sqlite;
pub mod transfer;
pub mod users;

pub use postgres::{DEFAULT_MAX_CONNECTIONS, PostgresStore, redacted};
pub use sql::{SqlStore, migrations::MigrationStatus};
#[cfg(test)]
pub(crate) use sqlite::SqliteBackend;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use std::sync::Arc;

pub use admin_api::AdminApiStore;
use gatehouse_model::{
    audit::{AuditFilter, AuditRow},
    records::{
        ApiKeyRecord, ClientRecord, ConnectionRecord, Generation, PolicyRecord, QuotaDelta,
        QuotaUsage, ServerRecord, StoreContents, ToolObservation, ToolPin,
    },
};
pub use oauth::OAuthStore;
pub use replicas::ReplicaStore;
pub use transfer::TransferStore;
pub use users::UserStore;

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
    /// The database server could not be reached; `url` is shown without its password.
    #[error("database unreachable ({url}): {reason}")]
    Unreachable { url: String, reason: String },
    /// An import refused (its file, or a destination that is not empty); nothing was written.
    #[error("import refused: {0}")]
    Import(String),
}

impl StoreError {
    /// Whether the database could not be reached (refused, dropped, timed out, shutting
    /// down), as opposed to refusing or failing this one operation: the caller may retry the
    /// same request later and it may succeed unchanged.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Unreachable { .. } => true,
            StoreError::Backend(err) => match err {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                // Class 08 (connection exception), 57P01..57P03 (the server shutting down or
                // starting), 53300 (too many connections).
                sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                    code.starts_with("08")
                        || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
                }),
                _ => false,
            },
            _ => false,
        }
    }

    pub fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        StoreError::NotFound {
            kind,
            name: name.into(),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store: OAuthStore + UserStore + ReplicaStore + TransferStore + AdminApiStore {
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
    async fn set_client_description(
        &self,
        name: &str,
        description: &str,
    ) -> StoreResult<Generation>;
    /// Deletes the client with its keys, connections, OAuth secrets and tokens.
    async fn delete_client(&self, name: &str) -> StoreResult<Generation>;

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
    /// Replaces policy `policy.id` (kind, scope, tools, spec) in one change, its quota
    /// counters removed: no configuration is ever built without it.
    async fn replace_policy(&self, policy: &PolicyRecord) -> StoreResult<Generation>;
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
    /// Discards pending definitions (all of the server's, or the named tools), keeping the
    /// approved ones; returns the generation and how many were discarded.
    async fn reject_tools(
        &self,
        server: &str,
        tools: &[String],
        at: i64,
    ) -> StoreResult<(Generation, u64)>;

    async fn generation(&self) -> StoreResult<Generation>;
    async fn load_contents(&self) -> StoreResult<StoreContents>;
    /// What the running server's last reload reported (records it could not compile), for
    /// `gatehouse status`; written only when it changes.
    async fn report_reload(
        &self,
        report: &gatehouse_model::records::ReloadReport,
    ) -> StoreResult<()>;
    async fn reload_report(&self) -> StoreResult<Option<gatehouse_model::records::ReloadReport>>;

    /// The last row of a chain: its `(chain_seq, hash)`, where the chain's writer continues.
    async fn audit_chain_head(&self, chain_id: i64) -> StoreResult<Option<(i64, String)>>;
    /// Appends one chain's rows and moves its checkpoint to the last of them, in one
    /// transaction; with `opens`, adds the chain's registry entry in it too (refused, like the
    /// rows, if another writer took that chain id or registry position first). The store
    /// numbers the rows' `seq` in commit order and returns those numbers, in the rows' order
    /// (the sinks send each row as it is stored). Shared, so a backend may hand them to a
    /// blocking thread without copying them; the caller keeps them for a retry.
    async fn append_audit(
        &self,
        rows: Arc<Vec<AuditRow>>,
        checkpoint: gatehouse_model::audit::Checkpoint,
        opens: Option<gatehouse_model::audit::ChainStart>,
    ) -> StoreResult<Vec<i64>>;
    /// A chain's checkpoint (none before its first append that wrote one).
    async fn audit_checkpoint(
        &self,
        chain_id: i64,
    ) -> StoreResult<Option<gatehouse_model::audit::Checkpoint>>;
    /// Every chain's checkpoint, by chain id.
    async fn audit_checkpoints(&self) -> StoreResult<Vec<gatehouse_model::audit::Checkpoint>>;
    /// The chain registry, by chain id.
    async fn audit_chains(&self) -> StoreResult<Vec<gatehouse_model::audit::ChainStart>>;
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
    /// Every retention seal, by chain and row (docs/audit.md, "Retention").
    async fn audit_seals(&self) -> StoreResult<Vec<gatehouse_model::audit::AuditSeal>>;
    /// Adds the seals and removes the rows with `seq <= upto_seq` in one transaction; rows
    /// removed. `Conflict` (nothing changed) when one of the seals exists already.
    async fn remove_archived_audit(
        &self,
        seals: &[gatehouse_model::audit::AuditSeal],
        upto_seq: i64,
    ) -> StoreResult<u64>;
    /// Takes or renews the retention lease for `holder` until `until_ms` (0 gives it back)
    /// when it is free, expired or already `holder`'s; whether `holder` holds it now.
    async fn audit_retention_lease(
        &self,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<bool>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the backend named by the URL scheme (`sqlite://…`, `postgres://…` or
/// `postgresql://…`) with the default pool size, and runs pending migrations.
pub async fn open(database_url: &str) -> StoreResult<DynStore> {
    open_sized(database_url, DEFAULT_MAX_CONNECTIONS).await
}

/// [`open`] with at most `max_connections` pooled connections (PostgreSQL; SQLite keeps its
/// own small pool, one file having one writer).
pub async fn open_sized(database_url: &str, max_connections: u32) -> StoreResult<DynStore> {
    open_for_audit(database_url, max_connections, true).await
}

/// [`open_sized`] for a server whose `audit.durable` is `durable` (PostgreSQL's appender
/// commits asynchronously without it; SQLite's appender keeps its own setting).
pub async fn open_for_audit(
    database_url: &str,
    max_connections: u32,
    durable: bool,
) -> StoreResult<DynStore> {
    match Backend::of(database_url)? {
        Backend::Sqlite => Ok(Arc::new(SqliteStore::open(database_url).await?)),
        Backend::Postgres => Ok(Arc::new(
            PostgresStore::open_with_audit(database_url, max_connections, durable).await?,
        )),
    }
}

/// Reads (and unless `check_only`, applies) the pending migrations of the database at `url`,
/// on either backend; `gatehouse migrate [--check]`.
pub async fn migrate(database_url: &str, check_only: bool) -> StoreResult<MigrationStatus> {
    sql::migrations::migrate(database_url, check_only).await
}

/// The schema version this build migrates to.
pub fn schema_version() -> i64 {
    sql::migrations::latest_version()
}

/// The two backends, by URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of(database_url: &str) -> StoreResult<Backend> {
        // Only the scheme is named in the error: the rest of a URL may carry a password.
        let scheme = database_url
            .split_once(':')
            .map_or("", |(scheme, _)| scheme);
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StoreError::Unsupported(format!(
                "database URL scheme {scheme:?}: use sqlite://, postgres:// or postgresql://"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unsupported_url_is_refused_without_its_password() {
        let Err(err) = open("mysql://gatehouse:s3cret-pw@db.internal/gatehouse").await else {
            panic!("a mysql URL opened a store");
        };
        let message = err.to_string();
        assert!(message.contains("\"mysql\""), "names the scheme: {message}");
        assert!(
            !message.contains("s3cret-pw"),
            "the password leaked: {message}"
        );
        assert!(
            !message.contains("db.internal"),
            "the host is not needed: {message}"
        );
    }
}
