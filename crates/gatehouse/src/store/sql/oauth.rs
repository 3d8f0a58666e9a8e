//! [`OAuthStore`] on every SQL backend.

use async_trait::async_trait;

use super::backend::{SqlBackend, SqlConn, query};
use super::records::{CLIENT_EXISTS, SqlStore, bump, commit_bumped, require};
use super::{
    Columns, OrConflict, all, group_connection_from, refresh_from, revoked_from, secret_from,
    signing_key_from, to_json, touched, user_from,
};
use crate::store::{StoreResult, oauth::OAuthStore};
use gatehouse_model::records::{
    ClientSecretRecord, Generation, OAuthClientMetadata, RefreshOutcome, RefreshTokenRecord,
    RevokedToken, SigningKeyRecord, StoreContents,
};

/// The authorization server's and users' part of [`gatehouse_model::records::StoreContents`], read in the
/// caller's transaction.
pub(super) async fn load_into<C: SqlConn + ?Sized>(
    tx: &mut C,
    contents: &mut StoreContents,
) -> StoreResult<()> {
    let rows = |sql: &'static str| query(sql);
    let secrets = rows("SELECT * FROM client_secrets WHERE revoked_at IS NULL")
        .fetch_all(&mut *tx)
        .await?;
    contents.client_secrets = all(&secrets, secret_from)?;
    let keys = rows("SELECT * FROM signing_keys ORDER BY active_at, kid")
        .fetch_all(&mut *tx)
        .await?;
    contents.signing_keys = all(&keys, signing_key_from)?;
    let revoked = rows("SELECT jti, expires_at FROM revoked_tokens WHERE expires_at > $1")
        .bind(crate::now_ms())
        .fetch_all(&mut *tx)
        .await?;
    contents.revoked_tokens = all(&revoked, revoked_from)?;
    let users = rows("SELECT * FROM users WHERE disabled_at IS NULL")
        .fetch_all(&mut *tx)
        .await?;
    contents.users = all(&users, user_from)?;
    let groups = rows("SELECT * FROM group_connections")
        .fetch_all(&mut *tx)
        .await?;
    contents.group_connections = all(&groups, group_connection_from)?;
    Ok(())
}

async fn insert_refresh<C: SqlConn + ?Sized>(
    conn: &mut C,
    t: &RefreshTokenRecord,
) -> StoreResult<()> {
    query(
        "INSERT INTO refresh_tokens (id, family, token_hash, client, subject, scope, resource, \
         created_at, expires_at, consumed_at, replaced_by, revoked_at, revocation_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL, NULL, $10)",
    )
    .bind(&t.id)
    .bind(&t.family)
    .bind(&t.token_hash)
    .bind(&t.client)
    .bind(&t.subject)
    .bind(&t.scope)
    .bind(&t.resource)
    .bind(t.created_at)
    .bind(t.expires_at)
    .bind(&t.revocation_hash)
    .execute(conn)
    .await
    .or_conflict("refresh token", &t.id)?;
    Ok(())
}

#[async_trait]
impl<B: SqlBackend> OAuthStore for SqlStore<B> {
    async fn set_client_oauth(
        &self,
        client: &str,
        metadata: Option<&OAuthClientMetadata>,
    ) -> StoreResult<Generation> {
        let json = metadata.map(to_json).transpose()?;
        let mut tx = self.b.begin_write().await?;
        let done = query("UPDATE clients SET oauth = $2 WHERE name = $1")
            .bind(client)
            .bind(json)
            .execute(&mut *tx)
            .await?;
        touched(done, "client", client)?;
        commit_bumped::<B>(tx).await
    }

    async fn insert_client_secret(&self, s: &ClientSecretRecord) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        require(&mut *tx, "client", CLIENT_EXISTS, &s.client).await?;
        insert_secret(&mut *tx, s).await?;
        commit_bumped::<B>(tx).await
    }

    async fn rotate_client_secret(
        &self,
        new: &ClientSecretRecord,
        others_expire_at: i64,
    ) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        require(&mut *tx, "client", CLIENT_EXISTS, &new.client).await?;
        // Never lengthens a secret that already expires sooner.
        query(B::DIALECT.shorten_secret_expiry)
            .bind(&new.client)
            .bind(others_expire_at)
            .execute(&mut *tx)
            .await?;
        insert_secret(&mut *tx, new).await?;
        commit_bumped::<B>(tx).await
    }

    async fn list_client_secrets(&self, client: &str) -> StoreResult<Vec<ClientSecretRecord>> {
        let rows = query("SELECT * FROM client_secrets WHERE client = $1 ORDER BY created_at")
            .bind(client)
            .fetch_all(&mut *self.b.acquire().await?)
            .await?;
        all(&rows, secret_from)
    }

    async fn revoke_client_secret(&self, id: &str, at: i64) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        let done =
            query("UPDATE client_secrets SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        touched(done, "client secret", id)?;
        commit_bumped::<B>(tx).await
    }

    async fn insert_signing_key(&self, k: &SigningKeyRecord) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        query(
            "INSERT INTO signing_keys (kid, alg, private_sealed, public_jwk, created_at, \
             active_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&k.kid)
        .bind(&k.alg)
        .bind(&k.private_sealed)
        .bind(&k.public_jwk)
        .bind(k.created_at)
        .bind(k.active_at)
        .bind(k.retired_at)
        .execute(&mut *tx)
        .await
        .or_conflict("signing key", &k.kid)?;
        commit_bumped::<B>(tx).await
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        let rows = query("SELECT * FROM signing_keys ORDER BY active_at, kid")
            .fetch_all(&mut *self.b.acquire().await?)
            .await?;
        all(&rows, signing_key_from)
    }

    async fn retire_signing_keys(&self, keep: &str, at: i64) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        query("UPDATE signing_keys SET retired_at = $2 WHERE kid <> $1 AND retired_at IS NULL")
            .bind(keep)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        commit_bumped::<B>(tx).await
    }

    async fn purge_signing_keys(&self, retired_before: i64) -> StoreResult<u64> {
        let mut tx = self.b.begin_write().await?;
        let done = query("DELETE FROM signing_keys WHERE retired_at < $1")
            .bind(retired_before)
            .execute(&mut *tx)
            .await?;
        if done > 0 {
            bump::<B>(&mut tx).await?;
        }
        B::commit(tx).await?;
        Ok(done)
    }

    async fn revoke_access_token(&self, t: &RevokedToken, at: i64) -> StoreResult<Generation> {
        let mut tx = self.b.begin_write().await?;
        query(
            "INSERT INTO revoked_tokens (jti, expires_at, revoked_at) VALUES ($1, $2, $3) \
             ON CONFLICT (jti) DO NOTHING",
        )
        .bind(&t.jti)
        .bind(t.expires_at)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        commit_bumped::<B>(tx).await
    }

    async fn purge_revoked_tokens(&self, now: i64) -> StoreResult<u64> {
        // Expired tokens fail on `exp` anyway; forgetting them cannot re-enable anything, so
        // the generation does not move.
        let done = query("DELETE FROM revoked_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *self.b.acquire().await?)
            .await?;
        Ok(done)
    }

    async fn insert_refresh_token(&self, t: &RefreshTokenRecord) -> StoreResult<()> {
        insert_refresh(&mut *self.b.acquire().await?, t).await
    }

    async fn find_refresh_token(&self, hash: &[u8]) -> StoreResult<Option<RefreshTokenRecord>> {
        let row = query("SELECT * FROM refresh_tokens WHERE token_hash = $1")
            .bind(hash)
            .fetch_optional(&mut *self.b.acquire().await?)
            .await?;
        row.as_ref().map(refresh_from).transpose()
    }

    async fn find_refresh_token_to_revoke(
        &self,
        hash: &[u8],
    ) -> StoreResult<Option<RefreshTokenRecord>> {
        let row = query(
            "SELECT * FROM refresh_tokens WHERE token_hash = $1 OR revocation_hash = $1 LIMIT 1",
        )
        .bind(hash)
        .fetch_optional(&mut *self.b.acquire().await?)
        .await?;
        row.as_ref().map(refresh_from).transpose()
    }

    async fn rotate_refresh_token(
        &self,
        presented: &[u8],
        next: &RefreshTokenRecord,
        now: i64,
        grace_ms: i64,
    ) -> StoreResult<RefreshOutcome> {
        let mut tx = self.b.begin_write().await?;
        let Some(row) = query("SELECT * FROM refresh_tokens WHERE token_hash = $1")
            .bind(presented)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(RefreshOutcome::Invalid);
        };
        let current = refresh_from(&row)?;
        if current.revoked_at.is_some() || current.expires_at <= now {
            return Ok(RefreshOutcome::Invalid);
        }
        if let Some(consumed) = current.consumed_at {
            let successor_unused = match &current.replaced_by {
                Some(id) => {
                    let used = query(
                        "SELECT consumed_at FROM refresh_tokens WHERE id = $1 AND revoked_at IS NULL",
                    )
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match used {
                        Some(row) => row.opt_int("consumed_at")?.is_none(),
                        None => false,
                    }
                }
                None => false,
            };
            if now - consumed >= grace_ms || !successor_unused {
                query(
                    "UPDATE refresh_tokens SET revoked_at = $2 \
                     WHERE family = $1 AND revoked_at IS NULL",
                )
                .bind(&current.family)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                B::commit(tx).await?;
                return Ok(RefreshOutcome::Reused);
            }
            // A retry: the answer carrying the successor was lost.
            query("UPDATE refresh_tokens SET revoked_at = $2 WHERE id = $1")
                .bind(&current.replaced_by)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        query(
            "UPDATE refresh_tokens SET consumed_at = COALESCE(consumed_at, $2), replaced_by = $3 \
             WHERE id = $1",
        )
        .bind(&current.id)
        .bind(now)
        .bind(&next.id)
        .execute(&mut *tx)
        .await?;
        insert_refresh(&mut *tx, next).await?;
        B::commit(tx).await?;
        Ok(RefreshOutcome::Rotated)
    }

    async fn revoke_refresh_family(&self, family: &str, at: i64) -> StoreResult<u64> {
        let done = query(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE family = $1 AND revoked_at IS NULL",
        )
        .bind(family)
        .bind(at)
        .execute(&mut *self.b.acquire().await?)
        .await?;
        Ok(done)
    }
}

async fn insert_secret<C: SqlConn + ?Sized>(tx: &mut C, s: &ClientSecretRecord) -> StoreResult<()> {
    query(
        "INSERT INTO client_secrets (id, client, secret_hash, created_at, expires_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, NULL)",
    )
    .bind(&s.id)
    .bind(&s.client)
    .bind(&s.secret_hash)
    .bind(s.created_at)
    .bind(s.expires_at)
    .execute(tx)
    .await
    .or_conflict("client secret", &s.id)?;
    Ok(())
}
