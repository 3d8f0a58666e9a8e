//! Volume quotas: N calls per calendar day, week (Monday first) or month in a time zone.
//!
//! Windows are computed in civil time of the configured zone, so "per day in Europe/Paris"
//! resets at Paris midnight, including on the 23- and 25-hour days of DST changes. Counts are
//! a [`QuotaCounter`] keyed by subject and window start; what changed is added to the store
//! as deltas and the stored usage is reloaded at start, so a restart does not reset a quota.

use jiff::{Timestamp, ToSpan, ZonedDateTime, tz::TimeZone};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::{sync::Arc, time::Duration};

use super::PerSubject;
use super::{Facts, Per, Refusal, StatefulPolicy};
use crate::state::{Charge, QuotaCounter, StateFuture, Subject};
use gatehouse_model::policy_kind::PolicyKind;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    Day,
    Week,
    Month,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QuotaSpec {
    /// Calls allowed per window.
    pub limit: u64,
    pub window: Window,
    /// IANA zone the calendar is read in (default UTC).
    #[serde(default = "utc")]
    pub time_zone: String,
    #[serde(default)]
    pub per: Per,
}

fn utc() -> String {
    "UTC".into()
}

#[derive(Debug)]
pub struct Quota {
    limit: u64,
    window: Window,
    zone: TimeZone,
    per: Per,
    counters: Arc<dyn QuotaCounter>,
    /// The window computed last, `[start, end)` in epoch milliseconds: nearly every call falls
    /// in it, and civil-time arithmetic is the costly part of a check.
    current: RwLock<(i64, i64)>,
}

impl Quota {
    pub fn new(spec: &QuotaSpec, counters: Arc<dyn QuotaCounter>) -> Result<Self, String> {
        let zone = TimeZone::get(&spec.time_zone)
            .map_err(|_| format!("unknown time zone {:?}", spec.time_zone))?;
        Ok(Self {
            limit: spec.limit,
            window: spec.window,
            zone,
            per: spec.per,
            counters,
            current: RwLock::new((0, 0)),
        })
    }

    /// [`Quota::window_bounds`], from the cached window when `now` falls in it.
    fn window(&self, now: Timestamp) -> Result<(i64, i64), Refusal> {
        let ms = now.as_millisecond();
        let cached = *self.current.read();
        if cached.0 <= ms && ms < cached.1 {
            return Ok(cached);
        }
        let bounds = self.window_bounds(now)?;
        *self.current.write() = bounds;
        Ok(bounds)
    }

    /// `[start, end)` of the calendar window holding `now`, as epoch milliseconds.
    pub fn window_bounds(&self, now: Timestamp) -> Result<(i64, i64), Refusal> {
        let broken = |_| Refusal::new("quota window could not be computed");
        let local = now.to_zoned_datetime(self.zone.clone());
        let day = local.start_of_day().map_err(broken)?;
        let (start, end): (ZonedDateTime, ZonedDateTime) = match self.window {
            Window::Day => {
                let end = day.checked_add(1.day()).map_err(broken)?;
                (day, end)
            }
            Window::Week => {
                let back = i64::from(day.weekday().to_monday_zero_offset());
                let start = day.checked_sub(back.days()).map_err(broken)?;
                let end = start.checked_add(1.week()).map_err(broken)?;
                (start, end)
            }
            Window::Month => {
                let start = day.first_of_month().map_err(broken)?;
                let end = start.checked_add(1.month()).map_err(broken)?;
                (start, end)
            }
        };
        Ok((
            start.timestamp().as_millisecond(),
            end.timestamp().as_millisecond(),
        ))
    }

    fn decide<'a>(
        &'a self,
        facts: &'a Facts<'a>,
        charge: bool,
    ) -> StateFuture<'a, Result<(), Refusal>> {
        if facts.tool.is_none() {
            // Quotas count tool calls; other requests pass.
            return StateFuture::ready(Ok(()));
        }
        let (start, end) = match self.window(facts.now) {
            Ok(bounds) => bounds,
            Err(refusal) => return StateFuture::ready(Err(refusal)),
        };
        self.counters
            .charge(
                Subject::new(&PerSubject::of(self.per, facts)),
                (start, end),
                self.limit,
                charge,
            )
            .map(move |charged| match charged {
                Charge::Counted => Ok(()),
                Charge::Unavailable => Err(Refusal::unavailable()),
                Charge::Exhausted => {
                    let wait = u64::try_from(end - facts.now.as_millisecond()).unwrap_or(0);
                    Err(Refusal {
                        retry_after: Some(Duration::from_millis(wait)),
                        ..Refusal::new(
                            format!(
                                "quota of {} calls per {:?} used up",
                                self.limit, self.window
                            )
                            .to_lowercase(),
                        )
                    })
                }
            })
    }
}

impl StatefulPolicy for Quota {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Quota
    }

    fn charge<'a>(&'a self, facts: &'a Facts<'a>) -> StateFuture<'a, Result<(), Refusal>> {
        self.decide(facts, true)
    }

    fn refund<'a>(&'a self, facts: &'a Facts<'a>) -> StateFuture<'a, ()> {
        // The window of `facts.now` is the one `charge` counted in, whatever the clock says now.
        match (facts.tool, self.window(facts.now)) {
            (Some(_), Ok((start, _))) => self
                .counters
                .refund(Subject::new(&PerSubject::of(self.per, facts)), start),
            _ => StateFuture::ready(()),
        }
    }

    fn peek<'a>(&'a self, facts: &'a Facts<'a>) -> StateFuture<'a, Result<(), Refusal>> {
        self.decide(facts, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        policy::tests_support::{check, facts_at},
        state::memory::MemoryQuota,
    };
    use gatehouse_model::records::QuotaUsage;

    fn quota(limit: u64, window: Window, zone: &str) -> Quota {
        let spec = QuotaSpec {
            limit,
            window,
            time_zone: zone.into(),
            per: Per::Client,
        };
        Quota::new(&spec, Arc::new(MemoryQuota::new("q"))).unwrap()
    }

    fn at(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn daily_quota_resets_at_local_midnight() {
        let q = quota(2, Window::Day, "Europe/Paris");
        // 22:30 UTC on 2026-06-10 is 00:30 on the 11th in Paris (UTC+2).
        assert!(check(&q, &facts_at(at("2026-06-10T21:00:00Z"))).is_ok());
        assert!(check(&q, &facts_at(at("2026-06-10T21:30:00Z"))).is_ok());
        let refused = check(&q, &facts_at(at("2026-06-10T21:45:00Z"))).unwrap_err();
        assert_eq!(refused.retry_after, Some(Duration::from_secs(15 * 60)));
        assert!(
            check(&q, &facts_at(at("2026-06-10T22:30:00Z"))).is_ok(),
            "new Paris day"
        );
    }

    #[test]
    fn windows_are_dst_correct() {
        let q = quota(1, Window::Day, "Europe/Paris");
        // 2026-03-29 is 23 hours long in Paris (clocks go forward).
        let (start, end) = q
            .window_bounds(at("2026-03-29T12:00:00Z").parse_ts())
            .unwrap();
        assert_eq!(end - start, 23 * 3_600_000);
        let (start, end) = q
            .window_bounds(at("2026-10-25T12:00:00Z").parse_ts())
            .unwrap();
        assert_eq!(end - start, 25 * 3_600_000);
    }

    #[test]
    fn weeks_start_monday_and_months_on_the_first() {
        let week = quota(1, Window::Week, "UTC");
        // 2026-11-25 is a Wednesday.
        let (start, end) = week
            .window_bounds(at("2026-11-25T10:00:00Z").parse_ts())
            .unwrap();
        assert_eq!(start, at("2026-11-23T00:00:00Z"));
        assert_eq!(end, at("2026-11-30T00:00:00Z"));
        let month = quota(1, Window::Month, "America/New_York");
        let (start, end) = month
            .window_bounds(at("2026-11-25T10:00:00Z").parse_ts())
            .unwrap();
        assert_eq!(start, at("2026-11-01T04:00:00Z"), "midnight EDT");
        assert_eq!(end, at("2026-12-01T05:00:00Z"), "midnight EST");
    }

    #[test]
    fn counts_survive_through_the_store_rows() {
        let first = quota(3, Window::Day, "UTC");
        let now = at("2026-11-25T10:00:00Z");
        check(&first, &facts_at(now)).unwrap();
        check(&first, &facts_at(now)).unwrap();
        let deltas = first.counters.drain_deltas();
        assert_eq!(deltas.len(), 1);
        assert_eq!(deltas[0].delta, 2);
        // Added to an empty store, the deltas are the stored usage.
        let rows = deltas
            .into_iter()
            .map(|d| QuotaUsage {
                policy_id: d.policy_id,
                subject: d.subject,
                window_start: d.window_start,
                used: d.delta,
            })
            .collect();
        let restarted = quota(3, Window::Day, "UTC");
        restarted.counters.seed(rows);
        assert!(check(&restarted, &facts_at(now)).is_ok());
        assert!(
            check(&restarted, &facts_at(now)).is_err(),
            "3 of 3 used across the restart"
        );
    }

    #[test]
    fn subjects_of_past_windows_are_forgotten_once_written_back() {
        let spec = QuotaSpec {
            limit: 5,
            window: Window::Day,
            time_zone: "UTC".into(),
            per: Per::Ip,
        };
        let q = Quota::new(&spec, Arc::new(MemoryQuota::new("q"))).unwrap();
        let from = |ms: i64, ip: u32| {
            let mut facts = facts_at(ms);
            facts.ip = std::net::IpAddr::from(ip.to_be_bytes());
            facts
        };
        let monday = at("2026-11-23T10:00:00Z");
        for ip in 0..5_000u32 {
            check(&q, &from(monday, ip)).unwrap();
        }
        assert_eq!(q.counters.drain_deltas().len(), 5_000);
        // The next day, those counts are spent windows already written back.
        let tuesday = at("2026-11-24T10:00:00Z");
        for ip in 0..5_000u32 {
            check(&q, &from(tuesday, u32::MAX - ip)).unwrap();
        }
        assert!(
            q.counters.len() <= 5_500,
            "{} subjects kept: 5 000 of yesterday and 5 000 of today",
            q.counters.len()
        );
        // Today's counts are whole.
        let today = from(tuesday, u32::MAX);
        for _ in 0..4 {
            check(&q, &today).unwrap();
        }
        assert!(check(&q, &today).is_err(), "5 of 5 used today");
    }

    #[test]
    fn the_window_is_recomputed_when_time_leaves_it() {
        let q = quota(1, Window::Day, "Europe/Paris");
        assert!(check(&q, &facts_at(at("2026-06-10T21:00:00Z"))).is_ok());
        assert!(check(&q, &facts_at(at("2026-06-10T21:59:59Z"))).is_err());
        assert!(
            check(&q, &facts_at(at("2026-06-10T22:00:00Z"))).is_ok(),
            "Paris midnight"
        );
        assert_eq!(
            *q.current.read(),
            (at("2026-06-10T22:00:00Z"), at("2026-06-11T22:00:00Z"))
        );
    }

    #[test]
    fn unknown_zones_are_refused() {
        let spec = QuotaSpec {
            limit: 1,
            window: Window::Day,
            time_zone: "Mars/Olympus".into(),
            per: Per::Client,
        };
        assert!(Quota::new(&spec, Arc::new(MemoryQuota::new("q"))).is_err());
    }

    trait ParseTs {
        fn parse_ts(self) -> Timestamp;
    }
    impl ParseTs for i64 {
        fn parse_ts(self) -> Timestamp {
            Timestamp::from_millisecond(self).unwrap()
        }
    }
}
