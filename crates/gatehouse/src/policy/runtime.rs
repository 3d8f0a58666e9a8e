//! Counter state that must outlive a snapshot: a [`CounterStore`] (rate-limit cells and quota
//! counts, keyed by policy id and spec, so editing an unrelated policy does not reset anyone's
//! limits). Also the GeoIP database `country` policies are compiled against, when the server
//! has one.

use std::sync::Arc;

use super::geo::GeoDb;
use crate::state::{CounterScope, CounterStore, QuotaCounter, RateCounter, memory::MemoryCounters};
use gatehouse_model::records::{QuotaDelta, QuotaUsage};

pub struct PolicyRuntime {
    counters: Arc<dyn CounterStore>,
    /// `policy.geoip_database`, opened; without it `country` policies do not compile.
    geo: Option<Arc<GeoDb>>,
}

impl Default for PolicyRuntime {
    /// Counters in process memory.
    fn default() -> Self {
        Self::with_counters(Arc::new(MemoryCounters::default()))
    }
}

impl std::fmt::Debug for PolicyRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyRuntime")
            .field("stateful_policies", &self.counters.len())
            .field("geo", &self.geo.is_some())
            .finish()
    }
}

impl PolicyRuntime {
    /// Counters kept by `counters` (a shared backend in a cluster).
    pub fn with_counters(counters: Arc<dyn CounterStore>) -> Self {
        Self {
            counters,
            geo: None,
        }
    }

    /// Gives `country` policies their database.
    pub fn with_geo(mut self, geo: Option<Arc<GeoDb>>) -> Self {
        self.geo = geo;
        self
    }

    pub fn geo(&self) -> Option<&Arc<GeoDb>> {
        self.geo.as_ref()
    }

    pub fn preload(&self, usage: Vec<QuotaUsage>) {
        self.counters.preload(usage);
    }

    pub(super) fn rate_cells(&self, id: &str, spec: &str) -> Arc<dyn RateCounter> {
        self.counters.rate(CounterScope {
            policy_id: id,
            spec,
        })
    }

    pub(super) fn quota_counters(&self, id: &str, spec: &str) -> Arc<dyn QuotaCounter> {
        self.counters.quota(CounterScope {
            policy_id: id,
            spec,
        })
    }

    /// Quota deltas since the last call, for adding to the store; forgets the counters of
    /// policies no snapshot holds any more (their last deltas are in the result).
    pub fn take_quota_changes(&self) -> Vec<QuotaDelta> {
        self.counters.drain_quota_deltas()
    }

    /// Policies with counter state (rate limits, quotas).
    pub fn stateful_policies(&self) -> usize {
        self.counters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{quota::Quota, tests_support::check, tests_support::facts_at};

    #[test]
    fn state_of_policies_no_snapshot_holds_is_forgotten_after_its_last_write_back() {
        let runtime = PolicyRuntime::default();
        let spec = crate::policy::quota::QuotaSpec {
            limit: 3,
            window: crate::policy::quota::Window::Day,
            time_zone: "UTC".into(),
            per: crate::policy::Per::Client,
        };
        let kept = runtime.rate_cells("kept", "{}");
        let quota = Quota::new(&spec, runtime.quota_counters("edited", "{v1}")).unwrap();
        let _ = runtime.rate_cells("deleted", "{}");
        check(&quota, &facts_at(1_000_000)).unwrap();
        drop(quota);
        assert_eq!(runtime.stateful_policies(), 3);
        let changes = runtime.take_quota_changes();
        assert_eq!(
            changes.len(),
            1,
            "the edited policy's last count is written back"
        );
        assert_eq!(runtime.stateful_policies(), 1);
        assert!(Arc::ptr_eq(&kept, &runtime.rate_cells("kept", "{}")));
    }
}
