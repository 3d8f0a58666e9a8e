//! The embedded default: one SQLite file in WAL mode.

use async_trait::async_trait;
use sqlx::{
    AssertSqlSafe, Row, Sqlite, SqlitePool, Transaction,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use std::{str::FromStr, time::Duration};

use super::*;

mod audit_log;
mod audit_read;
mod migrations;
mod oauth;
mod rows;
mod users;
use migrations::migrator;
use rows::*;

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

async fn exists(
    tx: &mut Transaction<'static, Sqlite>,
    sql: &'static str,
    key: &str,
) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar(sql)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(found.is_some())
}

const KEY_COLUMNS: &str = "id, client, label, secret_hash, tools, created_at, expires_at, \
                           revoked_at, rotated_from, last_used_at";

async fn insert_key(tx: &mut Transaction<'static, Sqlite>, key: &ApiKeyRecord) -> StoreResult<()> {
    let tools = key
        .tools
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
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
    .await?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn update_server(&self, server: &ServerRecord) -> StoreResult<Generation> {
        let mut tx = self.begin().await?;
        let updated = sqlx::query(
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
        if updated.rows_affected() == 0 {
            return Err(StoreError::not_found("server", &server.name));
        }
        commit_bumped(tx).await
    }

    async fn insert_server(&self, server: &ServerRecord) -> StoreResult<Generation> {
        let mut tx = self.begin().await?;
        if exists(
            &mut tx,
            "SELECT 1 FROM servers WHERE name = $1",
            &server.name,
        )
        .await?
        {
            return Err(StoreError::Conflict {
                kind: "server",
                name: server.name.clone(),
            });
        }
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
        .await?;
        commit_bumped(tx).await
    }

    async fn list_servers(&self) -> StoreResult<Vec<ServerRecord>> {
        let rows = sqlx::query("SELECT * FROM servers ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(server_from).collect()
    }

    async fn get_server(&self, name: &str) -> StoreResult<ServerRecord> {
        let row = sqlx::query("SELECT * FROM servers WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::not_found("server", name))?;
        server_from(&row)
    }

    async fn delete_server(&self, name: &str) -> StoreResult<Generation> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM servers WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("server", name));
        }
        commit_bumped(tx).await
    }

    async fn insert_client(&self, client: &ClientRecord) -> StoreResult<Generation> {
        let mut tx = self.begin().await?;
        if exists(
            &mut tx,
            "SELECT 1 FROM clients WHERE name = $1",
            &client.name,
        )
        .await?
        {
            return Err(StoreError::Conflict {
                kind: "client",
                name: client.name.clone(),
            });
        }
        sqlx::query(
            "INSERT INTO clients (name, description, disabled_at, created_at, oauth) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&client.name)
        .bind(&client.description)
        .bind(client.disabled_at)
        .bind(client.created_at)
        .bind(
            client
                .oauth
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        )
        .execute(&mut *tx)
        .await?;
        commit_bumped(tx).await
    }

    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        let rows = sqlx::query("SELECT * FROM clients ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(client_from).collect()
    }

    async fn get_client(&self, name: &str) -> StoreResult<ClientRecord> {
        let row = sqlx::query("SELECT * FROM clients WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::not_found("client", name))?;
        client_from(&row)
    }

    async fn set_client_disabled(&self, name: &str, at: Option<i64>) -> StoreResult<Generation> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE clients SET disabled_at = $2 WHERE name = $1")
            .bind(name)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("client", name));
        }
        commit_bumped(tx).await
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<Generation> {
        let mut tx = self.begin().await?;
        if !exists(
            &mut tx,
            "SELECT 1 FROM clients WHERE name = $1",
            &key.client,
        )
        .await?
        {
            return Err(StoreError::not_found("client", &key.client));
        }
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
        rows.iter().map(key_from).collect()
    }

    async fn get_api_key(&self, id: &str) -> StoreResult<ApiKeyRecord> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::not_found("API key", id))?;
        key_from(&row)
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
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("active API key", old_id));
        }
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
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("API key", id));
        }
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
        if !exists(&mut tx, "SELECT 1 FROM clients WHERE name = $1", &c.client).await? {
            return Err(StoreError::not_found("client", &c.client));
        }
        if !exists(&mut tx, "SELECT 1 FROM servers WHERE name = $1", &c.server).await? {
            return Err(StoreError::not_found("server", &c.server));
        }
        let tools =
            serde_json::to_string(&c.tools).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO connections (client, server, tools, resources, prompts, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (client, server) DO UPDATE SET \
             tools = excluded.tools, resources = excluded.resources, prompts = excluded.prompts",
        )
        .bind(&c.client)
        .bind(&c.server)
        .bind(tools)
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
        rows.iter().map(connection_from).collect()
    }

    async fn delete_connection(&self, client: &str, server: &str) -> StoreResult<Generation> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM connections WHERE client = $1 AND server = $2")
            .bind(client)
            .bind(server)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found(
                "connection",
                format!("{client} → {server}"),
            ));
        }
        commit_bumped(tx).await
    }

    async fn insert_policy(&self, policy: &PolicyRecord) -> StoreResult<Generation> {
        let mut tx = self.begin().await?;
        if exists(&mut tx, "SELECT 1 FROM policies WHERE id = $1", &policy.id).await? {
            return Err(StoreError::Conflict {
                kind: "policy",
                name: policy.id.clone(),
            });
        }
        if let Some(client) = &policy.client
            && !exists(&mut tx, "SELECT 1 FROM clients WHERE name = $1", client).await?
        {
            return Err(StoreError::not_found("client", client));
        }
        if let Some(server) = &policy.server
            && !exists(&mut tx, "SELECT 1 FROM servers WHERE name = $1", server).await?
        {
            return Err(StoreError::not_found("server", server));
        }
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
        .await?;
        commit_bumped(tx).await
    }

    async fn list_policies(&self) -> StoreResult<Vec<PolicyRecord>> {
        let rows = sqlx::query("SELECT * FROM policies ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(policy_from).collect()
    }

    async fn delete_policy(&self, id: &str) -> StoreResult<Generation> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM policies WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("policy", id));
        }
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
        rows.iter()
            .map(|row| {
                Ok(QuotaUsage {
                    policy_id: row.try_get("policy_id")?,
                    subject: row.try_get("subject")?,
                    window_start: row.try_get("window_start")?,
                    used: row.try_get("used")?,
                })
            })
            .collect()
    }

    async fn save_quota_usage(&self, usage: &[QuotaUsage]) -> StoreResult<()> {
        if usage.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for u in usage {
            sqlx::query(
                "INSERT INTO quota_usage (policy_id, subject, window_start, used) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (policy_id, subject) DO UPDATE SET window_start = excluded.window_start, \
                 used = excluded.used",
            )
            .bind(&u.policy_id)
            .bind(&u.subject)
            .bind(u.window_start)
            .bind(u.used)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_tool_pins(&self) -> StoreResult<Vec<ToolPin>> {
        let rows = sqlx::query("SELECT * FROM tool_pins ORDER BY server, tool")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ToolPin {
                    server: row.try_get("server")?,
                    tool: row.try_get("tool")?,
                    approved_hash: row.try_get("approved_hash")?,
                    pending_hash: row.try_get("pending_hash")?,
                    pending_definition: row.try_get("pending_definition")?,
                    pending_reason: row.try_get("pending_reason")?,
                    first_seen: row.try_get("first_seen")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    async fn observe_tool(&self, seen: &ToolObservation) -> StoreResult<Option<Generation>> {
        let mut tx = self.begin().await?;
        let current: Option<(Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT approved_hash, pending_hash FROM tool_pins WHERE server = $1 AND tool = $2",
        )
        .bind(&seen.server)
        .bind(&seen.tool)
        .fetch_optional(&mut *tx)
        .await?;
        let changed = match current {
            None => {
                let (approved, pending) = if seen.suspicious.is_some() {
                    (None, Some(&seen.hash))
                } else {
                    (Some(&seen.hash), None)
                };
                sqlx::query(
                    "INSERT INTO tool_pins (server, tool, approved_hash, pending_hash, pending_definition, \
                     pending_reason, first_seen, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                )
                .bind(&seen.server)
                .bind(&seen.tool)
                .bind(approved)
                .bind(pending)
                .bind(pending.map(|_| &seen.definition))
                .bind(pending.and(seen.suspicious.as_ref()))
                .bind(seen.at)
                .execute(&mut *tx)
                .await?;
                true
            }
            Some((approved, _)) if approved.as_deref() == Some(seen.hash.as_str()) => {
                // Back to the approved definition: nothing is pending any more.
                sqlx::query(
                    "UPDATE tool_pins SET pending_hash = NULL, pending_definition = NULL, pending_reason = NULL, \
                     updated_at = $3 WHERE server = $1 AND tool = $2 AND pending_hash IS NOT NULL",
                )
                .bind(&seen.server)
                .bind(&seen.tool)
                .bind(seen.at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0
            }
            Some((_, pending)) if pending.as_deref() == Some(seen.hash.as_str()) => false,
            Some(_) => {
                let reason = seen
                    .suspicious
                    .clone()
                    .unwrap_or_else(|| "definition changed".into());
                sqlx::query(
                    "UPDATE tool_pins SET pending_hash = $3, pending_definition = $4, pending_reason = $5, \
                     updated_at = $6 WHERE server = $1 AND tool = $2",
                )
                .bind(&seen.server)
                .bind(&seen.tool)
                .bind(&seen.hash)
                .bind(&seen.definition)
                .bind(reason)
                .bind(seen.at)
                .execute(&mut *tx)
                .await?;
                true
            }
        };
        let generation = if changed {
            Some(bump(&mut tx).await?)
        } else {
            None
        };
        tx.commit().await?;
        Ok(generation)
    }

    async fn approve_tools(
        &self,
        server: &str,
        tools: &[String],
        at: i64,
    ) -> StoreResult<(Generation, u64)> {
        let mut tx = self.begin().await?;
        if !exists(&mut tx, "SELECT 1 FROM servers WHERE name = $1", server).await? {
            return Err(StoreError::not_found("server", server));
        }
        let mut approved = 0;
        let pending: Vec<String> = sqlx::query_scalar(
            "SELECT tool FROM tool_pins WHERE server = $1 AND pending_hash IS NOT NULL",
        )
        .bind(server)
        .fetch_all(&mut *tx)
        .await?;
        for tool in &pending {
            if !tools.is_empty() && !tools.contains(tool) {
                continue;
            }
            approved += sqlx::query(
                "UPDATE tool_pins SET approved_hash = pending_hash, pending_hash = NULL, pending_definition = NULL, \
                 pending_reason = NULL, updated_at = $3 WHERE server = $1 AND tool = $2",
            )
            .bind(server)
            .bind(tool)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        for tool in tools {
            if !pending.contains(tool) {
                return Err(StoreError::not_found(
                    "pending tool change",
                    format!("{server}/{tool}"),
                ));
            }
        }
        let generation = bump(&mut tx).await?;
        tx.commit().await?;
        Ok((generation, approved))
    }

    async fn generation(&self) -> StoreResult<Generation> {
        Ok(
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'generation'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn load_contents(&self) -> StoreResult<StoreContents> {
        // A read transaction gives one consistent view across the queries (WAL snapshot).
        let mut tx = self.pool.begin().await?;
        let generation: i64 = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'generation'")
            .fetch_one(&mut *tx)
            .await?;
        let servers = sqlx::query("SELECT * FROM servers")
            .fetch_all(&mut *tx)
            .await?;
        let clients = sqlx::query("SELECT * FROM clients")
            .fetch_all(&mut *tx)
            .await?;
        let keys = sqlx::query(AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE revoked_at IS NULL"
        )))
        .fetch_all(&mut *tx)
        .await?;
        let connections = sqlx::query("SELECT * FROM connections")
            .fetch_all(&mut *tx)
            .await?;
        let policies = sqlx::query("SELECT * FROM policies ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
        let mut contents = StoreContents::default();
        oauth::load_into(&mut tx, &mut contents).await?;
        tx.commit().await?;
        let tool_pins = self.list_tool_pins().await?;
        Ok(StoreContents {
            generation,
            servers: servers
                .iter()
                .map(server_from)
                .collect::<StoreResult<_>>()?,
            clients: clients
                .iter()
                .map(client_from)
                .collect::<StoreResult<_>>()?,
            api_keys: keys.iter().map(key_from).collect::<StoreResult<_>>()?,
            connections: connections
                .iter()
                .map(connection_from)
                .collect::<StoreResult<_>>()?,
            policies: policies
                .iter()
                .map(policy_from)
                .collect::<StoreResult<_>>()?,
            tool_pins,
            ..contents
        })
    }

    async fn report_heartbeat(&self, heartbeat: ServerHeartbeat) -> StoreResult<()> {
        sqlx::query(
            "UPDATE meta SET value = CASE key WHEN 'applied_generation' THEN $1 ELSE $2 END \
             WHERE key IN ('applied_generation', 'heartbeat_ms')",
        )
        .bind(heartbeat.applied_generation)
        .bind(heartbeat.heartbeat_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn report_reload(&self, report: &crate::records::ReloadReport) -> StoreResult<()> {
        let json = serde_json::to_string(report).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO reload_report (id, report) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET report = excluded.report",
        )
        .bind(json)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn reload_report(&self) -> StoreResult<Option<crate::records::ReloadReport>> {
        let json: Option<String> =
            sqlx::query_scalar("SELECT report FROM reload_report WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?;
        json.map(|json| {
            serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("reload report: {e}")))
        })
        .transpose()
    }

    async fn heartbeat(&self) -> StoreResult<ServerHeartbeat> {
        let rows = sqlx::query("SELECT key, value FROM meta")
            .fetch_all(&self.pool)
            .await?;
        let mut heartbeat = ServerHeartbeat::default();
        for row in rows {
            let key: String = row.try_get("key")?;
            let value: i64 = row.try_get("value")?;
            match key.as_str() {
                "applied_generation" => heartbeat.applied_generation = value,
                "heartbeat_ms" => heartbeat.heartbeat_ms = value,
                _ => {}
            }
        }
        Ok(heartbeat)
    }

    async fn audit_chain_head(&self, chain_id: i64) -> StoreResult<Option<(i64, String)>> {
        audit_log::chain_head(&self.pool, chain_id).await
    }

    async fn append_audit(
        &self,
        rows: Arc<Vec<AuditRow>>,
        checkpoint: crate::audit::Checkpoint,
        opens: Option<crate::audit::ChainStart>,
    ) -> StoreResult<()> {
        self.audit_log.append(rows, checkpoint, opens).await
    }

    async fn audit_checkpoint(
        &self,
        chain_id: i64,
    ) -> StoreResult<Option<crate::audit::Checkpoint>> {
        audit_log::checkpoint(&self.pool, chain_id).await
    }

    async fn audit_checkpoints(&self) -> StoreResult<Vec<crate::audit::Checkpoint>> {
        audit_log::checkpoints(&self.pool).await
    }

    async fn audit_chains(&self) -> StoreResult<Vec<crate::audit::ChainStart>> {
        audit_log::chains(&self.pool).await
    }

    async fn audit_chain_ids(&self) -> StoreResult<Vec<i64>> {
        audit_log::chain_ids(&self.pool).await
    }

    async fn query_audit(&self, f: &AuditFilter) -> StoreResult<Vec<AuditRow>> {
        audit_read::query(&self.pool, f).await
    }

    async fn audit_page(&self, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditRow>> {
        let rows = sqlx::query("SELECT * FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after_seq)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(audit_from).collect()
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
