//! Single-use ids in process memory: sixteen locked shards, each bounded. A full shard first
//! drops its expired ids; if it is still full of live ones, new ids are refused (fail closed)
//! rather than forgetting an id that could then be replayed. A shard knows when its soonest
//! id expires, so while it is full of live ids it refuses without scanning itself again.

use parking_lot::Mutex;
use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::atomic::{AtomicUsize, Ordering},
};

use crate::state::{ReplayCache, StateFuture, Unavailable};

/// Ids remembered at most when the configuration does not say.
pub const DEFAULT_CAPACITY: usize = 100_000;
const SHARDS: usize = 16;

#[derive(Debug)]
pub struct MemoryReplay {
    shards: [Mutex<Shard>; SHARDS],
    per_shard: usize,
    hasher: RandomState,
    /// Times a full shard looked for expired ids.
    scans: AtomicUsize,
}

#[derive(Debug)]
struct Shard {
    ids: HashMap<String, i64>,
    /// No id expires before this (it may be earlier than the true soonest, never later).
    soonest: i64,
}

impl Default for Shard {
    fn default() -> Self {
        Self {
            ids: HashMap::new(),
            soonest: i64::MAX,
        }
    }
}

impl Default for MemoryReplay {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl MemoryReplay {
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::default()),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            scans: AtomicUsize::new(0),
        }
    }
}

impl ReplayCache for MemoryReplay {
    fn first_use(
        &self,
        id: &str,
        expires_at: i64,
        now: i64,
    ) -> StateFuture<'_, Result<bool, Unavailable>> {
        StateFuture::ready(Ok(self.first_use_now(id, expires_at, now)))
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().ids.len()).sum()
    }
}

impl MemoryReplay {
    fn first_use_now(&self, id: &str, expires_at: i64, now: i64) -> bool {
        let shard = &self.shards[(self.hasher.hash_one(id) as usize) % SHARDS];
        let mut seen = shard.lock();
        let seen = &mut *seen;
        if let Some(until) = seen.ids.get_mut(id) {
            if *until > now {
                return false;
            }
            *until = expires_at;
            seen.soonest = seen.soonest.min(expires_at);
            return true;
        }
        if seen.ids.len() >= self.per_shard {
            if now < seen.soonest {
                return false;
            }
            self.scans.fetch_add(1, Ordering::Relaxed);
            seen.ids.retain(|_, until| *until > now);
            seen.soonest = seen.ids.values().copied().min().unwrap_or(i64::MAX);
            if seen.ids.len() >= self.per_shard {
                return false;
            }
        }
        seen.ids.insert(id.to_owned(), expires_at);
        seen.soonest = seen.soonest.min(expires_at);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_accepted_once_until_it_expires() {
        let replay = MemoryReplay::default();
        assert!(replay.first_use_now("c\0j1", 100, 0));
        assert!(!replay.first_use_now("c\0j1", 100, 99));
        assert!(replay.first_use_now("c\0j2", 100, 0));
        assert!(replay.first_use_now("c\0j1", 300, 100), "expired at 100");
        assert!(!replay.first_use_now("c\0j1", 300, 200));
    }

    #[test]
    fn a_full_cache_drops_expired_ids_and_refuses_rather_than_forget_live_ones() {
        let replay = MemoryReplay::new(SHARDS * 4);
        let mut accepted = 0;
        for n in 0..SHARDS * 64 {
            accepted += usize::from(replay.first_use_now(&format!("live-{n}"), 1_000, 0));
        }
        assert_eq!(accepted, SHARDS * 4, "every shard filled to its bound");
        assert_eq!(replay.len(), SHARDS * 4);
        for n in 0..SHARDS * 64 {
            assert!(
                !replay.first_use_now(&format!("live-{n}"), 1_000, 10),
                "live-{n}: remembered, or refused because the cache is full"
            );
        }
        // Once they expire, new ids take their places. Four at most: as many as one shard
        // holds, wherever the hasher puts them (sixteen could land five in one shard).
        for n in 0..4 {
            assert!(replay.first_use_now(&format!("later-{n}"), 2_000, 1_000));
        }
        assert!(replay.len() <= SHARDS * 4);
    }

    #[test]
    fn a_shard_full_of_live_ids_refuses_without_scanning_until_one_can_have_expired() {
        let replay = MemoryReplay::new(SHARDS);
        for n in 0..SHARDS * 64 {
            replay.first_use_now(&format!("live-{n}"), 1_000, 0);
        }
        assert_eq!(replay.len(), SHARDS, "every shard full");
        assert_eq!(
            replay.scans.load(Ordering::Relaxed),
            0,
            "nothing could have expired before 1,000"
        );
        assert!(
            replay.first_use_now("after", 2_000, 1_000),
            "expired ones make room"
        );
        assert_eq!(replay.scans.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn concurrent_uses_of_one_id_are_accepted_exactly_once() {
        let replay = MemoryReplay::default();
        for round in 0..50 {
            let id = format!("c\0jti-{round}");
            let accepted = std::sync::atomic::AtomicUsize::new(0);
            std::thread::scope(|threads| {
                for _ in 0..8 {
                    threads.spawn(|| {
                        if replay.first_use_now(&id, 100, 0) {
                            accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    });
                }
            });
            assert_eq!(accepted.into_inner(), 1, "round {round}");
        }
    }
}
