//! Verified tokens, remembered so each token costs one asymmetric verification per process.
//!
//! Entries are keyed by SHA-256 of the whole token: a collision would hand one token's
//! identity to another, so the key has to be collision-resistant, and a digest keeps memory
//! per entry fixed whatever the token size. An entry is never returned past its `exp`
//! (plus leeway), whatever else the caller checks.
//!
//! The value is generic so callers can cache what they derive from the claims; the default,
//! [`VerifiedClaims`], gets [`TokenCache::verify_at`], which re-applies the caller's
//! expectations (`typ`, `iss`, `aud`, lifetime) on every hit: one cache can then serve
//! every audience without a token verified for one being accepted for another.

use std::{collections::HashMap, sync::Arc};

use parking_lot::RwLock;
use sha2::{Digest, Sha256};

use super::{
    jwt::{self, DEFAULT_LEEWAY_SECS, Expectations, JwtError, MAX_TOKEN_LEN, VerifiedClaims},
    keys::VerifierSet,
};

pub const DEFAULT_CAPACITY: usize = 10_000;

/// A cached value's expiry, in Unix seconds (the token's `exp`).
pub trait Expiring {
    fn exp(&self) -> i64;
}

impl Expiring for VerifiedClaims {
    fn exp(&self) -> i64 {
        VerifiedClaims::exp(self)
    }
}

type TokenHash = [u8; 32];

struct Entry<V> {
    value: Arc<V>,
    /// Insertion order, for evicting the oldest live entries when the cache is full.
    seq: u64,
}

struct Inner<V> {
    map: HashMap<TokenHash, Entry<V>>,
    next_seq: u64,
    /// Bumped by `clear`, so a verification that raced a key change cannot store its
    /// result after the cache was emptied.
    generation: u64,
}

pub struct TokenCache<V = VerifiedClaims> {
    capacity: usize,
    leeway_secs: i64,
    inner: RwLock<Inner<V>>,
}

impl<V> std::fmt::Debug for TokenCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("capacity", &self.capacity)
            .field("len", &self.inner.read().map.len())
            .finish_non_exhaustive()
    }
}

impl<V: Expiring> Default for TokenCache<V> {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// A token's cache key, hashed once so one token can be looked up in several caches (the
/// gateway's own tokens, then those of trusted issuers) for the price of one SHA-256.
#[derive(Clone, Copy)]
pub struct TokenKey(TokenHash);

impl TokenKey {
    /// `None` for a token over [`MAX_TOKEN_LEN`]: such a token is never cached, and
    /// refusing it here keeps an oversized token from costing a hash.
    pub fn of(token: &str) -> Option<Self> {
        (token.len() <= MAX_TOKEN_LEN).then(|| Self(hash(token)))
    }
}

impl<V: Expiring> TokenCache<V> {
    /// Entries stay returnable for [`DEFAULT_LEEWAY_SECS`] past their `exp`, as
    /// [`Expectations::access_token`] accepts them; see [`Self::with_leeway`].
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            inner: RwLock::new(Inner {
                map: HashMap::new(),
                next_seq: 0,
                generation: 0,
            }),
        }
    }

    /// How long past `exp` `get_at` still returns an entry: use the verifier's leeway, so
    /// the cache neither outlives what verification accepts nor drops what it would keep.
    pub fn with_leeway(mut self, leeway_secs: i64) -> Self {
        self.leeway_secs = leeway_secs;
        self
    }

    fn is_live(&self, value: &V, now: i64) -> bool {
        now < value.exp().saturating_add(self.leeway_secs)
    }

    /// The value cached for `token`, if it has not expired.
    pub fn get_at(&self, token: &str, now: i64) -> Option<Arc<V>> {
        self.get_keyed_at(&TokenKey::of(token)?, now)
    }

    /// [`Self::get_at`] for a token already hashed.
    pub fn get_keyed_at(&self, key: &TokenKey, now: i64) -> Option<Arc<V>> {
        let inner = self.inner.read();
        let entry = inner.map.get(&key.0)?;
        self.is_live(&entry.value, now)
            .then(|| Arc::clone(&entry.value))
    }

    /// Remembers `value` for `token`; only values derived from a successful verification
    /// belong here. An already expired value is not stored.
    pub fn insert(&self, token: &str, value: Arc<V>, now: i64) {
        let generation = self.inner.read().generation;
        self.store(hash(token), value, generation, now);
    }

    /// Forgets every token: call whenever a verification key is removed or replaced.
    pub fn clear(&self) {
        let mut inner = self.inner.write();
        inner.map.clear();
        inner.generation = inner.generation.wrapping_add(1);
    }

    pub fn len(&self) -> usize {
        self.inner.read().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn store(&self, key: TokenHash, value: Arc<V>, generation: u64, now: i64) {
        if !self.is_live(&value, now) {
            return;
        }
        let mut inner = self.inner.write();
        if inner.generation != generation {
            return;
        }
        if inner.map.len() >= self.capacity && !inner.map.contains_key(&key) {
            self.make_room(&mut inner, now);
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.map.insert(key, Entry { value, seq });
    }

    /// Drops expired entries; if the cache is still full, the oldest eighth goes too, so
    /// a flood of new valid tokens pays for one scan per many inserts, not one per insert.
    fn make_room(&self, inner: &mut Inner<V>, now: i64) {
        inner.map.retain(|_, entry| self.is_live(&entry.value, now));
        let target = self.capacity - (self.capacity / 8).max(1);
        let excess = inner.map.len().saturating_sub(target);
        if excess == 0 {
            return;
        }
        let mut seqs: Vec<u64> = inner.map.values().map(|entry| entry.seq).collect();
        let (_, &mut cutoff, _) = seqs.select_nth_unstable(excess - 1);
        inner.map.retain(|_, entry| entry.seq > cutoff);
    }
}

impl TokenCache<VerifiedClaims> {
    /// [`jwt::verify`] with memory: a token seen before skips the signature check.
    pub fn verify(
        &self,
        token: &str,
        keys: &VerifierSet,
        expect: &Expectations,
    ) -> Result<Arc<VerifiedClaims>, JwtError> {
        self.verify_at(token, keys, expect, jiff::Timestamp::now().as_second())
    }

    /// A hit answers exactly as [`jwt::verify_at`] would with the same keys: only the
    /// signature check is skipped, every expectation is checked again.
    pub fn verify_at(
        &self,
        token: &str,
        keys: &VerifierSet,
        expect: &Expectations,
        now: i64,
    ) -> Result<Arc<VerifiedClaims>, JwtError> {
        // Checked before hashing so an oversized token costs nothing here either.
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::TooLarge);
        }
        let key = hash(token);
        let (cached, generation) = {
            let inner = self.inner.read();
            let cached = inner.map.get(&key).map(|entry| Arc::clone(&entry.value));
            (cached, inner.generation)
        };
        if let Some(claims) = cached {
            claims.satisfies(expect, now)?;
            return Ok(claims);
        }
        let claims = Arc::new(jwt::verify_at(token, keys, expect, now)?);
        self.store(key, Arc::clone(&claims), generation, now);
        Ok(claims)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::tokens::{
        jwt::{ACCESS_TOKEN_TYP, encode},
        keys::{SigningKey, tests::key},
    };
    use gatehouse_model::algorithm::Algorithm;
    use serde_json::json;

    const NOW: i64 = 1_750_000_000;
    const ISS: &str = "https://gatehouse.example";
    const AUD: &str = "https://mcp.example/mcp";

    fn token(key: &SigningKey, sub: &str, exp: i64) -> String {
        let claims = json!({"iss": ISS, "aud": AUD, "sub": sub, "exp": exp});
        encode(key, Some(ACCESS_TOKEN_TYP), &claims).unwrap()
    }

    fn fixture(capacity: usize) -> (SigningKey, VerifierSet, TokenCache, Expectations) {
        let key = key(Algorithm::EdDSA);
        let mut set = VerifierSet::new();
        set.insert(key.verification_key());
        let cache = TokenCache::new(capacity);
        (key, set, cache, Expectations::access_token(ISS, AUD))
    }

    #[test]
    fn hit_skips_verification_and_miss_verifies() {
        let (key, set, cache, expect) = fixture(16);
        let t = token(&key, "a", NOW + 300);
        assert!(cache.get_at(&t, NOW).is_none());
        let first = cache.verify_at(&t, &set, &expect, NOW).unwrap();
        let hashed = TokenKey::of(&t).unwrap();
        assert!(Arc::ptr_eq(
            &first,
            &cache.get_keyed_at(&hashed, NOW).unwrap()
        ));
        // An empty key set would refuse the token: only the cache can answer it now.
        let no_keys = VerifierSet::new();
        let hit = cache.verify_at(&t, &no_keys, &expect, NOW).unwrap();
        assert!(Arc::ptr_eq(&first, &hit));
        assert!(Arc::ptr_eq(&first, &cache.get_at(&t, NOW).unwrap()));

        let other = token(&key, "b", NOW + 300);
        let miss = cache.verify_at(&other, &no_keys, &expect, NOW);
        assert_eq!(miss.unwrap_err(), JwtError::UnknownKid);
        let verified = cache.verify_at(&other, &set, &expect, NOW).unwrap();
        assert_eq!(verified.sub(), Some("b"));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn hits_are_checked_against_the_callers_expectations() {
        let (key, set, cache, expect) = fixture(16);
        let t = token(&key, "a", NOW + 300);
        cache.verify_at(&t, &set, &expect, NOW).unwrap();
        let elsewhere = Expectations::access_token(ISS, "https://other.example/mcp");
        let hit = cache.verify_at(&t, &set, &elsewhere, NOW);
        assert_eq!(hit.unwrap_err(), JwtError::WrongAudience);
        let mut id_token = expect.clone();
        id_token.typ = Some("JWT".into());
        let hit = cache.verify_at(&t, &set, &id_token, NOW);
        assert_eq!(hit.unwrap_err(), JwtError::WrongType);
    }

    #[test]
    fn failures_are_not_cached() {
        let (key, set, cache, expect) = fixture(16);
        let expired = token(&key, "a", NOW - 3_600);
        let refused = cache.verify_at(&expired, &set, &expect, NOW);
        assert_eq!(refused.unwrap_err(), JwtError::Expired);
        assert!(cache.is_empty());
        let oversized = "a".repeat(MAX_TOKEN_LEN + 1);
        let refused = cache.verify_at(&oversized, &set, &expect, NOW);
        assert_eq!(refused.unwrap_err(), JwtError::TooLarge);
        assert!(TokenKey::of(&oversized).is_none());
    }

    #[test]
    fn expiry_is_honoured_on_hit() {
        let (key, set, cache, expect) = fixture(16);
        let exp = NOW + 100;
        let t = token(&key, "a", exp);
        cache.verify_at(&t, &set, &expect, NOW).unwrap();
        let end = exp + DEFAULT_LEEWAY_SECS;
        assert!(cache.verify_at(&t, &set, &expect, end - 1).is_ok());
        assert!(cache.get_at(&t, end - 1).is_some());
        let late = cache.verify_at(&t, &set, &expect, end);
        assert_eq!(late.unwrap_err(), JwtError::Expired);
        assert!(cache.get_at(&t, end).is_none());
    }

    #[test]
    fn capacity_is_bounded_and_expired_entries_go_first() {
        struct Identity(i64);
        impl Expiring for Identity {
            fn exp(&self) -> i64 {
                self.0
            }
        }
        let cache = TokenCache::new(8).with_leeway(60);
        for i in 0..4 {
            cache.insert(&format!("short-{i}"), Arc::new(Identity(NOW + 10)), NOW);
            cache.insert(&format!("long-{i}"), Arc::new(Identity(NOW + 1_000)), NOW);
        }
        assert_eq!(cache.len(), 8);
        // Past the short entries' lifetime (and leeway), a new entry evicts only them.
        let later = NOW + 200;
        cache.insert("fresh", Arc::new(Identity(NOW + 1_000)), later);
        assert_eq!(cache.len(), 5);
        assert!((0..4).all(|i| cache.get_at(&format!("long-{i}"), later).is_some()));

        for i in 0..50 {
            cache.insert(&format!("x{i}"), Arc::new(Identity(NOW + 1_000)), later);
            assert!(cache.len() <= 8);
        }
        assert!(
            cache.get_at("x49", later).is_some(),
            "the newest entry survives"
        );
        cache.insert("stale", Arc::new(Identity(NOW)), later);
        assert!(
            cache.get_at("stale", NOW).is_none(),
            "expired values are not stored"
        );
    }

    #[test]
    fn clear_forgets_and_fences_in_flight_verifications() {
        let (key, set, cache, expect) = fixture(16);
        let t = token(&key, "a", NOW + 300);
        cache.verify_at(&t, &set, &expect, NOW).unwrap();
        cache.clear();
        assert!(cache.is_empty());
        let after = cache.verify_at(&t, &VerifierSet::new(), &expect, NOW);
        assert_eq!(after.unwrap_err(), JwtError::UnknownKid);
        // A result computed under the previous generation is dropped, not stored.
        let claims = Arc::new(jwt::verify_at(&t, &set, &expect, NOW).unwrap());
        let stale = cache.inner.read().generation.wrapping_sub(1);
        cache.store(hash(&t), claims, stale, NOW);
        assert!(cache.is_empty());
    }
}
