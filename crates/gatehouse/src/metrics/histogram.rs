//! A latency histogram of atomics. The client crate's own histogram takes a mutex on every
//! observation; on the request path two workers recording at once would wait for each other
//! (a mutex here parked threads at c=32), so the request path records into this instead and
//! the crate only encodes it.

use prometheus_client::{
    encoding::{EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::{MetricType, TypedMetric},
};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

/// Upper bounds for the gateway's own latencies, in seconds: from a cached key check to a
/// slow upstream.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// The OpenTelemetry MCP semantic conventions' bucket preset for `mcp.*.operation.duration`.
pub const MCP_OPERATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Durations in seconds; cheap to clone (one shared set of counts).
#[derive(Clone, Debug)]
pub struct AtomicHistogram(Arc<Counts>);

#[derive(Debug)]
struct Counts {
    bounds: &'static [f64],
    /// Per bucket, not cumulative; the last slot is above the largest bound.
    buckets: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

impl AtomicHistogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        AtomicHistogram(Arc::new(Counts {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }))
    }

    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let counts = &self.0;
        let bucket = counts
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(counts.bounds.len());
        if let Some(slot) = counts.buckets.get(bucket) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        counts.sum_ns.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far (tests and the scrape).
    pub fn count(&self) -> u64 {
        self.0
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let counts = &self.0;
        let mut total = 0;
        // Per bucket: the encoder writes them cumulative.
        let mut buckets = Vec::with_capacity(counts.buckets.len());
        for (i, slot) in counts.buckets.iter().enumerate() {
            let count = slot.load(Ordering::Relaxed);
            total += count;
            let bound = counts.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, count));
        }
        let sum = counts.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, total, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket_and_the_sum() {
        let histogram = AtomicHistogram::new(LATENCY_BUCKETS);
        histogram.observe(Duration::from_micros(100));
        histogram.observe(Duration::from_micros(300));
        histogram.observe(Duration::from_secs(10));
        assert_eq!(histogram.count(), 3);
        let counts = &histogram.0;
        assert_eq!(counts.buckets[0].load(Ordering::Relaxed), 1);
        assert_eq!(counts.buckets[1].load(Ordering::Relaxed), 1);
        assert_eq!(
            counts.buckets[LATENCY_BUCKETS.len()].load(Ordering::Relaxed),
            1
        );
        assert_eq!(counts.sum_ns.load(Ordering::Relaxed), 10_000_400_000);
    }
}
