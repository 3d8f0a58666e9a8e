//! [`AdminApiStore`] on every SQL backend.

use async_trait::async_trait;

use super::backend::{SqlBackend, query};
use super::records::SqlStore;
use super::{Columns, OrConflict, all, found, touched};
use crate::store::{
    StoreError, StoreResult,
    admin_api::{AdminApiStore, Claim},
};
use gatehouse_model::records::{AdminRole, AdminTokenRecord, IdempotencyRecord};

fn token_from(row: &impl Columns) -> StoreResult<AdminTokenRecord> {
    let role = row.text("role")?;
    Ok(AdminTokenRecord {
        id: row.text("id")?,
        name: row.text("name")?,
        // A role this version does not know grants nothing it would not grant an auditor.
        role: AdminRole::parse(&role).unwrap_or(AdminRole::Auditor),
        secret_hash: row.bytes("secret_hash")?,
        created_at: row.int("created_at")?,
        created_by: row.text("created_by")?,
        expires_at: row.opt_int("expires_at")?,
        revoked_at: row.opt_int("revoked_at")?,
        last_used_at: row.opt_int("last_used_at")?,
    })
}

fn idempotency_from(row: &impl Columns) -> StoreResult<IdempotencyRecord> {
    let answer = match (row.opt_int("status")?, row.opt_bytes("response")?) {
        (Some(status), Some(body)) => Some((
            u16::try_from(status).map_err(|_| StoreError::Corrupt("idempotency status".into()))?,
            body,
        )),
        _ => None,
    };
    Ok(IdempotencyRecord {
        token_id: row.text("token_id")?,
        key: row.text("idem_key")?,
        request_hash: row.text("request_hash")?,
        answer,
        created_at: row.int("created_at")?,
    })
}

#[async_trait]
impl<B: SqlBackend> AdminApiStore for SqlStore<B> {
    async fn insert_admin_token(&self, token: &AdminTokenRecord) -> StoreResult<()> {
        query(
            "INSERT INTO admin_tokens (id, name, role, secret_hash, created_at, created_by, \
             expires_at, revoked_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&token.id)
        .bind(&token.name)
        .bind(token.role.as_str())
        .bind(&token.secret_hash)
        .bind(token.created_at)
        .bind(&token.created_by)
        .bind(token.expires_at)
        .bind(token.revoked_at)
        .bind(token.last_used_at)
        .execute(&mut *self.b.acquire().await?)
        .await
        .or_conflict("admin token", &token.id)?;
        Ok(())
    }

    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminTokenRecord>> {
        let rows = query("SELECT * FROM admin_tokens ORDER BY created_at, id")
            .fetch_all(&mut *self.b.acquire().await?)
            .await?;
        all(&rows, token_from)
    }

    async fn get_admin_token(&self, id: &str) -> StoreResult<AdminTokenRecord> {
        let row = query("SELECT * FROM admin_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.b.acquire().await?)
            .await?;
        found(row, "admin token", id, token_from)
    }

    async fn revoke_admin_token(&self, id: &str, at: i64) -> StoreResult<()> {
        let done =
            query("UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
                .bind(id)
                .bind(at)
                .execute(&mut *self.b.acquire().await?)
                .await?;
        touched(done, "admin token", id)
    }

    async fn touch_admin_token(&self, id: &str, at: i64) -> StoreResult<()> {
        query("UPDATE admin_tokens SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at)
            .execute(&mut *self.b.acquire().await?)
            .await?;
        Ok(())
    }

    async fn claim_idempotency(
        &self,
        token_id: &str,
        key: &str,
        request_hash: &str,
        at: i64,
    ) -> StoreResult<Claim> {
        let mut conn = self.b.acquire().await?;
        let inserted = query(
            "INSERT INTO admin_idempotency (token_id, idem_key, request_hash, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (token_id, idem_key) DO NOTHING",
        )
        .bind(token_id)
        .bind(key)
        .bind(request_hash)
        .bind(at)
        .execute(&mut *conn)
        .await?;
        if inserted == 1 {
            return Ok(Claim::Claimed);
        }
        let row = query("SELECT * FROM admin_idempotency WHERE token_id = $1 AND idem_key = $2")
            .bind(token_id)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
        match row {
            Some(row) => Ok(Claim::Held(idempotency_from(&row)?)),
            // Released between the two statements: the caller may claim it again.
            None => Err(StoreError::Conflict {
                kind: "idempotency key",
                name: key.to_owned(),
            }),
        }
    }

    async fn answer_idempotency(
        &self,
        token_id: &str,
        key: &str,
        status: u16,
        response: &[u8],
    ) -> StoreResult<()> {
        let done = query(
            "UPDATE admin_idempotency SET status = $3, response = $4 \
             WHERE token_id = $1 AND idem_key = $2",
        )
        .bind(token_id)
        .bind(key)
        .bind(i64::from(status))
        .bind(response)
        .execute(&mut *self.b.acquire().await?)
        .await?;
        touched(done, "idempotency key", key)
    }

    async fn release_idempotency(&self, token_id: &str, key: &str) -> StoreResult<()> {
        query("DELETE FROM admin_idempotency WHERE token_id = $1 AND idem_key = $2")
            .bind(token_id)
            .bind(key)
            .execute(&mut *self.b.acquire().await?)
            .await?;
        Ok(())
    }

    async fn forget_idempotency_before(&self, before_ms: i64) -> StoreResult<u64> {
        let done = query("DELETE FROM admin_idempotency WHERE created_at < $1")
            .bind(before_ms)
            .execute(&mut *self.b.acquire().await?)
            .await?;
        Ok(done)
    }
}
