//! Single-use ids in process memory: sixteen locked shards, each bounded. A full shard first
//! drops its expired ids; if it is still full of live ones, new ids are refused (fail closed)
//! rather than forgetting an id that could then be replayed.

use parking_lot::Mutex;
use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
};

use crate::state::ReplayCache;

/// Ids remembered at most when the configuration does not say.
pub const DEFAULT_CAPACITY: usize = 100_000;
const SHARDS: usize = 16;

#[derive(Debug)]
pub struct MemoryReplay {
    shards: [Mutex<HashMap<String, i64>>; SHARDS],
    per_shard: usize,
    hasher: RandomState,
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
        }
    }
}

impl ReplayCache for MemoryReplay {
    fn first_use(&self, id: &str, expires_at: i64, now: i64) -> bool {
        let shard = &self.shards[(self.hasher.hash_one(id) as usize) % SHARDS];
        let mut seen = shard.lock();
        if let Some(until) = seen.get_mut(id) {
            if *until > now {
                return false;
            }
            *until = expires_at;
            return true;
        }
        if seen.len() >= self.per_shard {
            seen.retain(|_, until| *until > now);
            if seen.len() >= self.per_shard {
                return false;
            }
        }
        seen.insert(id.to_owned(), expires_at);
        true
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}
