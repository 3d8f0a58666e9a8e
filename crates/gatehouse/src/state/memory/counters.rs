//! Counters in process memory: per policy, a [`SubjectMap`] (sixteen locked shards keyed by a
//! hash of the subject, sweeping its idle entries as it grows), so a check allocates nothing
//! and requests for different subjects do not queue on one lock.

use parking_lot::Mutex;
use std::{collections::HashMap, sync::Arc, time::Duration};

use crate::{
    policy::subjects::{SubjectKey, SubjectMap},
    state::{CounterScope, CounterStore, Gcra, QuotaCounter, RateCounter, StateFuture, Subject},
    store::{QuotaDelta, QuotaUsage},
};

/// TATs in nanoseconds since the Unix epoch, per subject. A TAT in the past counts exactly
/// like no entry (a step starts from `now`), so such subjects are idle and swept.
#[derive(Debug, Default)]
pub struct MemoryRate {
    tat: SubjectMap<i128>,
}

impl RateCounter for MemoryRate {
    fn take(
        &self,
        subject: Subject<'_>,
        gcra: Gcra,
        now_ns: i128,
        charge: bool,
    ) -> StateFuture<'_, Result<(), Duration>> {
        let key = subject.key();
        let taken = self.tat.with(
            key,
            |&tat| tat <= now_ns,
            |cells| {
                let next = gcra.step(cells.get(&key).copied(), now_ns)?;
                if charge {
                    cells.insert(key, next);
                }
                Ok(())
            },
        );
        StateFuture::ready(taken)
    }

    fn give_back(&self, subject: Subject<'_>, gcra: Gcra) -> StateFuture<'_, ()> {
        let key = subject.key();
        self.tat.with(
            key,
            |_| false,
            |cells| {
                if let Some(tat) = cells.get_mut(&key) {
                    *tat -= gcra.interval_ns;
                }
            },
        );
        StateFuture::ready(())
    }

    fn len(&self) -> usize {
        self.tat.len()
    }
}

#[derive(Debug, Clone)]
struct Count {
    /// The subject's text, as stored (built only when the subject is first counted).
    subject: String,
    window_start: i64,
    used: u64,
    /// Counted less refunded in `window_start` since the last drain.
    delta: i64,
}

/// Counts per subject for one quota policy. A count of an earlier window with nothing left to
/// write back counts exactly like none, so such subjects are idle and swept.
#[derive(Debug)]
pub struct MemoryQuota {
    policy_id: String,
    counts: SubjectMap<Count>,
}

impl MemoryQuota {
    pub fn new(policy_id: &str) -> Self {
        Self {
            policy_id: policy_id.to_owned(),
            counts: SubjectMap::default(),
        }
    }
}

impl QuotaCounter for MemoryQuota {
    fn charge(
        &self,
        subject: Subject<'_>,
        window_start: i64,
        limit: u64,
        charge: bool,
    ) -> StateFuture<'_, bool> {
        let key = subject.key();
        let idle = |c: &Count| c.delta == 0 && c.window_start != window_start;
        let counted = self.counts.with(key, idle, |counts| {
            let count = counts.entry(key).or_insert_with(|| Count {
                subject: subject.text(),
                window_start,
                used: 0,
                delta: 0,
            });
            if count.window_start != window_start {
                // Another window: what the old one had not written back is spent anyway.
                count.window_start = window_start;
                count.used = 0;
                count.delta = 0;
            }
            if count.used >= limit {
                return false;
            }
            if charge {
                count.used += 1;
                count.delta += 1;
            }
            true
        });
        StateFuture::ready(counted)
    }

    fn refund(&self, subject: Subject<'_>, window_start: i64) -> StateFuture<'_, ()> {
        let key = subject.key();
        self.counts.with(
            key,
            |_| false,
            |counts| {
                if let Some(count) = counts.get_mut(&key)
                    && count.window_start == window_start
                    && count.used > 0
                {
                    count.used -= 1;
                    count.delta -= 1;
                }
            },
        );
        StateFuture::ready(())
    }

    fn seed(&self, rows: Vec<QuotaUsage>) {
        for row in rows {
            let key = SubjectKey::of_text(&row.subject);
            let count = Count {
                subject: row.subject,
                window_start: row.window_start,
                used: u64::try_from(row.used).unwrap_or(0),
                delta: 0,
            };
            self.counts
                .with(key, |_| false, |counts| counts.insert(key, count));
        }
    }

    fn drain_deltas(&self) -> Vec<QuotaDelta> {
        let mut deltas = Vec::new();
        self.counts.for_each_mut(|_, c| {
            if c.delta != 0 {
                deltas.push(QuotaDelta {
                    policy_id: self.policy_id.clone(),
                    subject: c.subject.clone(),
                    window_start: c.window_start,
                    delta: std::mem::take(&mut c.delta),
                });
            }
        });
        deltas
    }

    fn len(&self) -> usize {
        self.counts.len()
    }
}

/// Every stateful policy's counters, by policy id and spec.
#[derive(Debug, Default)]
pub struct MemoryCounters {
    rates: Mutex<HashMap<String, Arc<MemoryRate>>>,
    quotas: Mutex<HashMap<String, Arc<MemoryQuota>>>,
    /// Persisted quota usage not yet claimed by a compiled policy, by policy id.
    stored: Mutex<HashMap<String, Vec<QuotaUsage>>>,
}

fn scope_key(scope: CounterScope<'_>) -> String {
    format!("{}\n{}", scope.policy_id, scope.spec)
}

impl CounterStore for MemoryCounters {
    fn rate(&self, scope: CounterScope<'_>) -> Arc<dyn RateCounter> {
        self.rates
            .lock()
            .entry(scope_key(scope))
            .or_default()
            .clone()
    }

    fn quota(&self, scope: CounterScope<'_>) -> Arc<dyn QuotaCounter> {
        let key = scope_key(scope);
        let mut quotas = self.quotas.lock();
        if let Some(existing) = quotas.get(&key) {
            return existing.clone();
        }
        let counter = Arc::new(MemoryQuota::new(scope.policy_id));
        if let Some(rows) = self.stored.lock().remove(scope.policy_id) {
            counter.seed(rows);
        }
        quotas.insert(key, counter.clone());
        counter
    }

    fn preload(&self, usage: Vec<QuotaUsage>) {
        let mut stored = self.stored.lock();
        for row in usage {
            stored.entry(row.policy_id.clone()).or_default().push(row);
        }
    }

    fn drain_quota_deltas(&self) -> Vec<QuotaDelta> {
        let mut quotas = self.quotas.lock();
        let deltas = quotas.values().flat_map(|q| q.drain_deltas()).collect();
        // The store's own reference is the only one left once no compiled policy holds it;
        // compiling takes this lock, so none can be handed out meanwhile.
        quotas.retain(|_, q| Arc::strong_count(q) > 1);
        drop(quotas);
        self.rates.lock().retain(|_, r| Arc::strong_count(r) > 1);
        deltas
    }

    fn len(&self) -> usize {
        self.rates.lock().len() + self.quotas.lock().len()
    }
}
