//! Counter state that must outlive a snapshot: rate-limit cells and quota counters, keyed by
//! policy id and spec, so editing an unrelated policy does not reset anyone's limits. Also the
//! GeoIP database `country` policies are compiled against, when the server has one.

use parking_lot::Mutex;
use std::{collections::HashMap, sync::Arc};

use super::{geo::GeoDb, quota::QuotaCounters, rate::RateCells};
use crate::store::QuotaUsage;

#[derive(Debug, Default)]
pub struct PolicyRuntime {
    rates: Mutex<HashMap<String, Arc<RateCells>>>,
    quotas: Mutex<HashMap<String, Arc<QuotaCounters>>>,
    /// Persisted quota usage not yet claimed by a compiled policy, by policy id.
    stored: Mutex<HashMap<String, Vec<QuotaUsage>>>,
    /// `policy.geoip_database`, opened; without it `country` policies do not compile.
    geo: Option<Arc<GeoDb>>,
}

impl PolicyRuntime {
    /// Gives `country` policies their database.
    pub fn with_geo(mut self, geo: Option<Arc<GeoDb>>) -> Self {
        self.geo = geo;
        self
    }

    pub fn geo(&self) -> Option<&Arc<GeoDb>> {
        self.geo.as_ref()
    }

    pub fn preload(&self, usage: Vec<QuotaUsage>) {
        let mut stored = self.stored.lock();
        for row in usage {
            stored.entry(row.policy_id.clone()).or_default().push(row);
        }
    }

    pub(super) fn rate_cells(&self, id: &str, spec: &str) -> Arc<RateCells> {
        self.rates
            .lock()
            .entry(format!("{id}\n{spec}"))
            .or_default()
            .clone()
    }

    pub(super) fn quota_counters(&self, id: &str, spec: &str) -> Arc<QuotaCounters> {
        let key = format!("{id}\n{spec}");
        let mut quotas = self.quotas.lock();
        if let Some(existing) = quotas.get(&key) {
            return existing.clone();
        }
        let counters = Arc::new(QuotaCounters::new(id));
        if let Some(rows) = self.stored.lock().remove(id) {
            counters.seed(rows);
        }
        quotas.insert(key, counters.clone());
        counters
    }

    /// Quota counters changed since the last call, for writing back. Also forgets the state
    /// of policies no snapshot holds any more (deleted, or edited into another spec): their
    /// last changes are in this call's result, and nothing can reach them again.
    pub fn take_quota_changes(&self) -> Vec<QuotaUsage> {
        let mut quotas = self.quotas.lock();
        let changes = quotas.values().flat_map(|q| q.take_changes()).collect();
        // The runtime's own reference is the only one left once no compiled policy holds it;
        // compiling takes this lock, so none can be handed out meanwhile.
        quotas.retain(|_, q| Arc::strong_count(q) > 1);
        drop(quotas);
        self.rates.lock().retain(|_, r| Arc::strong_count(r) > 1);
        changes
    }

    /// Policies with counter state (rate limits, quotas).
    pub fn stateful_policies(&self) -> usize {
        self.rates.lock().len() + self.quotas.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Policy, quota::Quota, tests_support::facts_at};

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
        quota.check(&facts_at(1_000_000)).unwrap();
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
