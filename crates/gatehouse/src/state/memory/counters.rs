//! Counters in process memory: per policy, a [`SubjectMap`] (sixteen locked shards keyed by a
//! hash of the subject, sweeping its idle entries as it grows), so a check allocates nothing
//! and requests for different subjects do not queue on one lock.

use parking_lot::Mutex;
use std::{collections::HashMap, sync::Arc};

use crate::state::{
    Charge, CounterScope, CounterStore, Denied, Gcra, QuotaCounter, RateCounter, StateFuture,
    Subject, SubjectKey, SubjectMap,
};
use gatehouse_model::records::{QuotaDelta, QuotaUsage};

/// TATs in nanoseconds since the Unix epoch, per subject. A TAT in the past counts exactly
/// like no entry (a step starts from `now`), so such subjects are idle and swept.
#[derive(Debug, Default)]
pub struct MemoryRate {
    tat: SubjectMap<i128>,
}

impl MemoryRate {
    /// [`RateCounter::take`] for a subject's key, answered at once.
    pub fn take_now(
        &self,
        key: SubjectKey,
        gcra: Gcra,
        now_ns: i128,
        charge: bool,
    ) -> Result<(), Denied> {
        self.tat.with(
            key,
            |&tat| tat <= now_ns,
            |cells| {
                let next = gcra
                    .step(cells.get(&key).copied(), now_ns)
                    .map_err(Denied::Wait)?;
                if charge {
                    cells.insert(key, next);
                }
                Ok(())
            },
        )
    }
}

impl RateCounter for MemoryRate {
    fn take(
        &self,
        subject: Subject<'_>,
        gcra: Gcra,
        now_ns: i128,
        charge: bool,
    ) -> StateFuture<'_, Result<(), Denied>> {
        StateFuture::ready(self.take_now(subject.key(), gcra, now_ns, charge))
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

impl MemoryQuota {
    /// [`QuotaCounter::charge`] for a subject's key (`text` builds its stored form when it is
    /// first counted), answered at once.
    pub fn charge_now(
        &self,
        key: SubjectKey,
        text: &dyn Fn() -> String,
        window_start: i64,
        limit: u64,
        charge: bool,
    ) -> Charge {
        let idle = |c: &Count| c.delta == 0 && c.window_start != window_start;
        self.counts.with(key, idle, |counts| {
            let count = counts.entry(key).or_insert_with(|| Count {
                subject: text(),
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
                return Charge::Exhausted;
            }
            if charge {
                count.used += 1;
                count.delta += 1;
            }
            Charge::Counted
        })
    }
}

impl QuotaCounter for MemoryQuota {
    fn charge(
        &self,
        subject: Subject<'_>,
        (window_start, _): (i64, i64),
        limit: u64,
        charge: bool,
    ) -> StateFuture<'_, Charge> {
        StateFuture::ready(self.charge_now(
            subject.key(),
            &|| subject.text(),
            window_start,
            limit,
            charge,
        ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Facts, Per, PerSubject, tests_support::facts_at};
    use std::time::Duration;

    const SECOND: i128 = 1_000_000_000;

    /// 10 per second, bursts of 3.
    fn gcra() -> Gcra {
        Gcra {
            interval_ns: SECOND / 10,
            tolerance_ns: 3 * SECOND / 10,
        }
    }

    fn take(rate: &MemoryRate, facts: &Facts<'_>, now_ns: i128) -> Result<(), Denied> {
        rate.take(
            Subject::new(&PerSubject::of(Per::Client, facts)),
            gcra(),
            now_ns,
            true,
        )
        .now_or_never()
        .expect("memory counters answer at once")
    }

    fn count(quota: &MemoryQuota, facts: &Facts<'_>, window: i64, limit: u64) -> bool {
        quota
            .charge(
                Subject::new(&PerSubject::of(Per::Client, facts)),
                (window, window + 1),
                limit,
                true,
            )
            .now_or_never()
            .expect("memory counters answer at once")
            == Charge::Counted
    }

    fn scope(policy_id: &str) -> CounterScope<'_> {
        CounterScope {
            policy_id,
            spec: "{}",
        }
    }

    #[test]
    fn gcra_admits_the_burst_then_one_per_interval_and_gives_back() {
        let rate = MemoryRate::default();
        let facts = facts_at(0);
        let t0 = 1_000 * SECOND;
        for i in 0..3 {
            assert_eq!(take(&rate, &facts, t0), Ok(()), "burst request {i}");
        }
        assert_eq!(
            take(&rate, &facts, t0),
            Err(Denied::Wait(Duration::from_millis(100))),
            "the fourth waits one interval"
        );
        let peeked = rate
            .take(
                Subject::new(&PerSubject::of(Per::Client, &facts)),
                gcra(),
                t0,
                false,
            )
            .now_or_never();
        assert_eq!(peeked, Some(Err(Denied::Wait(Duration::from_millis(100)))));
        let _ = rate
            .give_back(Subject::new(&PerSubject::of(Per::Client, &facts)), gcra())
            .now_or_never();
        assert_eq!(take(&rate, &facts, t0), Ok(()), "the given-back cell");
        assert!(take(&rate, &facts, t0).is_err());
    }

    #[test]
    fn gcra_never_admits_more_than_the_burst_under_contention() {
        let rate = Arc::new(MemoryRate::default());
        let admitted = std::sync::atomic::AtomicUsize::new(0);
        let t0 = 5_000 * SECOND;
        std::thread::scope(|threads| {
            for _ in 0..8 {
                threads.spawn(|| {
                    let facts = facts_at(0);
                    for _ in 0..1_000 {
                        if take(&rate, &facts, t0).is_ok() {
                            admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.into_inner(), 3, "8 000 requests at one instant");
    }

    #[test]
    fn quota_counts_per_window_and_refunds_only_into_the_window_charged() {
        let quota = MemoryQuota::new("q");
        let facts = facts_at(0);
        assert!(count(&quota, &facts, 100, 2));
        assert!(count(&quota, &facts, 100, 2));
        assert!(!count(&quota, &facts, 100, 2), "2 of 2 used");
        let per_client = PerSubject::of(Per::Client, &facts);
        let subject = Subject::new(&per_client);
        let _ = quota.refund(subject, 100).now_or_never();
        assert!(count(&quota, &facts, 100, 2), "the refunded call");
        // The next window starts afresh; a refund of a call charged in the old window (a
        // request that began before midnight) must not give back a call of the new one.
        assert!(count(&quota, &facts, 200, 1));
        let _ = quota.refund(subject, 100).now_or_never();
        assert!(
            !count(&quota, &facts, 200, 1),
            "1 of 1 still used in the new window"
        );
    }

    #[test]
    fn quota_never_exceeds_its_limit_under_contention_and_drains_what_it_counted() {
        let quota = MemoryQuota::new("q");
        let admitted = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|threads| {
            for _ in 0..8 {
                threads.spawn(|| {
                    let facts = facts_at(0);
                    for _ in 0..500 {
                        if count(&quota, &facts, 100, 1_000) {
                            admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.into_inner(), 1_000, "4 000 calls against 1 000");
        let deltas = quota.drain_deltas();
        assert_eq!(deltas.len(), 1);
        assert_eq!(deltas[0].delta, 1_000);
        assert_eq!(deltas[0].subject, "client:agent");
        assert_eq!(deltas[0].window_start, 100);
        assert!(quota.drain_deltas().is_empty(), "drained once");
    }

    #[test]
    fn deltas_are_counted_less_refunded_since_the_last_drain() {
        let quota = MemoryQuota::new("q");
        let facts = facts_at(0);
        quota.seed(vec![QuotaUsage {
            policy_id: "q".into(),
            subject: "client:agent".into(),
            window_start: 100,
            used: 5,
        }]);
        assert!(
            quota.drain_deltas().is_empty(),
            "seeded usage is already stored"
        );
        assert!(count(&quota, &facts, 100, 7));
        assert!(count(&quota, &facts, 100, 7));
        assert!(!count(&quota, &facts, 100, 7), "5 stored + 2 counted");
        assert_eq!(quota.drain_deltas()[0].delta, 2);
        let _ = quota
            .refund(Subject::new(&PerSubject::of(Per::Client, &facts)), 100)
            .now_or_never();
        assert_eq!(quota.drain_deltas()[0].delta, -1, "a refund after a drain");
    }

    #[test]
    fn quota_subjects_of_spent_windows_are_swept_once_drained() {
        let quota = MemoryQuota::new("q");
        let from = |ip: u32| {
            let mut facts = facts_at(0);
            facts.ip = std::net::IpAddr::from(ip.to_be_bytes());
            facts
        };
        let per_ip = |facts: &Facts<'_>, window| {
            quota
                .charge(
                    Subject::new(&PerSubject::of(Per::Ip, facts)),
                    (window, window + 100),
                    5,
                    true,
                )
                .now_or_never()
                .expect("ready")
                == Charge::Counted
        };
        for ip in 0..5_000u32 {
            assert!(per_ip(&from(ip), 100));
        }
        // Not yet drained: nothing may be swept, or those counts would never be stored.
        for ip in 0..5_000u32 {
            assert!(per_ip(&from(u32::MAX - ip), 200));
        }
        assert_eq!(quota.len(), 10_000);
        assert_eq!(quota.drain_deltas().len(), 10_000);
        for ip in 0..10_000u32 {
            assert!(per_ip(&from(1_000_000 + ip), 200));
        }
        assert!(
            quota.len() <= 16_000,
            "{} subjects kept: the 5 000 of the spent window are swept",
            quota.len()
        );
    }

    #[test]
    fn counters_are_shared_per_scope_seeded_on_first_use_and_forgotten_when_unused() {
        let store = MemoryCounters::default();
        store.preload(vec![QuotaUsage {
            policy_id: "q".into(),
            subject: "client:agent".into(),
            window_start: 100,
            used: 1,
        }]);
        let quota = store.quota(scope("q"));
        assert!(Arc::ptr_eq(&quota, &store.quota(scope("q"))));
        let facts = facts_at(0);
        assert!(
            quota
                .charge(
                    Subject::new(&PerSubject::of(Per::Client, &facts)),
                    (100, 200),
                    1,
                    true
                )
                .now_or_never()
                .expect("ready")
                == Charge::Exhausted,
            "the preloaded call counts"
        );
        let edited = store.quota(CounterScope {
            policy_id: "q",
            spec: "{\"limit\":2}",
        });
        assert!(
            !Arc::ptr_eq(&quota, &edited),
            "an edited spec starts afresh"
        );
        let rate = store.rate(scope("r"));
        assert_eq!(store.len(), 3);
        drop((quota, edited));
        assert!(store.drain_quota_deltas().is_empty());
        assert_eq!(store.len(), 1, "only the rate limit is still compiled");
        assert!(Arc::ptr_eq(&rate, &store.rate(scope("r"))));
    }
}
