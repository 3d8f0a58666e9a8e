//! Rate limits: GCRA (the generic cell rate algorithm) per subject.
//!
//! Each subject keeps one number, its theoretical arrival time (TAT). A request is allowed
//! when it would not push the TAT more than `burst` emission intervals ahead of now; a refused
//! request learns exactly when the next one would pass (`Retry-After`). The arithmetic is
//! [`Gcra::step`]; the cells are a [`RateCounter`] (in memory, or a shared backend).

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::PerSubject;
use super::{Facts, Per, Refusal, StatefulPolicy};
use crate::state::{Denied, Gcra, RateCounter, StateFuture, Subject};
use gatehouse_model::policy_kind::PolicyKind;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Requests allowed per `period` in the long run.
    pub requests: u32,
    /// `1s`, `1m`, `1h`…
    pub period: String,
    /// Requests that may arrive at once (default 1: strictly spaced).
    #[serde(default = "one")]
    pub burst: u32,
    #[serde(default)]
    pub per: Per,
}

fn one() -> u32 {
    1
}

#[derive(Debug)]
pub struct RateLimit {
    gcra: Gcra,
    per: Per,
    cells: Arc<dyn RateCounter>,
    summary: String,
}

impl RateLimit {
    pub fn new(spec: &RateLimitSpec, cells: Arc<dyn RateCounter>) -> Result<Self, String> {
        let period = gatehouse_model::duration::parse(&spec.period)?;
        if spec.requests == 0 || period.is_zero() {
            return Err("requests and period must be positive".into());
        }
        if spec.burst == 0 {
            return Err("burst must be at least 1".into());
        }
        let interval_ns = (period.as_nanos() as i128 / i128::from(spec.requests)).max(1);
        Ok(Self {
            gcra: Gcra {
                interval_ns,
                tolerance_ns: interval_ns * i128::from(spec.burst),
            },
            per: spec.per,
            cells,
            summary: format!("{} per {}", spec.requests, spec.period),
        })
    }

    fn decide<'a>(
        &'a self,
        facts: &'a Facts<'a>,
        charge: bool,
    ) -> StateFuture<'a, Result<(), Refusal>> {
        let now = facts.now.as_nanosecond();
        self.cells
            .take(
                Subject::new(&PerSubject::of(self.per, facts)),
                self.gcra,
                now,
                charge,
            )
            .map(move |taken| {
                taken.map_err(|denied| match denied {
                    Denied::Wait(wait) => Refusal {
                        retry_after: Some(wait),
                        ..Refusal::new(format!("rate limit of {} exceeded", self.summary))
                    },
                    Denied::Unavailable => Refusal::unavailable(),
                })
            })
    }
}

impl StatefulPolicy for RateLimit {
    fn kind(&self) -> PolicyKind {
        PolicyKind::RateLimit
    }

    fn charge<'a>(&'a self, facts: &'a Facts<'a>) -> StateFuture<'a, Result<(), Refusal>> {
        self.decide(facts, true)
    }

    fn refund<'a>(&'a self, facts: &'a Facts<'a>) -> StateFuture<'a, ()> {
        self.cells
            .give_back(Subject::new(&PerSubject::of(self.per, facts)), self.gcra)
    }

    fn peek<'a>(&'a self, facts: &'a Facts<'a>) -> StateFuture<'a, Result<(), Refusal>> {
        self.decide(facts, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        policy::tests_support::{check, facts_at, peek},
        state::memory::MemoryRate,
    };
    use std::time::Duration;

    fn limit(requests: u32, period: &str, burst: u32) -> RateLimit {
        let spec = RateLimitSpec {
            requests,
            period: period.into(),
            burst,
            per: Per::Client,
        };
        RateLimit::new(&spec, Arc::new(MemoryRate::default())).unwrap()
    }

    #[test]
    fn burst_then_steady_rate() {
        let limit = limit(10, "1s", 3);
        let t0 = 1_000_000_000_000i64;
        for i in 0..3 {
            assert!(check(&limit, &facts_at(t0)).is_ok(), "burst request {i}");
        }
        let refused = check(&limit, &facts_at(t0)).unwrap_err();
        assert_eq!(refused.retry_after, Some(Duration::from_millis(100)));
        // One emission interval later exactly one more passes.
        assert!(check(&limit, &facts_at(t0 + 100)).is_ok());
        assert!(check(&limit, &facts_at(t0 + 100)).is_err());
        // Steady: one every 100 ms passes indefinitely.
        for step in 2..50 {
            assert!(
                check(&limit, &facts_at(t0 + 100 * step)).is_ok(),
                "step {step}"
            );
        }
    }

    #[test]
    fn idle_time_refills_only_up_to_the_burst() {
        let limit = limit(1, "1s", 2);
        let t0 = 5_000_000i64;
        assert!(check(&limit, &facts_at(t0)).is_ok());
        let later = t0 + 3_600_000;
        assert!(check(&limit, &facts_at(later)).is_ok());
        assert!(check(&limit, &facts_at(later)).is_ok());
        assert!(check(&limit, &facts_at(later)).is_err());
    }

    #[test]
    fn peek_and_refund_do_not_charge() {
        let limit = limit(1, "1m", 1);
        let t0 = 7_000_000i64;
        assert!(peek(&limit, &facts_at(t0)).is_ok());
        assert!(check(&limit, &facts_at(t0)).is_ok());
        assert!(peek(&limit, &facts_at(t0)).is_err());
        let facts = facts_at(t0);
        let _ = limit.refund(&facts).now_or_never();
        assert!(check(&limit, &facts_at(t0)).is_ok());
    }

    #[test]
    fn idle_subjects_are_forgotten() {
        let per_ip = RateLimit {
            per: Per::Ip,
            ..limit(1, "1s", 1)
        };
        let from = |ms: i64, ip: u32| {
            let mut facts = facts_at(ms);
            facts.ip = std::net::IpAddr::from(ip.to_be_bytes());
            facts
        };
        let t0 = 9_000_000i64;
        for ip in 0..10_000u32 {
            assert!(check(&per_ip, &from(t0, ip)).is_ok());
        }
        assert_eq!(per_ip.cells.len(), 10_000);
        // A second later all of them are idle, and new subjects sweep them away.
        let later = t0 + 1_000;
        assert!(check(&per_ip, &from(later, 0)).is_ok());
        for ip in 1..10_000u32 {
            assert!(check(&per_ip, &from(later, u32::MAX - ip)).is_ok());
        }
        assert!(
            per_ip.cells.len() <= 11_000,
            "{} subjects kept: 10 000 idle ones and 10 000 new",
            per_ip.cells.len()
        );
        // Subjects still within their interval are kept, and still limited.
        assert!(check(&per_ip, &from(later, 0)).is_err(), "still limited");
    }

    #[test]
    fn bad_specs_are_refused() {
        let spec = RateLimitSpec {
            requests: 0,
            period: "1s".into(),
            burst: 1,
            per: Per::Client,
        };
        assert!(RateLimit::new(&spec, Arc::new(MemoryRate::default())).is_err());
        let spec = RateLimitSpec {
            requests: 1,
            period: "soon".into(),
            burst: 1,
            per: Per::Client,
        };
        assert!(RateLimit::new(&spec, Arc::new(MemoryRate::default())).is_err());
    }
}
