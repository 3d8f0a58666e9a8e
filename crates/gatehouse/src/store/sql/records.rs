//! The [`Store`] every SQL backend shares, written once over [`SqlBackend`]: a backend keeps
//! only its connections, transactions, the statements whose text differs ([`Dialect`]) and
//! its audit appender.

use async_trait::async_trait;

use super::backend::{SqlBackend, SqlConn, query, query_built};
use super::{
    OrConflict, all, audit_chains, audit_read, audit_retention, client_from, connection_from,
    found, key_from, meta, pins, policy_from, quota_from, server_from, to_json, touched,
};
use crate::store::*;

/// The shared SQL store over backend `B`.
pub struct SqlStore<B> {
    pub(crate) b: B,
}

impl<B: SqlBackend> SqlStore<B> {
    pub(crate) fn new(backend: B) -> Self {
        Self { b: backend }
    }
}

/// Bumps the generation (so every replica's snapshot reloads) and commits: how every change
/// to what the snapshot holds ends.
pub(super) async fn commit_bumped<B: SqlBackend>(mut tx: B::Tx) -> StoreResult<Generation> {
    let generation = bump::<B>(&mut tx).await?;
    B::commit(tx).await?;
    Ok(generation)
}

pub(super) async fn bump<B: SqlBackend>(tx: &mut B::Tx) -> StoreResult<Generation> {
    let row = query("UPDATE meta SET value = value + 1 WHERE key = 'generation' RETURNING value")
        .fetch_one(&mut **tx)
        .await?;
    Ok(super::Columns::int(&row, "value")?)
}

/// A server's upstream authentication columns (migration 0015), written in the transaction
/// that wrote the rest of its row.
async fn write_upstream_auth<B: SqlBackend>(
    tx: &mut B::Tx,
    server: &ServerRecord,
) -> StoreResult<()> {
    let auth = &server.upstream_auth;
    let spec = auth.spec.as_ref().map(to_json).transpose()?;
    query(
        "UPDATE servers SET upstream_auth = $2, upstream_secret_sealed = $3, \
         identity_header = $4 WHERE name = $1",
    )
    .bind(&server.name)
    .bind(spec)
    .bind(&auth.secret_sealed)
    .bind(&auth.identity_header)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The row a record refers to exists (checked first, so the error names what is missing).
pub(super) async fn require<C: SqlConn + ?Sized>(
    conn: &mut C,
    kind: &'static str,
    sql: &'static str,
    key: &str,
) -> StoreResult<()> {
    match query(sql).bind(key).fetch_optional(conn).await? {
        Some(_) => Ok(()),
        None => Err(StoreError::not_found(kind, key)),
    }
}

/// A server's stdio settings (or none, for an HTTP server) and its members (none unless it
/// is virtual), written after its row in the same transaction.
async fn write_server_stdio<B: SqlBackend>(
    tx: &mut B::Tx,
    server: &ServerRecord,
) -> StoreResult<()> {
    let settings = server.stdio.as_ref().map(to_json).transpose()?;
    let env_sealed = server.stdio.as_ref().and_then(|s| s.env_sealed.clone());
    let members = (!server.members.is_empty())
        .then(|| to_json(&server.members))
        .transpose()?;
    query("UPDATE servers SET stdio = $2, stdio_env_sealed = $3, members = $4 WHERE name = $1")
        .bind(&server.name)
        .bind(settings)
        .bind(&env_sealed)
        .bind(members)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(super) const CLIENT_EXISTS: &str = "SELECT 1 FROM clients WHERE name = $1";
pub(super) const SERVER_EXISTS: &str = "SELECT 1 FROM servers WHERE name = $1";

pub(super) const KEY_COLUMNS: &str = "id, client, label, secret_hash, tools, created_at, \
    expires_at, revoked_at, rotated_from, last_used_at";

async fn insert_key<C: SqlConn + ?Sized>(conn: &mut C, key: &ApiKeyRecord) -> StoreResult<()> {
    let tools = key.tools.as_deref().map(to_json).transpose()?;
    query(
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
    .execute(conn)
    .await
    .or_conflict("API key", &key.id)?;
    Ok(())
}

#[async_trait]
impl<B: SqlBackend> Store for SqlStore<B> {
    async fn update_server(&self, server: &ServerRecord) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        let done = query(
            "UPDATE servers SET url = $2, credential_header = $3, credential_sealed = $4, \
             allow_anonymous = $5, allow_unknown_methods = $6, pin_action = $7 WHERE name = $1",
        )
        .bind(&server.name)
        .bind(&server.url)
        .bind(&server.credential_header)
        .bind(&server.credential_sealed)
        .bind(server.allow_anonymous)
        .bind(server.allow_unknown_methods)
        .bind(server.pin_action.as_str())
        .execute(&mut *tx)
        .await?;
        touched(done, "server", &server.name)?;
        write_upstream_auth::<B>(&mut tx, server).await?;
        write_server_stdio::<B>(&mut tx, server).await?;
        commit_bumped::<B>(tx).await
    }

    async fn insert_server(&self, server: &ServerRecord) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        query(
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
        .bind(server.pin_action.as_str())
        .execute(&mut *tx)
        .await
        .or_conflict("server", &server.name)?;
        write_upstream_auth::<B>(&mut tx, server).await?;
        write_server_stdio::<B>(&mut tx, server).await?;
        commit_bumped::<B>(tx).await
    }

    async fn list_servers(&self) -> StoreResult<Vec<ServerRecord>> {
        let rows = query("SELECT * FROM servers ORDER BY name")
            .fetch_all(&mut *self.b.acquire().await?)
            .await?;
        all(&rows, server_from)
    }

    async fn get_server(&self, name: &str) -> StoreResult<ServerRecord> {
        let row = query("SELECT * FROM servers WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *self.b.acquire().await?)
            .await?;
        found(row, "server", name, server_from)
    }

    async fn delete_server(&self, name: &str) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        let done = query("DELETE FROM servers WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        touched(done, "server", name)?;
        commit_bumped::<B>(tx).await
    }

    async fn delete_client(&self, name: &str) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        let done = query("DELETE FROM clients WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        touched(done, "client", name)?;
        commit_bumped::<B>(tx).await
    }

    async fn insert_client(&self, client: &ClientRecord) -> StoreResult<Generation> {
        let oauth = client.oauth.as_ref().map(to_json).transpose()?;
        let mut tx = self.b.begin_write().await?;
        query(
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
        commit_bumped::<B>(tx).await
    }

    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        let rows = query("SELECT * FROM clients ORDER BY name")
            .fetch_all(&mut *self.b.acquire().await?)
            .await?;
        all(&rows, client_from)
    }

    async fn get_client(&self, name: &str) -> StoreResult<ClientRecord> {
        let row = query("SELECT * FROM clients WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *self.b.acquire().await?)
            .await?;
        found(row, "client", name, client_from)
    }

    async fn set_client_disabled(&self, name: &str, at: Option<i64>) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        let done = query("UPDATE clients SET disabled_at = $2 WHERE name = $1")
            .bind(name)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        touched(done, "client", name)?;
        commit_bumped::<B>(tx).await
    }

    async fn set_client_description(
        &self,
        name: &str,
        description: &str,
    ) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        let done = query("UPDATE clients SET description = $2 WHERE name = $1")
            .bind(name)
            .bind(description)
            .execute(&mut *tx)
            .await?;
        touched(done, "client", name)?;
        commit_bumped::<B>(tx).await
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        require(&mut *tx, "client", CLIENT_EXISTS, &key.client).await?;
        insert_key(&mut *tx, key).await?;
        commit_bumped::<B>(tx).await
    }

    async fn list_api_keys(&self, client: Option<&str>) -> StoreResult<Vec<ApiKeyRecord>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE ($1 IS NULL OR client = $1) ORDER BY client, created_at"
        );
        let rows = query_built(sql)
            .bind(client)
            .fetch_all(&mut *self.b.acquire().await?)
            .await?;
        all(&rows, key_from)
    }

    async fn get_api_key(&self, id: &str) -> StoreResult<ApiKeyRecord> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1");
        let row = query_built(sql)
            .bind(id)
            .fetch_optional(&mut *self.b.acquire().await?)
            .await?;
        found(row, "API key", id, key_from)
    }

    async fn rotate_api_key(
        &self,
        old_id: &str,
        new: &ApiKeyRecord,
        old_expires_at: i64,
    ) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        let done = query(B::DIALECT.shorten_key_expiry)
            .bind(old_id)
            .bind(old_expires_at)
            .execute(&mut *tx)
            .await?;
        touched(done, "active API key", old_id)?;
        insert_key(&mut *tx, new).await?;
        commit_bumped::<B>(tx).await
    }

    async fn revoke_api_key(&self, id: &str, at: i64) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        let done = query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        touched(done, "API key", id)?;
        commit_bumped::<B>(tx).await
    }

    async fn record_key_usage(&self, usage: &[(String, i64)]) -> StoreResult<()> {
        if usage.is_empty() {
            return Ok(());
        }
        let mut tx = self.b.begin_write().await?;
        for (id, at) in usage {
            query(B::DIALECT.record_key_usage)
                .bind(id)
                .bind(*at)
                .execute(&mut *tx)
                .await?;
        }
        B::commit(tx).await?;
        Ok(())
    }

    async fn upsert_connection(&self, c: &ConnectionRecord) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        require(&mut *tx, "client", CLIENT_EXISTS, &c.client).await?;
        require(&mut *tx, "server", SERVER_EXISTS, &c.server).await?;
        query(
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
        commit_bumped::<B>(tx).await
    }

    async fn list_connections(&self) -> StoreResult<Vec<ConnectionRecord>> {
        let rows = query("SELECT * FROM connections ORDER BY client, server")
            .fetch_all(&mut *self.b.acquire().await?)
            .await?;
        all(&rows, connection_from)
    }

    async fn delete_connection(&self, client: &str, server: &str) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        let done = query("DELETE FROM connections WHERE client = $1 AND server = $2")
            .bind(client)
            .bind(server)
            .execute(&mut *tx)
            .await?;
        touched(done, "connection", format!("{client} → {server}"))?;
        commit_bumped::<B>(tx).await
    }

    async fn insert_policy(&self, policy: &PolicyRecord) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        // Inserted before its scope is checked, so a taken id is reported first; a missing
        // scope rolls the insert back.
        query(
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
            require(&mut *tx, "client", CLIENT_EXISTS, client).await?;
        }
        if let Some(server) = &policy.server {
            require(&mut *tx, "server", SERVER_EXISTS, server).await?;
        }
        commit_bumped::<B>(tx).await
    }

    async fn list_policies(&self) -> StoreResult<Vec<PolicyRecord>> {
        let rows = query("SELECT * FROM policies ORDER BY id")
            .fetch_all(&mut *self.b.acquire().await?)
            .await?;
        all(&rows, policy_from)
    }

    async fn delete_policy(&self, id: &str) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        let done = query("DELETE FROM policies WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        touched(done, "policy", id)?;
        query("DELETE FROM quota_usage WHERE policy_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        commit_bumped::<B>(tx).await
    }

    async fn replace_policy(&self, policy: &PolicyRecord) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        let done = query(
            "UPDATE policies SET kind = $2, client = $3, server = $4, tools = $5, spec = $6, \
             created_at = $7 WHERE id = $1",
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
        touched(done, "policy", &policy.id)?;
        if let Some(client) = &policy.client {
            require(&mut *tx, "client", CLIENT_EXISTS, client).await?;
        }
        if let Some(server) = &policy.server {
            require(&mut *tx, "server", SERVER_EXISTS, server).await?;
        }
        query("DELETE FROM quota_usage WHERE policy_id = $1")
            .bind(&policy.id)
            .execute(&mut *tx)
            .await?;
        commit_bumped::<B>(tx).await
    }

    async fn load_quota_usage(&self) -> StoreResult<Vec<QuotaUsage>> {
        let rows = query("SELECT * FROM quota_usage")
            .fetch_all(&mut *self.b.acquire().await?)
            .await?;
        all(&rows, quota_from)
    }

    async fn add_quota_usage(&self, deltas: &[QuotaDelta]) -> StoreResult<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        let mut tx = self.b.begin_write().await?;
        for d in deltas {
            // A delta of an earlier window than the stored one is stale: dropped.
            query(B::DIALECT.add_quota_usage)
                .bind(&d.policy_id)
                .bind(&d.subject)
                .bind(d.window_start)
                .bind(d.delta)
                .execute(&mut *tx)
                .await?;
        }
        B::commit(tx).await?;
        Ok(())
    }

    async fn list_tool_pins(&self) -> StoreResult<Vec<ToolPin>> {
        pins::list(&mut *self.b.acquire().await?).await
    }

    async fn observe_tool(&self, seen: &ToolObservation) -> StoreResult<Option<Generation>> {
        pins::observe::<B>(self.b.begin_write().await?, seen).await
    }

    async fn approve_tools(
        &self,
        server: &str,
        tools: &[String],
        at: i64,
    ) -> StoreResult<(Generation, u64)> {
        pins::approve::<B>(self.b.begin_write().await?, server, tools, at).await
    }

    async fn reject_tools(
        &self,
        server: &str,
        tools: &[String],
        at: i64,
    ) -> StoreResult<(Generation, u64)> {
        pins::reject::<B>(self.b.begin_write().await?, server, tools, at).await
    }

    async fn generation(&self) -> StoreResult<Generation> {
        meta::generation(&mut *self.b.acquire().await?).await
    }

    async fn load_contents(&self) -> StoreResult<StoreContents> {
        meta::load_contents(&self.b).await
    }

    async fn report_reload(
        &self,
        report: &gatehouse_model::records::ReloadReport,
    ) -> StoreResult<()> {
        meta::report_reload(&mut *self.b.acquire().await?, report).await
    }

    async fn reload_report(&self) -> StoreResult<Option<gatehouse_model::records::ReloadReport>> {
        meta::reload_report(&mut *self.b.acquire().await?).await
    }

    async fn audit_chain_head(&self, chain_id: i64) -> StoreResult<Option<(i64, String)>> {
        audit_chains::chain_head(&mut *self.b.acquire().await?, chain_id).await
    }

    async fn append_audit(
        &self,
        rows: Arc<Vec<AuditRow>>,
        checkpoint: gatehouse_model::audit::Checkpoint,
        opens: Option<gatehouse_model::audit::ChainStart>,
    ) -> StoreResult<Vec<i64>> {
        self.b.append_audit(rows, checkpoint, opens).await
    }

    async fn audit_checkpoint(
        &self,
        chain_id: i64,
    ) -> StoreResult<Option<gatehouse_model::audit::Checkpoint>> {
        audit_chains::checkpoint(&mut *self.b.acquire().await?, chain_id).await
    }

    async fn audit_checkpoints(&self) -> StoreResult<Vec<gatehouse_model::audit::Checkpoint>> {
        audit_chains::checkpoints(&mut *self.b.acquire().await?).await
    }

    async fn audit_chains(&self) -> StoreResult<Vec<gatehouse_model::audit::ChainStart>> {
        audit_chains::chains(&mut *self.b.acquire().await?).await
    }

    async fn audit_chain_ids(&self) -> StoreResult<Vec<i64>> {
        audit_chains::chain_ids(&mut *self.b.acquire().await?).await
    }

    async fn query_audit(&self, f: &AuditFilter) -> StoreResult<Vec<AuditRow>> {
        audit_read::query(&mut *self.b.acquire().await?, f).await
    }

    async fn audit_page(&self, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditRow>> {
        audit_read::page(&mut *self.b.acquire().await?, after_seq, limit).await
    }

    async fn audit_chain_page(
        &self,
        chain_id: i64,
        after_chain_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditRow>> {
        audit_chains::chain_page(
            &mut *self.b.acquire().await?,
            chain_id,
            after_chain_seq,
            limit,
        )
        .await
    }

    async fn audit_seals(&self) -> StoreResult<Vec<gatehouse_model::audit::AuditSeal>> {
        audit_retention::seals(&mut *self.b.acquire().await?).await
    }

    async fn remove_archived_audit(
        &self,
        seals: &[gatehouse_model::audit::AuditSeal],
        upto_seq: i64,
    ) -> StoreResult<u64> {
        audit_retention::remove_archived(&self.b, seals, upto_seq).await
    }

    async fn audit_retention_lease(
        &self,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<bool> {
        audit_retention::lease(&mut *self.b.acquire().await?, holder, now_ms, until_ms).await
    }
}
