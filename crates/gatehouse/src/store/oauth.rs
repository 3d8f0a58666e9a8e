//! What the OAuth 2.1 authorization server keeps: client secrets and metadata, signing keys,
//! revoked access tokens, refresh-token families and authorization codes.
//!
//! A separate trait (a supertrait of [`super::Store`]) so the backends keep these queries in
//! their own files; callers still hold one `dyn Store`.

use async_trait::async_trait;

use super::StoreResult;
use gatehouse_model::records::{
    ClientSecretRecord, Generation, OAuthClientMetadata, RefreshOutcome, RefreshTokenRecord,
    RevokedToken, SigningKeyRecord,
};

#[async_trait]
pub trait OAuthStore: Send + Sync + 'static {
    /// Sets or clears a client's OAuth metadata.
    async fn set_client_oauth(
        &self,
        client: &str,
        metadata: Option<&OAuthClientMetadata>,
    ) -> StoreResult<Generation>;

    async fn insert_client_secret(&self, secret: &ClientSecretRecord) -> StoreResult<Generation>;
    /// Inserts `new` and shortens every other live secret of the client to `others_expire_at`.
    async fn rotate_client_secret(
        &self,
        new: &ClientSecretRecord,
        others_expire_at: i64,
    ) -> StoreResult<Generation>;
    async fn list_client_secrets(&self, client: &str) -> StoreResult<Vec<ClientSecretRecord>>;
    async fn revoke_client_secret(&self, id: &str, at: i64) -> StoreResult<Generation>;

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<Generation>;
    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Stops every key that signs now from signing at `at`, except `keep`.
    async fn retire_signing_keys(&self, keep: &str, at: i64) -> StoreResult<Generation>;
    /// Removes keys retired before `before` (their tokens have all expired).
    async fn purge_signing_keys(&self, retired_before: i64) -> StoreResult<u64>;

    /// Records a revoked access token until its expiry.
    async fn revoke_access_token(&self, token: &RevokedToken, at: i64) -> StoreResult<Generation>;
    async fn purge_revoked_tokens(&self, now: i64) -> StoreResult<u64>;

    async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> StoreResult<()>;
    async fn find_refresh_token(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<RefreshTokenRecord>>;
    /// The token RFC 7009 revocation means: by its own hash, or by the `revocation_hash` of
    /// a token bound to a DPoP key (found by the refresh grant only with a proof).
    async fn find_refresh_token_to_revoke(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<RefreshTokenRecord>>;
    /// Atomically consumes `presented` and stores `next`; detects reuse (then revokes the
    /// family) and retries within `grace_ms` of the first use.
    async fn rotate_refresh_token(
        &self,
        presented: &[u8],
        next: &RefreshTokenRecord,
        now: i64,
        grace_ms: i64,
    ) -> StoreResult<RefreshOutcome>;
    async fn revoke_refresh_family(&self, family: &str, at: i64) -> StoreResult<u64>;
}
