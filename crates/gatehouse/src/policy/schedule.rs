//! Schedules: weekdays and a local time range in an IANA time zone, plus optional validity
//! dates. "Mon–Fri 09:00–18:00 Europe/Paris" is judged on the Paris wall clock, so it stays
//! 09:00–18:00 local across DST changes. A range whose end is not after its start crosses
//! midnight (22:00–06:00) and belongs to the day it starts on.

use jiff::{
    civil::{Date, Time, Weekday},
    tz::TimeZone,
};
use serde::{Deserialize, Serialize};

use super::{Facts, Policy, Refusal};
use gatehouse_model::policy_kind::PolicyKind;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    pub time_zone: String,
    /// `mon` … `sun`; empty means every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// `HH:MM`, default 00:00.
    #[serde(default)]
    pub from: Option<String>,
    /// `HH:MM`, default 24:00 (end of day).
    #[serde(default)]
    pub until: Option<String>,
    /// First and last local dates (inclusive) on which access is possible.
    #[serde(default)]
    pub valid_from: Option<Date>,
    #[serde(default)]
    pub valid_until: Option<Date>,
}

#[derive(Debug)]
pub struct Schedule {
    zone: TimeZone,
    days: [bool; 7],
    from: Time,
    /// `None` = end of day.
    until: Option<Time>,
    valid_from: Option<Date>,
    valid_until: Option<Date>,
}

fn weekday(name: &str) -> Option<Weekday> {
    Some(match name.to_ascii_lowercase().get(..3)? {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    })
}

fn time(text: &str) -> Result<Time, String> {
    let (h, m) = text
        .split_once(':')
        .ok_or_else(|| format!("time {text:?} must be HH:MM"))?;
    let h: i8 = h
        .parse()
        .map_err(|_| format!("time {text:?} must be HH:MM"))?;
    let m: i8 = m
        .parse()
        .map_err(|_| format!("time {text:?} must be HH:MM"))?;
    Time::new(h, m, 0, 0).map_err(|_| format!("time {text:?} is out of range"))
}

impl Schedule {
    pub fn new(spec: &ScheduleSpec) -> Result<Self, String> {
        let zone = TimeZone::get(&spec.time_zone)
            .map_err(|_| format!("unknown time zone {:?}", spec.time_zone))?;
        let mut days = [spec.days.is_empty(); 7];
        for name in &spec.days {
            let day =
                weekday(name).ok_or_else(|| format!("unknown day {name:?} (use mon … sun)"))?;
            days[day.to_monday_zero_offset() as usize] = true;
        }
        let from = spec
            .from
            .as_deref()
            .map(time)
            .transpose()?
            .unwrap_or(Time::midnight());
        let until = match spec.until.as_deref() {
            None | Some("24:00") => None,
            Some(text) => Some(time(text)?),
        };
        if let (Some(a), Some(b)) = (spec.valid_from, spec.valid_until)
            && b < a
        {
            return Err("valid_until is before valid_from".into());
        }
        Ok(Self {
            zone,
            days,
            from,
            until,
            valid_from: spec.valid_from,
            valid_until: spec.valid_until,
        })
    }

    fn day_on(&self, date: Date) -> bool {
        self.days[date.weekday().to_monday_zero_offset() as usize]
    }

    pub fn is_open(&self, now: jiff::Timestamp) -> bool {
        let local = now.to_zoned_datetime(self.zone.clone());
        let (date, t) = (local.date(), local.time());
        if self.valid_from.is_some_and(|d| date < d) || self.valid_until.is_some_and(|d| date > d) {
            return false;
        }
        match self.until {
            None => self.day_on(date) && t >= self.from,
            Some(until) if until > self.from => self.day_on(date) && t >= self.from && t < until,
            Some(until) => {
                // Crosses midnight: the evening part on a listed day, the morning part after one.
                let evening = self.day_on(date) && t >= self.from;
                let morning = t < until && date.yesterday().is_ok_and(|d| self.day_on(d));
                evening || morning
            }
        }
    }
}

impl Policy for Schedule {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Schedule
    }

    fn check(&self, facts: &Facts<'_>) -> Result<(), Refusal> {
        if self.is_open(facts.now) {
            Ok(())
        } else {
            Err(Refusal::new("outside the allowed schedule"))
        }
    }

    fn peek(&self, facts: &Facts<'_>) -> Result<(), Refusal> {
        self.check(facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(days: &[&str], from: &str, until: &str, zone: &str) -> Schedule {
        Schedule::new(&ScheduleSpec {
            time_zone: zone.into(),
            days: days.iter().map(|d| d.to_string()).collect(),
            from: Some(from.into()),
            until: Some(until.into()),
            valid_from: None,
            valid_until: None,
        })
        .unwrap()
    }

    fn open(s: &Schedule, at: &str) -> bool {
        s.is_open(at.parse().unwrap())
    }

    #[test]
    fn office_hours_in_paris_follow_the_wall_clock_across_dst() {
        let s = schedule(
            &["mon", "tue", "wed", "thu", "fri"],
            "09:00",
            "18:00",
            "Europe/Paris",
        );
        // Winter (UTC+1): 08:30 UTC is 09:30 in Paris.
        assert!(open(&s, "2026-01-14T08:30:00Z"));
        assert!(!open(&s, "2026-01-14T07:30:00Z"));
        assert!(!open(&s, "2026-01-14T17:00:00Z"), "18:00 Paris is closed");
        // Summer (UTC+2): 07:30 UTC is 09:30 in Paris.
        assert!(open(&s, "2026-07-15T07:30:00Z"));
        assert!(!open(&s, "2026-07-15T16:30:00Z"));
        // Monday after the spring change (2026-03-30): still 09:00 local = 07:00 UTC.
        assert!(!open(&s, "2026-03-30T06:59:00Z"));
        assert!(open(&s, "2026-03-30T07:00:00Z"));
        // Saturday.
        assert!(!open(&s, "2026-01-17T10:00:00Z"));
    }

    #[test]
    fn night_windows_cross_midnight_and_belong_to_their_start_day() {
        let s = schedule(&["fri"], "22:00", "06:00", "UTC");
        assert!(open(&s, "2026-11-27T23:00:00Z"), "Friday 23:00");
        assert!(
            open(&s, "2026-11-28T05:59:00Z"),
            "Saturday 05:59 continues Friday's night"
        );
        assert!(!open(&s, "2026-11-28T06:00:00Z"));
        assert!(
            !open(&s, "2026-11-28T23:00:00Z"),
            "Saturday night is not listed"
        );
        assert!(
            !open(&s, "2026-11-27T05:00:00Z"),
            "Friday morning belongs to Thursday's night"
        );
    }

    #[test]
    fn validity_dates_are_local_and_inclusive() {
        let s = Schedule::new(&ScheduleSpec {
            time_zone: "Asia/Tokyo".into(),
            days: vec![],
            from: None,
            until: None,
            valid_from: Some("2026-12-01".parse().unwrap()),
            valid_until: Some("2026-12-31".parse().unwrap()),
        })
        .unwrap();
        assert!(
            !open(&s, "2026-11-30T14:59:00Z"),
            "23:59 on Nov 30 in Tokyo"
        );
        assert!(open(&s, "2026-11-30T15:00:00Z"), "00:00 on Dec 1 in Tokyo");
        assert!(open(&s, "2026-12-31T14:59:00Z"));
        assert!(!open(&s, "2026-12-31T15:00:00Z"));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let spec = |zone: &str, day: &str, from: &str| ScheduleSpec {
            time_zone: zone.into(),
            days: vec![day.into()],
            from: Some(from.into()),
            until: None,
            valid_from: None,
            valid_until: None,
        };
        assert!(
            Schedule::new(&spec("Nowhere/City", "mon", "09:00"))
                .unwrap_err()
                .contains("time zone")
        );
        assert!(
            Schedule::new(&spec("UTC", "someday", "09:00"))
                .unwrap_err()
                .contains("unknown day")
        );
        assert!(
            Schedule::new(&spec("UTC", "mon", "25:00"))
                .unwrap_err()
                .contains("out of range")
        );
    }
}
