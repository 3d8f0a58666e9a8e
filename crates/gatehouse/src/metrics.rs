//! Prometheus metrics, kept in the application state (no global recorder) and rendered in the
//! text exposition format at `/metrics`, which answers only the networks in `metrics.allow`
//! (loopback by default): server names and denial reasons are operational detail.

use parking_lot::RwLock;
use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

/// Both maps are looked up twice per request with keys the configuration fixes (server names
/// and static labels), so they hash with foldhash rather than SipHash (~350 instructions a
/// request less); no client chooses a key.
type Labels<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// Counters of one server. Recording a request takes a shared lock and bumps atomics: two
/// workers recording at once never wait for each other (a mutex here parked threads at c=32).
#[derive(Default)]
struct ServerMetrics {
    /// (decision, reason) → count; written under the map's write lock only for a new pair.
    outcomes: RwLock<Labels<(&'static str, &'static str), AtomicU64>>,
    /// Per-bucket (not cumulative) counts; the last slot is above the largest bound.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

/// Unknown servers are counted under "-", so callers cannot grow the label set.
#[derive(Default)]
pub struct Metrics {
    servers: RwLock<Labels<Arc<str>, Arc<ServerMetrics>>>,
}

impl Metrics {
    pub fn record(
        &self,
        server: Option<&Arc<str>>,
        decision: &'static str,
        reason: &'static str,
        elapsed: Duration,
    ) {
        let name: &str = server.map_or("-", |s| s);
        let known = self.servers.read().get(name).cloned();
        let metrics = match known {
            Some(metrics) => metrics,
            None => self
                .servers
                .write()
                .entry(server.cloned().unwrap_or_else(|| Arc::from("-")))
                .or_default()
                .clone(),
        };
        metrics.count(decision, reason);
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        metrics.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        metrics.sum_ns.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The text exposition format; `gauges` are appended as they are given.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        // Sorted, so the output is stable from one scrape to the next.
        let servers: BTreeMap<Arc<str>, Arc<ServerMetrics>> = self
            .servers
            .read()
            .iter()
            .map(|(name, metrics)| (name.clone(), metrics.clone()))
            .collect();
        let mut out = String::new();
        out.push_str(
            "# HELP gatehouse_requests_total Requests to /{server}/mcp by decision and reason.\n",
        );
        out.push_str("# TYPE gatehouse_requests_total counter\n");
        for (server, metrics) in &servers {
            let outcomes: BTreeMap<(&str, &str), u64> = metrics
                .outcomes
                .read()
                .iter()
                .map(|(key, count)| (*key, count.load(Ordering::Relaxed)))
                .collect();
            for ((decision, reason), count) in outcomes {
                let _ = writeln!(
                    out,
                    "gatehouse_requests_total{{server=\"{}\",decision=\"{decision}\",reason=\"{reason}\"}} {count}",
                    escape(server)
                );
            }
        }
        out.push_str("# HELP gatehouse_request_duration_seconds Time to the response head.\n");
        out.push_str("# TYPE gatehouse_request_duration_seconds histogram\n");
        for (server, metrics) in &servers {
            let server = escape(server);
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += metrics.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "gatehouse_request_duration_seconds_bucket{{server=\"{server}\",le=\"{bound}\"}} {cumulative}",
                );
            }
            let total = cumulative + metrics.buckets[BUCKETS.len()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "gatehouse_request_duration_seconds_bucket{{server=\"{server}\",le=\"+Inf\"}} {total}",
            );
            let sum = metrics.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(
                out,
                "gatehouse_request_duration_seconds_sum{{server=\"{server}\"}} {sum}",
            );
            let _ = writeln!(
                out,
                "gatehouse_request_duration_seconds_count{{server=\"{server}\"}} {total}",
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

impl ServerMetrics {
    fn count(&self, decision: &'static str, reason: &'static str) {
        if let Some(count) = self.outcomes.read().get(&(decision, reason)) {
            count.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.outcomes
            .write()
            .entry((decision, reason))
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
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
        assert!(
            text.contains(
                "gatehouse_request_duration_seconds_bucket{server=\"demo\",le=\"+Inf\"} 2"
            )
        );
        assert!(text.contains("gatehouse_request_duration_seconds_sum{server=\"demo\"} 0.0004"));
        assert!(text.contains("gatehouse_snapshot_generation 7"));
    }
}
