//! The stateful seam with a backend that answers after a round trip: `enforce` waits for it,
//! refunds through it, and `policy explain` does not wait for it.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use super::{CompiledPolicy, PolicyRuntime, Refusal, compile, enforce, tests_support::facts_at};
use crate::state::{
    Charge, CounterScope, CounterStore, Denied, Gcra, QuotaCounter, RateCounter, StateFuture,
    Subject, memory::MemoryCounters,
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
    ) -> StateFuture<'_, Result<(), Denied>> {
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
        window: (i64, i64),
        limit: u64,
        charge: bool,
    ) -> StateFuture<'_, Charge> {
        self.later(
            self.inner
                .charge(subject, window, limit, charge)
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

/// A backend that cannot be reached, for the counters of one kind: the other kind is kept in
/// memory, so a refusal's refunds can be watched.
#[derive(Debug)]
struct Unreachable {
    inner: MemoryCounters,
    rates_down: bool,
}

#[derive(Debug)]
struct Down;

impl RateCounter for Down {
    fn take(
        &self,
        _: Subject<'_>,
        _: Gcra,
        _: i128,
        _: bool,
    ) -> StateFuture<'_, Result<(), Denied>> {
        StateFuture::pending(async { Err(Denied::Unavailable) })
    }

    fn give_back(&self, _: Subject<'_>, _: Gcra) -> StateFuture<'_, ()> {
        StateFuture::ready(())
    }

    fn len(&self) -> usize {
        0
    }
}

impl QuotaCounter for Down {
    fn charge(&self, _: Subject<'_>, _: (i64, i64), _: u64, _: bool) -> StateFuture<'_, Charge> {
        StateFuture::pending(async { Charge::Unavailable })
    }

    fn refund(&self, _: Subject<'_>, _: i64) -> StateFuture<'_, ()> {
        StateFuture::ready(())
    }

    fn seed(&self, _: Vec<QuotaUsage>) {}

    fn drain_deltas(&self) -> Vec<QuotaDelta> {
        Vec::new()
    }

    fn len(&self) -> usize {
        0
    }
}

impl CounterStore for Unreachable {
    fn rate(&self, scope: CounterScope<'_>) -> Arc<dyn RateCounter> {
        if self.rates_down {
            Arc::new(Down)
        } else {
            self.inner.rate(scope)
        }
    }

    fn quota(&self, scope: CounterScope<'_>) -> Arc<dyn QuotaCounter> {
        if self.rates_down {
            self.inner.quota(scope)
        } else {
            Arc::new(Down)
        }
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

#[tokio::test]
async fn an_unreachable_rate_counter_refuses_as_state_unavailable_and_refunds_the_quota() {
    let runtime = PolicyRuntime::with_counters(Arc::new(Unreachable {
        inner: MemoryCounters::default(),
        rates_down: true,
    }));
    let policies = quota_then_rate(&runtime);
    let facts = facts_at(1_000_000);
    let denial = enforce(&policies, &facts).await.unwrap_err();
    assert!(denial.unavailable, "{denial:?}");
    assert_eq!(denial.retry_after, None, "no wait is known");
    assert_eq!(
        crate::error::GatewayError::from(denial),
        crate::error::GatewayError::StateUnavailable
    );
    let deltas = runtime.take_quota_changes();
    assert!(
        deltas.iter().all(|d| d.delta == 0),
        "the quota charged before the refusal is given back: {deltas:?}"
    );
}

#[tokio::test]
async fn an_unreachable_quota_counter_refuses_as_state_unavailable() {
    let runtime = PolicyRuntime::with_counters(Arc::new(Unreachable {
        inner: MemoryCounters::default(),
        rates_down: false,
    }));
    let policies = quota_then_rate(&runtime);
    let denial = enforce(&policies, &facts_at(1_000_000)).await.unwrap_err();
    assert_eq!(denial.kind, PolicyKind::Quota);
    assert_eq!(
        crate::error::GatewayError::from(denial),
        crate::error::GatewayError::StateUnavailable
    );
}
