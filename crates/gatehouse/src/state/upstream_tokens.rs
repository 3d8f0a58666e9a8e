//! Tokens Gatehouse holds for upstreams (ADR 0006 §5): the client-credentials token of a
//! server. Behind a trait so a shared backend can keep them for every replica; the key names
//! the server and a digest of the settings that fetched the token, so changed settings never
//! reuse an old token.

use std::sync::Arc;

use super::{StateFuture, Unavailable};

/// An access token for an upstream, with when to refresh it and when it stops working.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamToken {
    pub access_token: Arc<str>,
    /// Milliseconds since the Unix epoch: past this the token is not sent.
    pub expires_at_ms: i64,
    /// At 80 % of its lifetime a new one is fetched; until it arrives this one is used.
    pub refresh_at_ms: i64,
}

impl std::fmt::Debug for UpstreamToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamToken")
            .field("access_token", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .field("refresh_at_ms", &self.refresh_at_ms)
            .finish()
    }
}

impl UpstreamToken {
    /// A token received at `now_ms` that lives `lifetime_ms`: refreshed at 80 % of it.
    pub fn received(access_token: &str, now_ms: i64, lifetime_ms: i64) -> Self {
        let lifetime_ms = lifetime_ms.max(0);
        Self {
            access_token: Arc::from(access_token),
            expires_at_ms: now_ms.saturating_add(lifetime_ms),
            refresh_at_ms: now_ms.saturating_add(lifetime_ms / 5 * 4),
        }
    }

    pub fn is_live(&self, now_ms: i64) -> bool {
        now_ms < self.expires_at_ms
    }

    pub fn is_fresh(&self, now_ms: i64) -> bool {
        now_ms < self.refresh_at_ms
    }
}

/// Where upstream tokens are kept between requests.
pub trait UpstreamTokens: Send + Sync {
    /// The token kept under `key`, live or not (the caller decides); `Unavailable` when the
    /// backend could not answer.
    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> StateFuture<'a, Result<Option<UpstreamToken>, Unavailable>>;
    /// Keeps `token` under `key` until it expires, replacing any other.
    fn put<'a>(
        &'a self,
        key: &'a str,
        token: UpstreamToken,
    ) -> StateFuture<'a, Result<(), Unavailable>>;
    /// Forgets the token under `key` (the upstream refused it).
    fn forget<'a>(&'a self, key: &'a str) -> StateFuture<'a, ()>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
