//! The overview's charts: requests per hour over the last day, allowed against refused, drawn
//! on the server as SVG with presentation attributes only (the CSP allows no inline style), and
//! the busiest clients and tools. Read from the audit trail's latest events.

use maud::{Markup, html};
use serde_json::Value;
use std::collections::BTreeMap;

pub const HOURS: i64 = 24;
const HOUR_MS: i64 = 60 * 60 * 1000;
const WIDTH: i64 = 720;
const HEIGHT: i64 = 160;

/// Per hour (oldest first): (allowed, refused, guardrail findings).
pub fn hourly(events: &[Value], now_ms: i64) -> Vec<(u64, u64, u64)> {
    let start = now_ms - HOURS * HOUR_MS;
    let mut buckets = vec![(0, 0, 0); HOURS as usize];
    for event in events {
        let Some(ts) = event.get("ts_ms").and_then(Value::as_i64) else {
            continue;
        };
        let Ok(slot) = usize::try_from((ts - start) / HOUR_MS) else {
            continue;
        };
        let Some(bucket) = buckets.get_mut(slot) else {
            continue;
        };
        match event.get("decision").and_then(Value::as_str) {
            Some("allow") => bucket.0 += 1,
            _ => bucket.1 += 1,
        }
        let rule = event
            .get("rule")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if rule.starts_with("guardrail:") {
            bucket.2 += 1;
        }
    }
    buckets
}

/// The bars: allowed (blue) under refused (red), one per hour, with a text alternative.
pub fn traffic(buckets: &[(u64, u64, u64)]) -> Markup {
    let peak = buckets.iter().map(|b| b.0 + b.1).max().unwrap_or(0).max(1);
    let slot = WIDTH / HOURS;
    let scale =
        |n: u64| i64::try_from(n).unwrap_or(0) * (HEIGHT - 20) / i64::try_from(peak).unwrap_or(1);
    let allowed: u64 = buckets.iter().map(|b| b.0).sum();
    let refused: u64 = buckets.iter().map(|b| b.1).sum();
    let findings: u64 = buckets.iter().map(|b| b.2).sum();
    let summary = format!(
        "Requests per hour over the last {HOURS} hours: {allowed} allowed, {refused} refused, {findings} guardrail findings; the busiest hour had {peak}."
    );
    html! {
        figure {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT + 20) } role="img" aria-label=(summary) width="100%" {
                title { (summary) }
                line x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) stroke="#8a94a3" {}
                @for (i, (ok, no, _)) in buckets.iter().enumerate() {
                    @let x = i64::try_from(i).unwrap_or(0) * slot + 2;
                    @let ok_h = scale(*ok);
                    @let no_h = scale(*no);
                    rect x=(x) y=(HEIGHT - ok_h) width=(slot - 4) height=(ok_h) fill="#1f4fbf" {}
                    rect x=(x) y=(HEIGHT - ok_h - no_h) width=(slot - 4) height=(no_h) fill="#a01818" {}
                }
                text x="0" y=(HEIGHT + 16) font-size="12" fill="#4b5563" { (HOURS) " h ago" }
                text x=(WIDTH) y=(HEIGHT + 16) font-size="12" fill="#4b5563" text-anchor="end" { "now" }
            }
            figcaption.muted { (summary) " Blue: allowed; red: refused." }
        }
    }
}

/// The `n` most frequent values of `key` among `events`, most frequent first.
pub fn top(events: &[Value], key: &str, n: usize) -> Vec<(String, u64)> {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for event in events {
        if let Some(value) = event
            .get(key)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
        {
            *counts.entry(value).or_default() += 1;
        }
    }
    let mut ranked: Vec<(String, u64)> =
        counts.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(n);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_fall_into_their_hour_and_old_ones_are_left_out() {
        let now = 100 * HOUR_MS;
        let events = [
            json!({"ts_ms": now - 1, "decision": "allow"}),
            json!({"ts_ms": now - 2, "decision": "deny", "rule": "guardrail:no-secrets"}),
            json!({"ts_ms": now - 23 * HOUR_MS - 1, "decision": "deny"}),
            json!({"ts_ms": now - 25 * HOUR_MS, "decision": "allow"}),
        ];
        let buckets = hourly(&events, now);
        assert_eq!(buckets.len(), 24);
        assert_eq!(buckets[23], (1, 1, 1));
        assert_eq!(buckets[0], (0, 1, 0));
        assert_eq!(buckets.iter().map(|b| b.0 + b.1).sum::<u64>(), 3);
    }

    #[test]
    fn top_ranks_by_count_then_name() {
        let events = [
            json!({"client": "b"}),
            json!({"client": "a"}),
            json!({"client": "b"}),
            json!({"client": ""}),
            json!({}),
        ];
        assert_eq!(
            top(&events, "client", 5),
            vec![("b".into(), 2), ("a".into(), 1)]
        );
    }
}
