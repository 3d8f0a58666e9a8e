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

    /// Quota counters changed since the last call, for writing back.
    pub fn take_quota_changes(&self) -> Vec<QuotaUsage> {
        let quotas: Vec<Arc<QuotaCounters>> = self.quotas.lock().values().cloned().collect();
        quotas.iter().flat_map(|q| q.take_changes()).collect()
    }
}
