//! Task owners in process memory. Records live until the task's `ttl`; one owner keeps at
//! most [`MAX_PER_OWNER`] records and the map [`DEFAULT_CAPACITY`] in all, the soonest to
//! expire going first: the owner's own first, so one caller creating tasks in bulk cannot push
//! out the records of others.

use parking_lot::Mutex;
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use crate::state::{Owner, OwnerId, StateFuture, TaskOrigin, TaskOwners};

/// Task records kept at most, across servers and owners.
pub const DEFAULT_CAPACITY: usize = 100_000;
/// Task records one owner keeps at most, across servers.
pub const MAX_PER_OWNER: usize = 1_000;

#[derive(Debug)]
struct Record {
    owner: OwnerId,
    tool: Option<String>,
    /// The key of this record in the expiry order.
    expiry: (i64, u64),
}

#[derive(Debug, Default)]
struct Records {
    by_server: HashMap<Arc<str>, HashMap<String, Record>>,
    by_expiry: BTreeMap<(i64, u64), (Arc<str>, String)>,
    /// Each owner's records, in expiry order.
    by_owner: HashMap<OwnerId, BTreeSet<(i64, u64)>>,
    next_seq: u64,
}

impl Records {
    fn forget(&mut self, server: &str, task_id: &str) {
        if let Some(tasks) = self.by_server.get_mut(server)
            && let Some(record) = tasks.remove(task_id)
        {
            self.by_expiry.remove(&record.expiry);
            if let Some(expiries) = self.by_owner.get_mut(&record.owner) {
                expiries.remove(&record.expiry);
                if expiries.is_empty() {
                    self.by_owner.remove(&record.owner);
                }
            }
            if tasks.is_empty() {
                self.by_server.remove(server);
            }
        }
    }

    fn forget_first(&mut self) -> bool {
        match self.by_expiry.first_key_value() {
            Some((_, (server, task_id))) => {
                let (server, task_id) = (server.clone(), task_id.clone());
                self.forget(&server, &task_id);
                true
            }
            None => false,
        }
    }

    fn forget_first_of(&mut self, owner: &OwnerId) -> bool {
        let Some(expiry) = self.by_owner.get(owner).and_then(|e| e.first().copied()) else {
            return false;
        };
        match self.by_expiry.get(&expiry) {
            Some((server, task_id)) => {
                let (server, task_id) = (server.clone(), task_id.clone());
                self.forget(&server, &task_id);
                true
            }
            None => false,
        }
    }
}

#[derive(Debug)]
pub struct InMemoryTaskOwners {
    records: Mutex<Records>,
    capacity: usize,
    per_owner: usize,
}

impl Default for InMemoryTaskOwners {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY, MAX_PER_OWNER)
    }
}

impl InMemoryTaskOwners {
    pub fn new(capacity: usize, per_owner: usize) -> Self {
        Self {
            records: Mutex::default(),
            capacity: capacity.max(1),
            per_owner: per_owner.max(1),
        }
    }
}

impl TaskOwners for InMemoryTaskOwners {
    fn record<'a>(
        &'a self,
        server: &'a str,
        task_id: &'a str,
        owner: Owner<'a>,
        tool: Option<&'a str>,
        expires_at_ms: i64,
    ) -> StateFuture<'a, ()> {
        self.record_tool_now(server, task_id, owner, tool, expires_at_ms);
        StateFuture::ready(())
    }

    fn owned_by<'a>(
        &'a self,
        server: &'a str,
        task_id: &'a str,
        owner: Owner<'a>,
        now_ms: i64,
    ) -> StateFuture<'a, Option<TaskOrigin>> {
        StateFuture::ready(self.origin_here(server, task_id, owner, now_ms))
    }

    fn owned_here(&self, server: &str, task_id: &str, owner: Owner<'_>, now_ms: i64) -> bool {
        self.origin_here(server, task_id, owner, now_ms).is_some()
    }

    fn sweep(&self, now_ms: i64) -> usize {
        let mut records = self.records.lock();
        let mut removed = 0;
        while records
            .by_expiry
            .first_key_value()
            .is_some_and(|((expires, _), _)| *expires <= now_ms)
            && records.forget_first()
        {
            removed += 1;
        }
        removed
    }

    fn len(&self) -> usize {
        self.records.lock().by_expiry.len()
    }
}

impl InMemoryTaskOwners {
    /// [`TaskOwners::owned_by`], answered at once.
    pub fn origin_here(
        &self,
        server: &str,
        task_id: &str,
        owner: Owner<'_>,
        now_ms: i64,
    ) -> Option<TaskOrigin> {
        let records = self.records.lock();
        records
            .by_server
            .get(server)
            .and_then(|tasks| tasks.get(task_id))
            .filter(|r| r.owner.is(owner) && r.expiry.0 > now_ms)
            .map(|r| TaskOrigin {
                tool: r.tool.clone(),
            })
    }

    /// A task created by a request other than a tool call, recorded at once.
    pub fn record_now(&self, server: &str, task_id: &str, owner: Owner<'_>, expires_at_ms: i64) {
        self.record_tool_now(server, task_id, owner, None, expires_at_ms);
    }

    /// [`TaskOwners::record`], done at once.
    pub fn record_tool_now(
        &self,
        server: &str,
        task_id: &str,
        owner: Owner<'_>,
        tool: Option<&str>,
        expires_at_ms: i64,
    ) {
        let mut records = self.records.lock();
        // An upstream reusing an id hands the task to its new creator only.
        records.forget(server, task_id);
        let owner = OwnerId::from(owner);
        while records
            .by_owner
            .get(&owner)
            .is_some_and(|e| e.len() >= self.per_owner)
            && records.forget_first_of(&owner)
        {}
        while records.by_expiry.len() >= self.capacity && records.forget_first() {}
        let seq = records.next_seq;
        records.next_seq += 1;
        let expiry = (expires_at_ms, seq);
        let server: Arc<str> = match records.by_server.get_key_value(server) {
            Some((name, _)) => name.clone(),
            None => Arc::from(server),
        };
        records
            .by_expiry
            .insert(expiry, (server.clone(), task_id.to_owned()));
        records
            .by_owner
            .entry(owner.clone())
            .or_default()
            .insert(expiry);
        records.by_server.entry(server).or_default().insert(
            task_id.to_owned(),
            Record {
                owner,
                tool: tool.map(str::to_owned),
                expiry,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(name: &str) -> Owner<'_> {
        Owner {
            client: Some(name),
            subject: None,
        }
    }

    #[test]
    fn a_task_belongs_to_its_creator_until_it_expires() {
        let owners = InMemoryTaskOwners::default();
        owners.record_now("demo", "t1", client("alice"), 100);
        assert!(owners.owned_here("demo", "t1", client("alice"), 99));
        assert!(!owners.owned_here("demo", "t1", client("mallory"), 99));
        assert!(!owners.owned_here("other", "t1", client("alice"), 99));
        assert!(!owners.owned_here("demo", "t2", client("alice"), 99));
        assert!(
            !owners.owned_here("demo", "t1", client("alice"), 100),
            "expired"
        );
        assert_eq!(owners.sweep(100), 1);
        assert_eq!(owners.len(), 0);
    }

    #[test]
    fn the_cap_forgets_the_soonest_to_expire() {
        let owners = InMemoryTaskOwners::new(2, 10);
        owners.record_now("demo", "late", client("a"), 300);
        owners.record_now("demo", "soon", client("a"), 100);
        owners.record_now("demo", "new", client("b"), 200);
        assert_eq!(owners.len(), 2);
        assert!(!owners.owned_here("demo", "soon", client("a"), 0));
        assert!(owners.owned_here("demo", "late", client("a"), 0));
        assert!(owners.owned_here("demo", "new", client("b"), 0));
    }

    #[test]
    fn one_owner_over_its_cap_forgets_its_own_records_only() {
        let owners = InMemoryTaskOwners::new(10, 2);
        owners.record_now("demo", "other", client("b"), 50);
        owners.record_now("demo", "a-late", client("a"), 300);
        owners.record_now("other", "a-soon", client("a"), 100);
        owners.record_now("demo", "a-new", client("a"), 200);
        assert_eq!(owners.len(), 3);
        assert!(!owners.owned_here("other", "a-soon", client("a"), 0));
        assert!(owners.owned_here("demo", "a-late", client("a"), 0));
        assert!(owners.owned_here("demo", "a-new", client("a"), 0));
        assert!(owners.owned_here("demo", "other", client("b"), 0));
        assert_eq!(owners.sweep(1_000), 3);
        assert_eq!(owners.len(), 0);
    }

    #[test]
    fn concurrent_records_stay_within_both_bounds_and_with_their_creators() {
        let owners = InMemoryTaskOwners::new(100, 20);
        let names: Vec<String> = (0..8).map(|i| format!("owner-{i}")).collect();
        std::thread::scope(|threads| {
            for name in &names {
                let owners = &owners;
                threads.spawn(move || {
                    for n in 0..500i64 {
                        let task = format!("{name}-{n}");
                        owners.record_now("demo", &task, client(name), 1_000 + n);
                        assert!(!owners.owned_here("demo", &task, client("mallory"), 0));
                    }
                });
            }
        });
        assert!(owners.len() <= 100, "{} records kept", owners.len());
        for name in &names {
            let kept = (0..500)
                .filter(|n| owners.owned_here("demo", &format!("{name}-{n}"), client(name), 0))
                .count();
            assert!(kept <= 20, "{name} keeps {kept}");
            assert!(
                owners.owned_here("demo", &format!("{name}-499"), client(name), 0),
                "{name}'s latest task, the last to expire, is kept"
            );
        }
    }
}
