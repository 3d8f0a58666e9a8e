//! Prometheus metrics, kept in the application state (no global recorder) and rendered in the
//! text exposition format at `/metrics`, which answers only the networks in `metrics.allow`
//! (loopback by default): server names and denial reasons are operational detail.

use parking_lot::Mutex;
use std::{collections::BTreeMap, fmt::Write as _, sync::Arc, time::Duration};

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    total: u64,
}

#[derive(Default)]
struct Inner {
    /// (server, decision, reason) → count. Unknown servers are counted under "-", so callers
    /// cannot grow the label set.
    requests: BTreeMap<(Arc<str>, &'static str, &'static str), u64>,
    latency: BTreeMap<Arc<str>, Histogram>,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    pub fn record(
        &self,
        server: Option<&Arc<str>>,
        decision: &'static str,
        reason: &'static str,
        elapsed: Duration,
    ) {
        let server = server.cloned().unwrap_or_else(|| Arc::from("-"));
        let seconds = elapsed.as_secs_f64();
        let mut inner = self.inner.lock();
        *inner
            .requests
            .entry((server.clone(), decision, reason))
            .or_default() += 1;
        let histogram = inner.latency.entry(server).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                histogram.counts[i] += 1;
            }
        }
        histogram.sum += seconds;
        histogram.total += 1;
    }

    /// The text exposition format; `gauges` are appended as they are given.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let inner = self.inner.lock();
        let mut out = String::new();
        out.push_str(
            "# HELP gatehouse_requests_total Requests to /{server}/mcp by decision and reason.\n",
        );
        out.push_str("# TYPE gatehouse_requests_total counter\n");
        for ((server, decision, reason), count) in &inner.requests {
            let _ = writeln!(
                out,
                "gatehouse_requests_total{{server=\"{}\",decision=\"{decision}\",reason=\"{reason}\"}} {count}",
                escape(server)
            );
        }
        out.push_str("# HELP gatehouse_request_duration_seconds Time to the response head.\n");
        out.push_str("# TYPE gatehouse_request_duration_seconds histogram\n");
        for (server, h) in &inner.latency {
            let server = escape(server);
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "gatehouse_request_duration_seconds_bucket{{server=\"{server}\",le=\"{bound}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "gatehouse_request_duration_seconds_bucket{{server=\"{server}\",le=\"+Inf\"}} {}",
                h.total
            );
            let _ = writeln!(
                out,
                "gatehouse_request_duration_seconds_sum{{server=\"{server}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "gatehouse_request_duration_seconds_count{{server=\"{server}\"}} {}",
                h.total
            );
        }
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_buckets_render() {
        let metrics = Metrics::default();
        let demo: Arc<str> = Arc::from("demo");
        metrics.record(Some(&demo), "allow", "-", Duration::from_micros(300));
        metrics.record(
            Some(&demo),
            "deny",
            "tool_not_granted",
            Duration::from_micros(100),
        );
        metrics.record(None, "deny", "unknown_server", Duration::from_micros(50));
        let text = metrics.render(&[(
            "gatehouse_snapshot_generation",
            "Applied store generation.",
            7.0,
        )]);
        assert!(text.contains("gatehouse_requests_total{server=\"demo\",decision=\"deny\",reason=\"tool_not_granted\"} 1"));
        assert!(text.contains(
            "gatehouse_requests_total{server=\"-\",decision=\"deny\",reason=\"unknown_server\"} 1"
        ));
        assert!(text.contains(
            "gatehouse_request_duration_seconds_bucket{server=\"demo\",le=\"0.00025\"} 1"
        ));
        assert!(text.contains(
            "gatehouse_request_duration_seconds_bucket{server=\"demo\",le=\"0.0005\"} 2"
        ));
        assert!(text.contains("gatehouse_request_duration_seconds_count{server=\"demo\"} 2"));
        assert!(text.contains("gatehouse_snapshot_generation 7"));
    }
}
