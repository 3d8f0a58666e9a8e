//! Upstream tokens in this process's memory: one map, bounded (expired tokens are dropped
//! when it is full; a map full of live tokens refuses the new one, which is then fetched
//! again on the next call rather than evicting another server's).

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::state::{
    StateFuture, Unavailable,
    upstream_tokens::{UpstreamToken, UpstreamTokens},
};

/// Far above the number of servers; a bound so per-user keys cannot grow without end.
const DEFAULT_CAPACITY: usize = 100_000;

pub struct MemoryUpstreamTokens {
    tokens: Mutex<HashMap<String, UpstreamToken>>,
    capacity: usize,
}

impl Default for MemoryUpstreamTokens {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl MemoryUpstreamTokens {
    pub fn new(capacity: usize) -> Self {
        Self {
            tokens: Mutex::new(HashMap::new()),
            capacity,
        }
    }
}

impl UpstreamTokens for MemoryUpstreamTokens {
    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> StateFuture<'a, Result<Option<UpstreamToken>, Unavailable>> {
        StateFuture::ready(Ok(self.tokens.lock().get(key).cloned()))
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        token: UpstreamToken,
    ) -> StateFuture<'a, Result<(), Unavailable>> {
        let mut tokens = self.tokens.lock();
        if tokens.len() >= self.capacity && !tokens.contains_key(key) {
            let now = crate::now_ms();
            tokens.retain(|_, kept| kept.is_live(now));
            if tokens.len() >= self.capacity {
                return StateFuture::ready(Err(Unavailable));
            }
        }
        tokens.insert(key.to_owned(), token);
        StateFuture::ready(Ok(()))
    }

    fn forget<'a>(&'a self, key: &'a str) -> StateFuture<'a, ()> {
        self.tokens.lock().remove(key);
        StateFuture::ready(())
    }

    fn len(&self) -> usize {
        self.tokens.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_is_kept_replaced_and_forgotten_by_key() {
        let tokens = MemoryUpstreamTokens::default();
        assert_eq!(tokens.get("files:1").await, Ok(None));
        let first = UpstreamToken::received("a", 1_000, 10_000);
        assert_eq!(first.refresh_at_ms, 9_000);
        assert_eq!(first.expires_at_ms, 11_000);
        tokens.put("files:1", first.clone()).await.unwrap();
        assert_eq!(tokens.get("files:1").await, Ok(Some(first)));
        let second = UpstreamToken::received("b", 2_000, 10_000);
        tokens.put("files:1", second.clone()).await.unwrap();
        assert_eq!(tokens.get("files:1").await, Ok(Some(second)));
        assert_eq!(tokens.get("files:2").await, Ok(None));
        tokens.forget("files:1").await;
        assert!(tokens.is_empty());
    }

    #[tokio::test]
    async fn a_full_map_drops_expired_tokens_and_never_evicts_a_live_one() {
        let tokens = MemoryUpstreamTokens::new(1);
        tokens
            .put("old", UpstreamToken::received("x", 0, 1))
            .await
            .unwrap();
        let live = UpstreamToken::received("y", crate::now_ms(), 3_600_000);
        tokens.put("new", live.clone()).await.unwrap();
        assert_eq!(
            tokens.get("old").await,
            Ok(None),
            "the expired one made room"
        );
        let refused = tokens
            .put(
                "third",
                UpstreamToken::received("z", crate::now_ms(), 3_600_000),
            )
            .await;
        assert_eq!(refused, Err(Unavailable));
        assert_eq!(tokens.get("new").await, Ok(Some(live)));
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let token = UpstreamToken::received("very-secret", 0, 1_000);
        assert!(!format!("{token:?}").contains("very-secret"));
    }
}
