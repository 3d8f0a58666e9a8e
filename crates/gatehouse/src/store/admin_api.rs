//! What the admin API keeps: its tokens and the answers to creates sent with an
//! `Idempotency-Key`. In the store (not in memory) so every replica sees the same tokens and a
//! retried create reaching another replica gets the first answer.

use async_trait::async_trait;

use super::StoreResult;
use gatehouse_model::records::{AdminTokenRecord, IdempotencyRecord};

/// How claiming an idempotency key went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key was free: this request runs the create.
    Claimed,
    /// Another request holds (or held) the key; its record.
    Held(IdempotencyRecord),
}

#[async_trait]
pub trait AdminApiStore: Send + Sync + 'static {
    /// Refuses a duplicate id with `Conflict`. Does not move the generation: admin tokens are
    /// read from the store on every admin request, never from the snapshot.
    async fn insert_admin_token(&self, token: &AdminTokenRecord) -> StoreResult<()>;
    /// Every token, revoked and expired ones included, by creation time then id.
    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminTokenRecord>>;
    async fn get_admin_token(&self, id: &str) -> StoreResult<AdminTokenRecord>;
    /// Sets `revoked_at` once (a second revocation keeps the first time).
    async fn revoke_admin_token(&self, id: &str, at: i64) -> StoreResult<()>;
    async fn touch_admin_token(&self, id: &str, at: i64) -> StoreResult<()>;

    /// Claims `(token_id, key)` for a request whose body hashes to `request_hash`, or returns
    /// the record already holding it.
    async fn claim_idempotency(
        &self,
        token_id: &str,
        key: &str,
        request_hash: &str,
        at: i64,
    ) -> StoreResult<Claim>;
    /// Stores the answer of a claimed key.
    async fn answer_idempotency(
        &self,
        token_id: &str,
        key: &str,
        status: u16,
        response: &[u8],
    ) -> StoreResult<()>;
    /// Gives a claimed key up (the create failed in a way a retry may not): the next request
    /// with it runs again.
    async fn release_idempotency(&self, token_id: &str, key: &str) -> StoreResult<()>;
    /// Forgets records created before `before_ms`; returns how many.
    async fn forget_idempotency_before(&self, before_ms: i64) -> StoreResult<u64>;
}
