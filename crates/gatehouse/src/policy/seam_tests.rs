//! The stateful seam with a backend that answers after a round trip: `enforce` waits for it,
//! refunds through it, and `policy explain` does not wait for it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use super::{CompiledPolicy, PolicyRuntime, Refusal, compile, enforce, tests_support::facts_at};
use crate::state::{
    CounterScope, CounterStore, Gcra, QuotaCounter, RateCounter, StateFuture, Subject,
    memory::MemoryCounters,
};
use gatehouse_model::{
    policy_kind::PolicyKind,
    records::{PolicyRecord, QuotaDelta, QuotaUsage},
};

/// Memory counters whose every answer arrives after a yield to the scheduler, as a remote
/// backend's would; counts the round trips.
#[derive(Debug, Default)]
struct RoundTrips {
    inner: MemoryCounters,
    trips: Arc<AtomicUsize>,
}

#[derive(Debug)]
struct Remote<C: ?Sized> {
    inner: Arc<C>,
    trips: Arc<AtomicUsize>,
}

impl<C: ?Sized> Remote<C> {
    fn later<'a, T: Send + 'a>(&'a self, answer: Option<T>) -> StateFuture<'a, T> {
        self.trips.fetch_add(1, Ordering::Relaxed);
        StateFuture::pending(async move {
            tokio::task::yield_now().await;
            answer.expect("the memory counters answer at once")
        })
    }
}

impl RateCounter for Remote<dyn RateCounter> {
    fn take(
        &self,
        subject: Subject<'_>,
        gcra: Gcra,
        now_ns: i128,
        charge: bool,
    ) -> StateFuture<'_, Result<(), Duration>> {
        self.later(
            self.inner
                .take(subject, gcra, now_ns, charge)
                .now_or_never(),
        )
    }

    fn give_back(&self, subject: Subject<'_>, gcra: Gcra) -> StateFuture<'_, ()> {
        self.later(self.inner.give_back(subject, gcra).now_or_never())
    }

    fn len(&self) -> usize {
        self.inner.len()
    }
}

impl QuotaCounter for Remote<dyn QuotaCounter> {
    fn charge(
        &self,
        subject: Subject<'_>,
        window_start: i64,
        limit: u64,
        charge: bool,
    ) -> StateFuture<'_, bool> {
        self.later(
            self.inner
                .charge(subject, window_start, limit, charge)
                .now_or_never(),
        )
    }

    fn refund(&self, subject: Subject<'_>, window_start: i64) -> StateFuture<'_, ()> {
        self.later(self.inner.refund(subject, window_start).now_or_never())
    }

    fn seed(&self, rows: Vec<QuotaUsage>) {
        self.inner.seed(rows);
    }

    fn drain_deltas(&self) -> Vec<QuotaDelta> {
        self.inner.drain_deltas()
    }

    fn len(&self) -> usize {
        self.inner.len()
    }
}

impl CounterStore for RoundTrips {
    fn rate(&self, scope: CounterScope<'_>) -> Arc<dyn RateCounter> {
        Arc::new(Remote {
            inner: self.inner.rate(scope),
            trips: self.trips.clone(),
        })
    }

    fn quota(&self, scope: CounterScope<'_>) -> Arc<dyn QuotaCounter> {
        Arc::new(Remote {
            inner: self.inner.quota(scope),
            trips: self.trips.clone(),
        })
    }

    fn preload(&self, usage: Vec<QuotaUsage>) {
        self.inner.preload(usage);
    }

    fn drain_quota_deltas(&self) -> Vec<QuotaDelta> {
        self.inner.drain_quota_deltas()
    }

    fn len(&self) -> usize {
        self.inner.len()
    }
}

fn record(id: &str, kind: &str, spec: serde_json::Value) -> PolicyRecord {
    PolicyRecord {
        id: id.into(),
        kind: kind.into(),
        client: None,
        server: None,
        tools: None,
        spec,
        created_at: 0,
    }
}

fn quota_then_rate(runtime: &PolicyRuntime) -> Vec<Arc<CompiledPolicy>> {
    let quota = serde_json::json!({ "limit": 5, "window": "day" });
    let rate = serde_json::json!({ "requests": 1, "period": "1h" });
    vec![
        Arc::new(compile(&record("daily", "quota", quota), runtime).unwrap()),
        Arc::new(compile(&record("hourly", "rate_limit", rate), runtime).unwrap()),
    ]
}

#[tokio::test]
async fn enforce_waits_for_remote_counters_and_refunds_through_them() {
    let backend = Arc::new(RoundTrips::default());
    let trips = backend.trips.clone();
    let runtime = PolicyRuntime::with_counters(backend);
    let policies = quota_then_rate(&runtime);
    let facts = facts_at(1_000_000);
    enforce(&policies, &facts).await.unwrap();
    assert_eq!(trips.load(Ordering::Relaxed), 2, "one take per counter");
    let denial = enforce(&policies, &facts).await.unwrap_err();
    assert_eq!(denial.kind, PolicyKind::RateLimit);
    assert_eq!(
        trips.load(Ordering::Relaxed),
        5,
        "quota charged, rate refused, quota refunded"
    );
    let deltas = runtime.take_quota_changes();
    assert_eq!(deltas.len(), 1);
    assert_eq!(deltas[0].delta, 1, "only the call that passed is counted");
}

#[test]
fn explain_peeks_memory_counters_and_does_not_wait_for_remote_ones() {
    let facts = facts_at(1_000_000);
    let memory = PolicyRuntime::default();
    let rate = &quota_then_rate(&memory)[1].policy;
    assert_eq!(rate.peek_now(&facts), Some(Ok(())));
    let remote = PolicyRuntime::with_counters(Arc::new(RoundTrips::default()));
    let rate = &quota_then_rate(&remote)[1].policy;
    assert_eq!(rate.peek_now(&facts), None::<Result<(), Refusal>>);
}
