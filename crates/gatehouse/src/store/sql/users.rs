//! [`UserStore`] on every SQL backend.

use async_trait::async_trait;

use super::backend::{SqlBackend, query};
use super::records::{SERVER_EXISTS, SqlStore, commit_bumped, require};
use super::{
    Columns, OrConflict, all, code_from, found, group_connection_from, to_json, touched, user_from,
};
use crate::store::{StoreResult, users::UserStore};
use gatehouse_model::records::{
    AuthorizationCodeRecord, CodeRedemption, Generation, GroupConnectionRecord,
    UpstreamGrantRecord, UserRecord,
};

#[async_trait]
impl<B: SqlBackend> UserStore for SqlStore<B> {
    async fn insert_user(&self, u: &UserRecord) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        // The username, the id and the provider identity are each unique; any of them taken
        // is reported under the username, the name an operator gave.
        query(
            "INSERT INTO users (id, username, display_name, password_hash, idp, idp_subject, \
             groups, created_at, disabled_at, last_login_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&u.id)
        .bind(&u.username)
        .bind(&u.display_name)
        .bind(&u.password_hash)
        .bind(&u.idp)
        .bind(&u.idp_subject)
        .bind(to_json(&u.groups)?)
        .bind(u.created_at)
        .bind(u.disabled_at)
        .bind(u.last_login_at)
        .execute(&mut *tx)
        .await
        .or_conflict("user", &u.username)?;
        commit_bumped::<B>(tx).await
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        let rows = query("SELECT * FROM users ORDER BY username")
            .fetch_all(&mut *self.b.acquire().await?)
            .await?;
        all(&rows, user_from)
    }

    async fn get_user(&self, id: &str) -> StoreResult<UserRecord> {
        let row = query("SELECT * FROM users WHERE id = $1 OR username = $1")
            .bind(id)
            .fetch_optional(&mut *self.b.acquire().await?)
            .await?;
        found(row, "user", id, user_from)
    }

    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let row = query("SELECT * FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&mut *self.b.acquire().await?)
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    async fn find_user_by_idp(&self, idp: &str, subject: &str) -> StoreResult<Option<UserRecord>> {
        let row = query("SELECT * FROM users WHERE idp = $1 AND idp_subject = $2")
            .bind(idp)
            .bind(subject)
            .fetch_optional(&mut *self.b.acquire().await?)
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    async fn update_user_profile(
        &self,
        id: &str,
        display_name: &str,
        groups: &[String],
    ) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        let done = query("UPDATE users SET display_name = $2, groups = $3 WHERE id = $1")
            .bind(id)
            .bind(display_name)
            .bind(to_json(groups)?)
            .execute(&mut *tx)
            .await?;
        touched(done, "user", id)?;
        commit_bumped::<B>(tx).await
    }

    async fn set_user_password(&self, id: &str, password_hash: &str) -> StoreResult<()> {
        let done = query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(id)
            .bind(password_hash)
            .execute(&mut *self.b.acquire().await?)
            .await?;
        touched(done, "user", id)?;
        Ok(())
    }

    async fn set_user_disabled(&self, id: &str, at: Option<i64>) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        let done = query("UPDATE users SET disabled_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        touched(done, "user", id)?;
        commit_bumped::<B>(tx).await
    }

    async fn record_login(&self, id: &str, at: i64) -> StoreResult<()> {
        query("UPDATE users SET last_login_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at)
            .execute(&mut *self.b.acquire().await?)
            .await?;
        Ok(())
    }

    async fn upsert_group_connection(&self, c: &GroupConnectionRecord) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        require(&mut *tx, "server", SERVER_EXISTS, &c.server).await?;
        query(
            "INSERT INTO group_connections (group_name, server, tools, resources, prompts, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (group_name, server) DO UPDATE SET tools = excluded.tools, \
             resources = excluded.resources, prompts = excluded.prompts",
        )
        .bind(&c.group)
        .bind(&c.server)
        .bind(to_json(&c.tools)?)
        .bind(c.resources)
        .bind(c.prompts)
        .bind(c.created_at)
        .execute(&mut *tx)
        .await?;
        commit_bumped::<B>(tx).await
    }

    async fn list_group_connections(&self) -> StoreResult<Vec<GroupConnectionRecord>> {
        let rows = query("SELECT * FROM group_connections ORDER BY group_name, server")
            .fetch_all(&mut *self.b.acquire().await?)
            .await?;
        all(&rows, group_connection_from)
    }

    async fn delete_group_connection(&self, group: &str, server: &str) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        let done = query("DELETE FROM group_connections WHERE group_name = $1 AND server = $2")
            .bind(group)
            .bind(server)
            .execute(&mut *tx)
            .await?;
        touched(done, "group connection", format!("{group} -> {server}"))?;
        commit_bumped::<B>(tx).await
    }

    async fn insert_authorization_code(&self, c: &AuthorizationCodeRecord) -> StoreResult<()> {
        query(
            "INSERT INTO authorization_codes (code_hash, client, subject, redirect_uri, \
             code_challenge, scope, resource, created_at, expires_at, dpop_jkt) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&c.code_hash)
        .bind(&c.client)
        .bind(&c.subject)
        .bind(&c.redirect_uri)
        .bind(&c.code_challenge)
        .bind(&c.scope)
        .bind(&c.resource)
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(&c.dpop_jkt)
        .execute(&mut *self.b.acquire().await?)
        .await?;
        // Expired codes are useless; dropping them here keeps the table small without a task.
        query("DELETE FROM authorization_codes WHERE expires_at < $1")
            .bind(c.created_at - 3_600_000)
            .execute(&mut *self.b.acquire().await?)
            .await?;
        Ok(())
    }

    async fn redeem_authorization_code(
        &self,
        code_hash: &[u8],
        now: i64,
    ) -> StoreResult<CodeRedemption> {
        let mut tx = self.b.begin_write().await?;
        let Some(row) = query("SELECT * FROM authorization_codes WHERE code_hash = $1")
            .bind(code_hash)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(CodeRedemption::Invalid);
        };
        let code = code_from(&row)?;
        if code.consumed_at.is_some() {
            return Ok(CodeRedemption::Replayed(code));
        }
        if code.expires_at <= now {
            return Ok(CodeRedemption::Invalid);
        }
        query("UPDATE authorization_codes SET consumed_at = $2 WHERE code_hash = $1")
            .bind(code_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        B::commit(tx).await?;
        Ok(CodeRedemption::Fresh(code))
    }

    async fn record_code_issue(
        &self,
        code_hash: &[u8],
        family: Option<&str>,
        access_jti: &str,
        access_expires_at: i64,
    ) -> StoreResult<()> {
        query(
            "UPDATE authorization_codes SET family = $2, access_jti = $3, access_expires_at = $4 \
             WHERE code_hash = $1",
        )
        .bind(code_hash)
        .bind(family)
        .bind(access_jti)
        .bind(access_expires_at)
        .execute(&mut *self.b.acquire().await?)
        .await?;
        Ok(())
    }

    async fn put_upstream_grant(&self, g: &UpstreamGrantRecord) -> StoreResult<()> {
        let mut tx = self.b.begin_write().await?;
        require(&mut *tx, "server", SERVER_EXISTS, &g.server).await?;
        require(
            &mut *tx,
            "user",
            "SELECT 1 FROM users WHERE id = $1",
            &g.user_id,
        )
        .await?;
        query(
            "INSERT INTO upstream_grants (user_id, server, access_sealed, refresh_sealed, \
             expires_at, scope, created_at, refreshed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (user_id, server) DO UPDATE SET access_sealed = excluded.access_sealed, \
             refresh_sealed = excluded.refresh_sealed, expires_at = excluded.expires_at, \
             scope = excluded.scope, created_at = excluded.created_at, \
             refreshed_at = excluded.refreshed_at",
        )
        .bind(&g.user_id)
        .bind(&g.server)
        .bind(&g.access_sealed)
        .bind(&g.refresh_sealed)
        .bind(g.expires_at)
        .bind(&g.scope)
        .bind(g.created_at)
        .bind(g.refreshed_at)
        .execute(&mut *tx)
        .await?;
        B::commit(tx).await?;
        Ok(())
    }

    async fn get_upstream_grant(
        &self,
        user_id: &str,
        server: &str,
    ) -> StoreResult<Option<UpstreamGrantRecord>> {
        let row = query("SELECT * FROM upstream_grants WHERE user_id = $1 AND server = $2")
            .bind(user_id)
            .bind(server)
            .fetch_optional(&mut *self.b.acquire().await?)
            .await?;
        row.as_ref().map(upstream_grant_from).transpose()
    }

    async fn list_upstream_grants(
        &self,
        user_id: Option<&str>,
    ) -> StoreResult<Vec<UpstreamGrantRecord>> {
        let rows = match user_id {
            Some(user_id) => {
                query("SELECT * FROM upstream_grants WHERE user_id = $1 ORDER BY server")
                    .bind(user_id)
                    .fetch_all(&mut *self.b.acquire().await?)
                    .await?
            }
            None => {
                query("SELECT * FROM upstream_grants ORDER BY user_id, server")
                    .fetch_all(&mut *self.b.acquire().await?)
                    .await?
            }
        };
        all(&rows, upstream_grant_from)
    }

    async fn delete_upstream_grant(&self, user_id: &str, server: &str) -> StoreResult<bool> {
        let done = query("DELETE FROM upstream_grants WHERE user_id = $1 AND server = $2")
            .bind(user_id)
            .bind(server)
            .execute(&mut *self.b.acquire().await?)
            .await?;
        Ok(done > 0)
    }
}

fn upstream_grant_from(row: &impl Columns) -> StoreResult<UpstreamGrantRecord> {
    Ok(UpstreamGrantRecord {
        user_id: row.text("user_id")?,
        server: row.text("server")?,
        access_sealed: row.bytes("access_sealed")?,
        refresh_sealed: row.opt_bytes("refresh_sealed")?,
        expires_at: row.opt_int("expires_at")?,
        scope: row.text("scope")?,
        created_at: row.int("created_at")?,
        refreshed_at: row.opt_int("refreshed_at")?,
    })
}
