//! The embedded default: one SQLite file in WAL mode.
//!
//! Only SQL lives here: reading rows into records, JSON columns and error mapping are shared
//! with every SQL backend (`store/sql`).

use async_trait::async_trait;
use sqlx::{
    AssertSqlSafe, Sqlite, SqlitePool, Transaction,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use std::{str::FromStr, time::Duration};

use super::sql::{
    OrConflict, all, client_from, connection_from, found, key_from, policy_from, quota_from,
    server_from, to_json, touched,
};
use super::*;

mod audit_log;
mod audit_read;
mod meta;
mod migrations;
mod oauth;
mod pins;
mod replicas;
mod users;
use migrations::migrator;

pub struct SqliteStore {
    pool: SqlitePool,
    /// The audit trail's own appending connection (see `audit_log.rs`).
    audit_log: audit_log::AuditLog,
}

impl SqliteStore {
    pub async fn open(url: &str) -> StoreResult<Self> {
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::Unsupported(
                "an in-memory SQLite database would lose the audit trail and every key at exit; \
                 use a file (sqlite:///path/gatehouse.db)"
                    .into(),
            ));
        }
        let busy_timeout = Duration::from_secs(10);
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // The CLI and a running server write the same file; wait instead of failing.
            .busy_timeout(busy_timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone())
            .await?;
        migrator().run(&pool).await?;
        let audit_log = audit_log::AuditLog::open(options.get_filename(), busy_timeout)?;
        Ok(Self { pool, audit_log })
    }

    #[cfg(test)]
    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn begin(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        // BEGIN IMMEDIATE takes the write lock up front, so read-then-write transactions
        // cannot fail halfway with SQLITE_BUSY.
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Bumps the generation (so every replica's snapshot reloads) and commits: how every change
/// to what the snapshot holds ends.
async fn commit_bumped(mut tx: Transaction<'static, Sqlite>) -> StoreResult<Generation> {
    let generation = bump(&mut tx).await?;
    tx.commit().await?;
    Ok(generation)
}

async fn bump(tx: &mut Transaction<'static, Sqlite>) -> StoreResult<Generation> {
    let generation: i64 = sqlx::query_scalar(
        "UPDATE meta SET value = value + 1 WHERE key = 'generation' RETURNING value",
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(generation)
}

/// The row a record refers to exists (checked first, so the error names what is missing).
async fn require(
    tx: &mut Transaction<'static, Sqlite>,
    kind: &'static str,
    sql: &'static str,
    key: &str,
) -> StoreResult<()> {
    let found: Option<i64> = sqlx::query_scalar(sql)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::not_found(kind, key)),
    }
}

const CLIENT_EXISTS: &str = "SELECT 1 FROM clients WHERE name = $1";
const SERVER_EXISTS: &str = "SELECT 1 FROM servers WHERE name = $1";

const KEY_COLUMNS: &str = "id, client, label, secret_hash, tools, created_at, expires_at, \
                           revoked_at, rotated_from, last_used_at";

async fn insert_key(tx: &mut Transaction<'static, Sqlite>, key: &ApiKeyRecord) -> StoreResult<()> {
    let tools = key.tools.as_deref().map(to_json).transpose()?;
    sqlx::query(
        "INSERT INTO api_keys (id, client, label, secret_hash, tools, created_at, expires_at, \
         revoked_at, rotated_from, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, NULL)",
    )
    .bind(&key.id)
    .bind(&key.client)
    .bind(&key.label)
    .bind(&key.secret_hash)
    .bind(tools)
    .bind(key.created_at)
    .bind(key.expires_at)
    .bind(&key.rotated_from)
    .execute(&mut **tx)
    .await
    .or_conflict("API key", &key.id)?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn update_server(&self, server: &ServerRecord) -> StoreResult<Generation> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE servers SET url = $2, credential_header = $3, credential_sealed = $4, \
             allow_anonymous = $5, allow_unknown_methods = $6, pin_action = $7 WHERE name = $1",
        )
        .bind(&server.name)
        .bind(&server.url)
        .bind(&server.credential_header)
        .bind(&server.credential_sealed)
        .bind(server.allow_anonymous)
        .bind(server.allow_unknown_methods)
        .bind(&server.pin_action)
        .execute(&mut *tx)
        .await?;
        touched(done, "server", &server.name)?;
        commit_bumped(tx).await
    }

    async fn insert_server(&self, server: &ServerRecord) -> StoreResult<Generation> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO servers (name, url, credential_header, credential_sealed, allow_anonymous, \
             allow_unknown_methods, created_at, pin_action) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&server.name)
        .bind(&server.url)
        .bind(&server.credential_header)
        .bind(&server.credential_sealed)
        .bind(server.allow_anonymous)
        .bind(server.allow_unknown_methods)
        .bind(server.created_at)
        .bind(&server.pin_action)
        .execute(&mut *tx)
        .await
        .or_conflict("server", &server.name)?;
        commit_bumped(tx).await
    }

    async fn list_servers(&self) -> StoreResult<Vec<ServerRecord>> {
        let rows = sqlx::query("SELECT * FROM servers ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        all(&rows, server_from)
    }

    async fn get_server(&self, name: &str) -> StoreResult<ServerRecord> {
        let row = sqlx::query("SELECT * FROM servers WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        found(row, "server", name, server_from)
    }

    async fn delete_server(&self, name: &str) -> StoreResult<Generation> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM servers WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        touched(done, "server", name)?;
        commit_bumped(tx).await
    }

    async fn insert_client(&self, client: &ClientRecord) -> StoreResult<Generation> {
        let oauth = client.oauth.as_ref().map(to_json).transpose()?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO clients (name, description, disabled_at, created_at, oauth) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&client.name)
        .bind(&client.description)
        .bind(client.disabled_at)
        .bind(client.created_at)
        .bind(oauth)
        .execute(&mut *tx)
        .await
        .or_conflict("client", &client.name)?;
        commit_bumped(tx).await
    }

    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        let rows = sqlx::query("SELECT * FROM clients ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        all(&rows, client_from)
    }

    async fn get_client(&self, name: &str) -> StoreResult<ClientRecord> {
        let row = sqlx::query("SELECT * FROM clients WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        found(row, "client", name, client_from)
    }

    async fn set_client_disabled(&self, name: &str, at: Option<i64>) -> StoreResult<Generation> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE clients SET disabled_at = $2 WHERE name = $1")
            .bind(name)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        touched(done, "client", name)?;
        commit_bumped(tx).await
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<Generation> {
        let mut tx = self.begin().await?;
        require(&mut tx, "client", CLIENT_EXISTS, &key.client).await?;
        insert_key(&mut tx, key).await?;
        commit_bumped(tx).await
    }

    async fn list_api_keys(&self, client: Option<&str>) -> StoreResult<Vec<ApiKeyRecord>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE ($1 IS NULL OR client = $1) ORDER BY client, created_at"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(client)
            .fetch_all(&self.pool)
            .await?;
        all(&rows, key_from)
    }

    async fn get_api_key(&self, id: &str) -> StoreResult<ApiKeyRecord> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        found(row, "API key", id, key_from)
    }

    async fn rotate_api_key(
        &self,
        old_id: &str,
        new: &ApiKeyRecord,
        old_expires_at: i64,
    ) -> StoreResult<Generation> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE api_keys SET expires_at = MIN(COALESCE(expires_at, $2), $2) \
             WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(old_id)
        .bind(old_expires_at)
        .execute(&mut *tx)
        .await?;
        touched(done, "active API key", old_id)?;
        insert_key(&mut tx, new).await?;
        commit_bumped(tx).await
    }

    async fn revoke_api_key(&self, id: &str, at: i64) -> StoreResult<Generation> {
        let mut tx = self.begin().await?;
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        touched(done, "API key", id)?;
        commit_bumped(tx).await
    }

    async fn record_key_usage(&self, usage: &[(String, i64)]) -> StoreResult<()> {
        if usage.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for (id, at) in usage {
            sqlx::query(
                "UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), $2) WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn upsert_connection(&self, c: &ConnectionRecord) -> StoreResult<Generation> {
        let mut tx = self.begin().await?;
        require(&mut tx, "client", CLIENT_EXISTS, &c.client).await?;
        require(&mut tx, "server", SERVER_EXISTS, &c.server).await?;
        sqlx::query(
            "INSERT INTO connections (client, server, tools, resources, prompts, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (client, server) DO UPDATE SET \
             tools = excluded.tools, resources = excluded.resources, prompts = excluded.prompts",
        )
        .bind(&c.client)
        .bind(&c.server)
        .bind(to_json(&c.tools)?)
        .bind(c.resources)
        .bind(c.prompts)
        .bind(c.created_at)
        .execute(&mut *tx)
        .await?;
        commit_bumped(tx).await
    }

    async fn list_connections(&self) -> StoreResult<Vec<ConnectionRecord>> {
        let rows = sqlx::query("SELECT * FROM connections ORDER BY client, server")
            .fetch_all(&self.pool)
            .await?;
        all(&rows, connection_from)
    }

    async fn delete_connection(&self, client: &str, server: &str) -> StoreResult<Generation> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM connections WHERE client = $1 AND server = $2")
            .bind(client)
            .bind(server)
            .execute(&mut *tx)
            .await?;
        touched(done, "connection", format!("{client} → {server}"))?;
        commit_bumped(tx).await
    }

    async fn insert_policy(&self, policy: &PolicyRecord) -> StoreResult<Generation> {
        let mut tx = self.begin().await?;
        // Inserted before its scope is checked, so a taken id is reported first; a missing
        // scope rolls the insert back.
        sqlx::query(
            "INSERT INTO policies (id, kind, client, server, tools, spec, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&policy.id)
        .bind(&policy.kind)
        .bind(&policy.client)
        .bind(&policy.server)
        .bind(&policy.tools)
        .bind(policy.spec.to_string())
        .bind(policy.created_at)
        .execute(&mut *tx)
        .await
        .or_conflict("policy", &policy.id)?;
        if let Some(client) = &policy.client {
            require(&mut tx, "client", CLIENT_EXISTS, client).await?;
        }
        if let Some(server) = &policy.server {
            require(&mut tx, "server", SERVER_EXISTS, server).await?;
        }
        commit_bumped(tx).await
    }

    async fn list_policies(&self) -> StoreResult<Vec<PolicyRecord>> {
        let rows = sqlx::query("SELECT * FROM policies ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        all(&rows, policy_from)
    }

    async fn delete_policy(&self, id: &str) -> StoreResult<Generation> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM policies WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        touched(done, "policy", id)?;
        sqlx::query("DELETE FROM quota_usage WHERE policy_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        commit_bumped(tx).await
    }

    async fn load_quota_usage(&self) -> StoreResult<Vec<QuotaUsage>> {
        let rows = sqlx::query("SELECT * FROM quota_usage")
            .fetch_all(&self.pool)
            .await?;
        all(&rows, quota_from)
    }

    async fn add_quota_usage(&self, deltas: &[QuotaDelta]) -> StoreResult<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for d in deltas {
            // The SET expressions read the row as it was, so `window_start` is compared before
            // it moves. A delta of an earlier window than the stored one is stale: dropped.
            sqlx::query(
                "INSERT INTO quota_usage (policy_id, subject, window_start, used) \
                 VALUES ($1, $2, $3, MAX($4, 0)) \
                 ON CONFLICT (policy_id, subject) DO UPDATE SET \
                 used = CASE \
                   WHEN excluded.window_start = quota_usage.window_start \
                     THEN MAX(quota_usage.used + $4, 0) \
                   WHEN excluded.window_start > quota_usage.window_start THEN excluded.used \
                   ELSE quota_usage.used END, \
                 window_start = MAX(quota_usage.window_start, excluded.window_start)",
            )
            .bind(&d.policy_id)
            .bind(&d.subject)
            .bind(d.window_start)
            .bind(d.delta)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_tool_pins(&self) -> StoreResult<Vec<ToolPin>> {
        pins::list(&self.pool).await
    }

    async fn observe_tool(&self, seen: &ToolObservation) -> StoreResult<Option<Generation>> {
        pins::observe(self.begin().await?, seen).await
    }

    async fn approve_tools(
        &self,
        server: &str,
        tools: &[String],
        at: i64,
    ) -> StoreResult<(Generation, u64)> {
        pins::approve(self.begin().await?, server, tools, at).await
    }

    async fn generation(&self) -> StoreResult<Generation> {
        meta::generation(&self.pool).await
    }

    async fn load_contents(&self) -> StoreResult<StoreContents> {
        meta::load_contents(&self.pool).await
    }

    async fn report_reload(&self, report: &crate::store::ReloadReport) -> StoreResult<()> {
        meta::report_reload(&self.pool, report).await
    }

    async fn reload_report(&self) -> StoreResult<Option<crate::store::ReloadReport>> {
        meta::reload_report(&self.pool).await
    }

    async fn audit_chain_head(&self, chain_id: i64) -> StoreResult<Option<(i64, String)>> {
        audit_log::chain_head(&self.pool, chain_id).await
    }

    async fn append_audit(
        &self,
        rows: Arc<Vec<AuditRow>>,
        checkpoint: crate::store::Checkpoint,
        opens: Option<crate::store::ChainStart>,
    ) -> StoreResult<()> {
        self.audit_log.append(rows, checkpoint, opens).await
    }

    async fn audit_checkpoint(
        &self,
        chain_id: i64,
    ) -> StoreResult<Option<crate::store::Checkpoint>> {
        audit_log::checkpoint(&self.pool, chain_id).await
    }

    async fn audit_checkpoints(&self) -> StoreResult<Vec<crate::store::Checkpoint>> {
        audit_log::checkpoints(&self.pool).await
    }

    async fn audit_chains(&self) -> StoreResult<Vec<crate::store::ChainStart>> {
        audit_log::chains(&self.pool).await
    }

    async fn audit_chain_ids(&self) -> StoreResult<Vec<i64>> {
        audit_log::chain_ids(&self.pool).await
    }

    async fn query_audit(&self, f: &AuditFilter) -> StoreResult<Vec<AuditRow>> {
        audit_read::query(&self.pool, f).await
    }

    async fn audit_page(&self, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditRow>> {
        audit_read::page(&self.pool, after_seq, limit).await
    }

    async fn audit_chain_page(
        &self,
        chain_id: i64,
        after_chain_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditRow>> {
        audit_log::chain_page(&self.pool, chain_id, after_chain_seq, limit).await
    }
}
