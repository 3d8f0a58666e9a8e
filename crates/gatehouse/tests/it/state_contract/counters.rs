//! Rate limits and quotas: a burst then a wait, a cell given back, a quota counted to its
//! limit, a refund, a fresh window, and the stored usage as the starting count.

use gatehouse::state::{Charge, CounterScope, CounterSubject, Denied, Gcra, Subject, SubjectKey};
use gatehouse_model::records::QuotaUsage;
use std::time::Duration;

use super::each_backend;

#[derive(Debug)]
struct Named(&'static str);

impl CounterSubject for Named {
    fn key(&self) -> SubjectKey {
        SubjectKey::of_text(self.0)
    }

    fn text(&self) -> String {
        self.0.to_owned()
    }
}

const HOUR_NS: i128 = 3_600_000_000_000;

fn now_ns() -> i128 {
    jiff::Timestamp::now().as_nanosecond()
}

#[tokio::test]
async fn a_rate_limit_admits_its_burst_then_waits_and_takes_back_a_given_cell() {
    each_backend(|state| async move {
        let rate = state.counters.rate(CounterScope {
            policy_id: "hourly",
            spec: "{}",
        });
        // One an hour, bursts of three.
        let gcra = Gcra {
            interval_ns: HOUR_NS,
            tolerance_ns: 3 * HOUR_NS,
        };
        let alice = Named("client:alice");
        for n in 0..3 {
            assert_eq!(
                rate.take(Subject::new(&alice), gcra, now_ns(), true).await,
                Ok(()),
                "burst request {n}"
            );
        }
        match rate.take(Subject::new(&alice), gcra, now_ns(), true).await {
            Err(Denied::Wait(wait)) => assert!(wait > Duration::from_secs(3_500), "{wait:?}"),
            other => panic!("the fourth: {other:?}"),
        }
        assert_eq!(
            rate.take(Subject::new(&Named("client:bob")), gcra, now_ns(), false)
                .await,
            Ok(()),
            "another subject, only looked at"
        );
        rate.give_back(Subject::new(&alice), gcra).await;
        assert_eq!(
            rate.take(Subject::new(&alice), gcra, now_ns(), true).await,
            Ok(()),
            "the cell given back"
        );
        assert!(
            rate.take(Subject::new(&alice), gcra, now_ns(), true)
                .await
                .is_err()
        );
    })
    .await;
}

#[tokio::test]
async fn a_quota_counts_to_its_limit_refunds_and_starts_each_window_afresh() {
    each_backend(|state| async move {
        state.counters.preload(vec![QuotaUsage {
            policy_id: "daily".into(),
            subject: "client:alice".into(),
            window_start: 1_000,
            used: 1,
        }]);
        let quota = state.counters.quota(CounterScope {
            policy_id: "daily",
            spec: "{}",
        });
        let alice = Subject::new(&Named("client:alice"));
        let far = i64::MAX / 4;
        let window = (1_000, far);
        assert_eq!(quota.charge(alice, window, 3, true).await, Charge::Counted);
        assert_eq!(quota.charge(alice, window, 3, false).await, Charge::Counted);
        assert_eq!(quota.charge(alice, window, 3, true).await, Charge::Counted);
        assert_eq!(
            quota.charge(alice, window, 3, true).await,
            Charge::Exhausted,
            "1 stored + 2 counted"
        );
        quota.refund(alice, 1_000).await;
        assert_eq!(
            quota.charge(alice, window, 3, true).await,
            Charge::Counted,
            "the refunded call"
        );
        // Drained before the window moves on (a replica drains every few seconds).
        let deltas = state.counters.drain_quota_deltas();
        let delta: i64 = deltas.iter().map(|d| d.delta).sum();
        assert_eq!(delta, 2, "counted less refunded, for the store: {deltas:?}");
        assert_eq!(
            quota.charge(alice, (2_000, far), 3, true).await,
            Charge::Counted,
            "a new window"
        );
    })
    .await;
}
