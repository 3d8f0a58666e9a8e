//! Rate limits and quotas in Redis: one GCRA cell per subject (`P r:{scope}:{subject}`, its
//! TAT in µs) and one count per subject and window (`P q:{scope}:{window}:{subject}`), each
//! changed by one script, so replicas share exact counts. Quota deltas are still drained per
//! replica into the store (the stored usage stays the sum over replicas).

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::{collections::HashMap, sync::Arc, time::Duration};

use super::link::RedisLink;
use crate::{
    config::OnOutage,
    state::{
        Charge, CounterScope, CounterStore, Denied, Gcra, QuotaCounter, RateCounter, StateFuture,
        Subject,
        memory::{MemoryQuota, MemoryRate},
    },
};
use std::sync::atomic::{AtomicUsize, Ordering};

/// What counters do while Redis does not answer (`redis.on_outage`).
#[derive(Debug)]
pub struct Outage {
    pub on_outage: OnOutage,
    /// Replicas with a fresh heartbeat, as last read from the store (at least 1): in `local`
    /// mode each counts at this share of the limit, so together they stay near it.
    pub live_replicas: Arc<AtomicUsize>,
}

impl Outage {
    fn share(&self) -> u64 {
        self.live_replicas.load(Ordering::Relaxed).max(1) as u64
    }

    /// This replica's share of a rate limit: `interval × live replicas`, the tolerance kept
    /// (so the burst is shared too) but never below one interval.
    fn rate(&self, gcra: Gcra) -> Gcra {
        let interval_ns = gcra.interval_ns * i128::from(self.share());
        Gcra {
            interval_ns,
            tolerance_ns: gcra.tolerance_ns.max(interval_ns),
        }
    }

    /// This replica's share of a quota, rounded up.
    fn quota(&self, limit: u64) -> u64 {
        limit.div_ceil(self.share())
    }
}
use gatehouse_model::records::{QuotaDelta, QuotaUsage};

/// A quota's count is kept this long past its window's end.
const QUOTA_KEPT_MS: i64 = 24 * 3_600 * 1_000;

/// 16 hex digits of SHA-256(policy id ‖ 0 ‖ spec): editing a policy starts afresh.
fn scope_hash(scope: CounterScope<'_>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(scope.policy_id.as_bytes());
    hasher.update([0]);
    hasher.update(scope.spec.as_bytes());
    hex::encode(&hasher.finalize()[..8])
}

fn micros(ns: i128) -> i64 {
    i64::try_from(ns / 1_000).unwrap_or(i64::MAX)
}

#[derive(Debug)]
pub struct RedisRate {
    link: Arc<RedisLink>,
    scope: String,
    outage: Arc<Outage>,
    /// Cells counted here while Redis is down, in `local` mode.
    local: MemoryRate,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisLink")
    }
}

impl RedisRate {
    fn cell(&self, subject: Subject<'_>) -> String {
        self.link
            .key(format_args!("r:{}:{}", self.scope, subject.text()))
    }

    /// One step at `now_us` as given, not Redis's clock (for the property test against
    /// [`Gcra::step`]).
    pub async fn take_at(
        &self,
        subject: Subject<'_>,
        gcra: Gcra,
        now_us: Option<i64>,
        charge: bool,
    ) -> Result<(), Denied> {
        let mut invocation = self.link.scripts.gcra.key(self.cell(subject));
        invocation
            .arg(micros(gcra.interval_ns))
            .arg(micros(gcra.tolerance_ns))
            .arg(if charge { "1" } else { "0" });
        if let Some(now) = now_us {
            invocation.arg(now);
        }
        let (passed, wait_us): (i64, i64) = self
            .link
            .invoke(invocation)
            .await
            .map_err(|_| Denied::Unavailable)?;
        if passed == 1 {
            Ok(())
        } else {
            Err(Denied::Wait(Duration::from_micros(
                u64::try_from(wait_us).unwrap_or(0),
            )))
        }
    }
}

impl RateCounter for RedisRate {
    fn take(
        &self,
        subject: Subject<'_>,
        gcra: Gcra,
        now_ns: i128,
        charge: bool,
    ) -> StateFuture<'_, Result<(), Denied>> {
        // Redis's clock, not this replica's: skew between replicas cannot loosen a limit.
        let cell = self.cell(subject);
        let key = subject.key();
        let fallback = move |this: &Self| match this.outage.on_outage {
            OnOutage::Closed => Err(Denied::Unavailable),
            OnOutage::Local => this
                .local
                .take_now(key, this.outage.rate(gcra), now_ns, charge),
        };
        if self.link.is_down() {
            return StateFuture::ready(fallback(self));
        }
        StateFuture::pending(async move {
            let mut invocation = self.link.scripts.gcra.key(cell);
            invocation
                .arg(micros(gcra.interval_ns))
                .arg(micros(gcra.tolerance_ns))
                .arg(if charge { "1" } else { "0" });
            let Ok((passed, wait_us)) = self.link.invoke::<(i64, i64)>(invocation).await else {
                return fallback(self);
            };
            if passed == 1 {
                Ok(())
            } else {
                Err(Denied::Wait(Duration::from_micros(
                    u64::try_from(wait_us).unwrap_or(0),
                )))
            }
        })
    }

    fn give_back(&self, subject: Subject<'_>, gcra: Gcra) -> StateFuture<'_, ()> {
        let cell = self.cell(subject);
        StateFuture::pending(async move {
            let mut invocation = self.link.scripts.gcra_give_back.key(cell);
            invocation.arg(micros(gcra.interval_ns));
            // A cell not given back only makes the limit stricter for one interval.
            let _: Result<i64, _> = self.link.invoke(invocation).await;
        })
    }

    fn len(&self) -> usize {
        0
    }
}

/// Per replica: what this replica counted since the last drain, and the stored usage that
/// seeds a window's count when Redis has none.
#[derive(Debug)]
pub struct RedisQuota {
    link: Arc<RedisLink>,
    scope: String,
    policy_id: String,
    deltas: Mutex<HashMap<(String, i64), i64>>,
    stored: Mutex<HashMap<(String, i64), u64>>,
    outage: Arc<Outage>,
    /// Calls counted here while Redis is down, in `local` mode (their deltas drain too).
    local: MemoryQuota,
}

impl RedisQuota {
    fn count_key(&self, subject: &str, window_start: i64) -> String {
        self.link
            .key(format_args!("q:{}:{window_start}:{subject}", self.scope))
    }

    fn note(&self, subject: String, window_start: i64, delta: i64) {
        *self
            .deltas
            .lock()
            .entry((subject, window_start))
            .or_default() += delta;
    }
}

impl QuotaCounter for RedisQuota {
    fn charge(
        &self,
        subject: Subject<'_>,
        (window_start, window_end): (i64, i64),
        limit: u64,
        charge: bool,
    ) -> StateFuture<'_, Charge> {
        let key = subject.key();
        let subject = subject.text();
        let fallback = move |this: &Self, subject: &str| match this.outage.on_outage {
            OnOutage::Closed => Charge::Unavailable,
            OnOutage::Local => this.local.charge_now(
                key,
                &|| subject.to_owned(),
                window_start,
                this.outage.quota(limit),
                charge,
            ),
        };
        if self.link.is_down() {
            return StateFuture::ready(fallback(self, &subject));
        }
        StateFuture::pending(async move {
            let seed = self
                .stored
                .lock()
                .get(&(subject.clone(), window_start))
                .copied()
                .unwrap_or(0);
            let mut invocation = self
                .link
                .scripts
                .quota
                .key(self.count_key(&subject, window_start));
            invocation
                .arg(limit)
                .arg(if charge { "1" } else { "0" })
                .arg(window_end.saturating_add(QUOTA_KEPT_MS))
                .arg(seed);
            match self.link.invoke::<i64>(invocation).await {
                Ok(1) => {
                    if charge {
                        self.note(subject, window_start, 1);
                    }
                    Charge::Counted
                }
                Ok(_) => Charge::Exhausted,
                Err(_) => fallback(self, &subject),
            }
        })
    }

    fn refund(&self, subject: Subject<'_>, window_start: i64) -> StateFuture<'_, ()> {
        let subject = subject.text();
        StateFuture::pending(async move {
            let invocation = self
                .link
                .scripts
                .quota_refund
                .key(self.count_key(&subject, window_start));
            if let Ok(1) = self.link.invoke::<i64>(invocation).await {
                self.note(subject, window_start, -1);
            }
        })
    }

    fn seed(&self, rows: Vec<QuotaUsage>) {
        let mut stored = self.stored.lock();
        for row in rows {
            stored.insert(
                (row.subject, row.window_start),
                u64::try_from(row.used).unwrap_or(0),
            );
        }
    }

    fn drain_deltas(&self) -> Vec<QuotaDelta> {
        let mut deltas: Vec<QuotaDelta> = self
            .deltas
            .lock()
            .drain()
            .filter(|(_, delta)| *delta != 0)
            .map(|((subject, window_start), delta)| QuotaDelta {
                policy_id: self.policy_id.clone(),
                subject,
                window_start,
                delta,
            })
            .collect();
        deltas.extend(self.local.drain_deltas());
        deltas
    }

    fn len(&self) -> usize {
        self.deltas.lock().len()
    }
}

/// Every stateful policy's counters in Redis.
#[derive(Debug)]
pub struct RedisCounters {
    link: Arc<RedisLink>,
    outage: Arc<Outage>,
    quotas: Mutex<HashMap<String, Arc<RedisQuota>>>,
    rates: Mutex<HashMap<String, Arc<RedisRate>>>,
    /// Persisted usage not yet claimed by a compiled quota, by policy id.
    stored: Mutex<HashMap<String, Vec<QuotaUsage>>>,
}

impl RedisCounters {
    pub fn new(link: Arc<RedisLink>, outage: Outage) -> Self {
        Self {
            link,
            outage: Arc::new(outage),
            quotas: Mutex::default(),
            rates: Mutex::default(),
            stored: Mutex::default(),
        }
    }

    /// The rate counter of `scope` as its concrete type (tests drive the script directly).
    pub fn rate_cells(&self, scope: CounterScope<'_>) -> Arc<RedisRate> {
        self.rates
            .lock()
            .entry(scope_hash(scope))
            .or_insert_with(|| {
                Arc::new(RedisRate {
                    link: self.link.clone(),
                    scope: scope_hash(scope),
                    outage: self.outage.clone(),
                    local: MemoryRate::default(),
                })
            })
            .clone()
    }
}

impl CounterStore for RedisCounters {
    fn rate(&self, scope: CounterScope<'_>) -> Arc<dyn RateCounter> {
        self.rate_cells(scope)
    }

    fn quota(&self, scope: CounterScope<'_>) -> Arc<dyn QuotaCounter> {
        let hash = scope_hash(scope);
        let mut quotas = self.quotas.lock();
        if let Some(quota) = quotas.get(&hash) {
            return quota.clone();
        }
        let quota = Arc::new(RedisQuota {
            link: self.link.clone(),
            scope: hash.clone(),
            policy_id: scope.policy_id.to_owned(),
            deltas: Mutex::default(),
            stored: Mutex::default(),
            outage: self.outage.clone(),
            local: MemoryQuota::new(scope.policy_id),
        });
        if let Some(rows) = self.stored.lock().remove(scope.policy_id) {
            quota.seed(rows);
        }
        quotas.insert(hash, quota.clone());
        quota
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

    #[test]
    fn while_redis_is_down_each_replica_counts_its_share() {
        let outage = Outage {
            on_outage: OnOutage::Local,
            live_replicas: Arc::new(AtomicUsize::new(3)),
        };
        // 6 per hour in bursts of 6: each of three replicas gets a burst of 2, one per 30 min.
        let gcra = Gcra {
            interval_ns: 600_000_000_000,
            tolerance_ns: 3_600_000_000_000,
        };
        let local = MemoryRate::default();
        let key = crate::state::SubjectKey::of_text("client:alice");
        let admitted = (0..10)
            .filter(|_| local.take_now(key, outage.rate(gcra), 0, true).is_ok())
            .count();
        assert_eq!(admitted, 2);
        assert_eq!(outage.quota(10), 4, "10 calls shared by 3, rounded up");
        outage.live_replicas.store(0, Ordering::Relaxed);
        assert_eq!(outage.quota(10), 10, "at least this replica is live");
    }
}
