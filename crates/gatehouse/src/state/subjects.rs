//! Per-subject counter state: a 128-bit keyed hash of the subject instead of its text, so a
//! check allocates nothing, and sixteen independently locked shards, so requests for different
//! subjects do not queue on one mutex. Maps sweep themselves: once a shard has doubled since its
//! last sweep, the entries a caller says are idle are dropped (amortised constant time).

use parking_lot::Mutex;
use std::{
    collections::HashMap,
    hash::{BuildHasher, Hasher, RandomState},
    sync::LazyLock,
};

/// A subject, hashed with two independent process-random keys (collisions are not a
/// practical concern at 128 bits, and the keys are unknown to callers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubjectKey(u64, u64);

static KEYS: LazyLock<(RandomState, RandomState)> =
    LazyLock::new(|| (RandomState::new(), RandomState::new()));

pub(crate) struct KeyHasher(
    std::collections::hash_map::DefaultHasher,
    std::collections::hash_map::DefaultHasher,
);

impl KeyHasher {
    pub(crate) fn new() -> Self {
        Self(KEYS.0.build_hasher(), KEYS.1.build_hasher())
    }
    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.write(bytes);
        self.1.write(bytes);
        self
    }
    pub(crate) fn finish(&self) -> SubjectKey {
        SubjectKey(self.0.finish(), self.1.finish())
    }
}

impl std::fmt::Write for KeyHasher {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}

impl SubjectKey {
    /// The key of a subject's text, as the policy that counts it writes it (stored quota rows).
    pub fn of_text(subject: &str) -> Self {
        KeyHasher::new().bytes(subject.as_bytes()).finish()
    }
}

const SHARDS: usize = 16;
/// A shard is not swept below this many entries.
const MIN_SWEEP: usize = 64;

#[derive(Debug)]
struct Shard<V> {
    entries: HashMap<SubjectKey, V>,
    /// Size at which the next sweep runs.
    sweep_at: usize,
}

impl<V> Default for Shard<V> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            sweep_at: MIN_SWEEP,
        }
    }
}

/// Sharded map from subject to counter state.
#[derive(Debug)]
pub struct SubjectMap<V> {
    shards: [Mutex<Shard<V>>; SHARDS],
}

impl<V> Default for SubjectMap<V> {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }
}

impl<V> SubjectMap<V> {
    fn shard(&self, key: SubjectKey) -> &Mutex<Shard<V>> {
        &self.shards[(key.0 as usize) % SHARDS]
    }

    /// Runs `f` on the subject's entry (`None` when absent) with its shard locked. When `f`
    /// inserts and the shard has doubled since its last sweep, entries `idle` accepts are
    /// dropped first.
    pub fn with<R>(
        &self,
        key: SubjectKey,
        idle: impl Fn(&V) -> bool,
        f: impl FnOnce(&mut HashMap<SubjectKey, V>) -> R,
    ) -> R {
        let mut shard = self.shard(key).lock();
        if shard.entries.len() >= shard.sweep_at && !shard.entries.contains_key(&key) {
            shard.entries.retain(|_, v| !idle(v));
            shard.sweep_at = (shard.entries.len() * 2).max(MIN_SWEEP);
        }
        f(&mut shard.entries)
    }

    /// Visits every entry, one shard locked at a time.
    pub fn for_each_mut(&self, mut f: impl FnMut(&SubjectKey, &mut V)) {
        for shard in &self.shards {
            for (k, v) in shard.lock().entries.iter_mut() {
                f(k, v);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().entries.len()).sum()
    }
}
