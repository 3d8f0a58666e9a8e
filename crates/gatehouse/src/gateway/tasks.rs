//! MCP tasks belong to the principal that created them.
//!
//! The tasks specification binds a task to the authorization context that created it, and only
//! Gatehouse holds that context: the upstream sees one server credential for every caller.
//! So when a task-augmented request (`params.task`) comes back with a `CreateTaskResult`,
//! Gatehouse records who created `task.taskId` ([`Owner`]: the client, and the person its
//! token acts for). `tasks/get`, `tasks/result`, `tasks/cancel` and `tasks/update` naming a
//! task of someone else, or one Gatehouse never saw created, are refused before they reach the
//! upstream; a `tasks/list` result is filtered to the caller's tasks. Both wire eras alike.
//!
//! Records live until the task's `ttl` (at most [`MAX_TTL_MS`]; a task without one gets that).
//! One owner keeps at most [`MAX_PER_OWNER`] records and the map a fixed number in all, the
//! soonest to expire going first: the owner's own first, so one caller creating tasks in bulk
//! cannot push out the records of others.

use parking_lot::Mutex;
use serde_json::Value;
use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::Arc,
};

use crate::{
    error::GatewayError,
    gateway::jsonrpc::{Envelope, Kind},
    identity::principal::{Owner, OwnerId},
};

/// Longest a task's owner is remembered: past it, the task is refused (fail closed).
pub const MAX_TTL_MS: i64 = 24 * 3_600 * 1_000;
/// Task records kept at most, across servers and owners.
pub const DEFAULT_CAPACITY: usize = 100_000;
/// Task records one owner keeps at most, across servers.
pub const MAX_PER_OWNER: usize = 1_000;

/// Methods that name an existing task by `params.taskId`.
const ADDRESSING: &[&str] = &["tasks/get", "tasks/result", "tasks/cancel", "tasks/update"];

/// Who created which task. In memory today; a shared store in cluster mode.
pub trait TaskOwners: Send + Sync {
    fn record(&self, server: &str, task_id: &str, owner: Owner<'_>, expires_at_ms: i64);
    /// Whether `owner` created `task_id` on `server` and the record has not expired.
    fn owned_by(&self, server: &str, task_id: &str, owner: Owner<'_>, now_ms: i64) -> bool;
    /// Forgets expired records; how many.
    fn sweep(&self, now_ms: i64) -> usize;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug)]
struct Record {
    owner: OwnerId,
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
    fn record(&self, server: &str, task_id: &str, owner: Owner<'_>, expires_at_ms: i64) {
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
        records
            .by_server
            .entry(server)
            .or_default()
            .insert(task_id.to_owned(), Record { owner, expiry });
    }

    fn owned_by(&self, server: &str, task_id: &str, owner: Owner<'_>, now_ms: i64) -> bool {
        let records = self.records.lock();
        records
            .by_server
            .get(server)
            .and_then(|tasks| tasks.get(task_id))
            .is_some_and(|r| r.owner.is(owner) && r.expiry.0 > now_ms)
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

/// Refuses a request that names a task the caller did not create through Gatehouse.
pub fn check_requests(
    owners: &dyn TaskOwners,
    server: &str,
    owner: Owner<'_>,
    envelope: &Envelope,
) -> Result<(), GatewayError> {
    let now = crate::now_ms();
    for message in &envelope.messages {
        if message.kind != Kind::Request || !ADDRESSING.contains(&message.method()) {
            continue;
        }
        let task_id = message
            .param_str("taskId")
            .ok_or_else(|| GatewayError::InvalidRequest("tasks/* needs params.taskId".into()))?;
        if !owners.owned_by(server, task_id, owner, now) {
            return Err(GatewayError::TaskNotFound);
        }
    }
    Ok(())
}

/// What to watch for in the responses to one request: tasks it creates, lists it asks for.
pub struct TaskRules {
    owners: Arc<dyn TaskOwners>,
    server: Arc<str>,
    owner: OwnerId,
    /// Request ids (as JSON text) of task-augmented requests.
    creating: HashSet<String>,
    /// Request ids of `tasks/list`.
    listing: HashSet<String>,
}

/// The task rules a request needs, if any of its messages creates or lists tasks.
pub fn rules_for(
    owners: &Arc<dyn TaskOwners>,
    server: &Arc<str>,
    owner: Owner<'_>,
    envelope: &Envelope,
) -> Option<TaskRules> {
    let mut creating = HashSet::new();
    let mut listing = HashSet::new();
    for message in &envelope.messages {
        let Some(id) = message
            .id
            .as_ref()
            .filter(|_| message.kind == Kind::Request)
        else {
            continue;
        };
        if message.method() == "tasks/list" {
            listing.insert(id.to_string());
        } else if message
            .params
            .as_ref()
            .is_some_and(|p| p.get("task").is_some_and(Value::is_object))
        {
            creating.insert(id.to_string());
        }
    }
    (!creating.is_empty() || !listing.is_empty()).then(|| TaskRules {
        owners: owners.clone(),
        server: server.clone(),
        owner: owner.into(),
        creating,
        listing,
    })
}

impl TaskRules {
    /// Records the tasks a response creates; filters a `tasks/list` result. Whether the
    /// message changed.
    pub fn observe(&self, message: &mut Value) -> bool {
        let Some(id) = message.get("id").map(Value::to_string) else {
            return false;
        };
        let now = crate::now_ms();
        if self.creating.contains(&id) {
            let task = message.get("result").and_then(|r| r.get("task"));
            if let Some(task_id) = task.and_then(|t| t.get("taskId")).and_then(Value::as_str) {
                let ttl = task
                    .and_then(|t| t.get("ttl"))
                    .and_then(Value::as_i64)
                    .map_or(MAX_TTL_MS, |ttl| ttl.clamp(0, MAX_TTL_MS));
                self.owners.record(
                    &self.server,
                    task_id,
                    self.owner.as_owner(),
                    now.saturating_add(ttl),
                );
            }
            return false;
        }
        if !self.listing.contains(&id) {
            return false;
        }
        let owner = self.owner.as_owner();
        let Some(tasks) = message
            .get_mut("result")
            .and_then(|r| r.get_mut("tasks"))
            .and_then(Value::as_array_mut)
        else {
            return false;
        };
        let before = tasks.len();
        tasks.retain(|task| {
            task.get("taskId")
                .and_then(Value::as_str)
                .is_some_and(|id| self.owners.owned_by(&self.server, id, owner, now))
        });
        tasks.len() != before
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
        owners.record("demo", "t1", client("alice"), 100);
        assert!(owners.owned_by("demo", "t1", client("alice"), 99));
        assert!(!owners.owned_by("demo", "t1", client("mallory"), 99));
        assert!(!owners.owned_by("other", "t1", client("alice"), 99));
        assert!(!owners.owned_by("demo", "t2", client("alice"), 99));
        assert!(
            !owners.owned_by("demo", "t1", client("alice"), 100),
            "expired"
        );
        assert_eq!(owners.sweep(100), 1);
        assert_eq!(owners.len(), 0);
    }

    #[test]
    fn the_cap_forgets_the_soonest_to_expire() {
        let owners = InMemoryTaskOwners::new(2, 10);
        owners.record("demo", "late", client("a"), 300);
        owners.record("demo", "soon", client("a"), 100);
        owners.record("demo", "new", client("b"), 200);
        assert_eq!(owners.len(), 2);
        assert!(!owners.owned_by("demo", "soon", client("a"), 0));
        assert!(owners.owned_by("demo", "late", client("a"), 0));
        assert!(owners.owned_by("demo", "new", client("b"), 0));
    }

    #[test]
    fn one_owner_over_its_cap_forgets_its_own_records_only() {
        let owners = InMemoryTaskOwners::new(10, 2);
        owners.record("demo", "other", client("b"), 50);
        owners.record("demo", "a-late", client("a"), 300);
        owners.record("other", "a-soon", client("a"), 100);
        owners.record("demo", "a-new", client("a"), 200);
        assert_eq!(owners.len(), 3);
        assert!(!owners.owned_by("other", "a-soon", client("a"), 0));
        assert!(owners.owned_by("demo", "a-late", client("a"), 0));
        assert!(owners.owned_by("demo", "a-new", client("a"), 0));
        assert!(owners.owned_by("demo", "other", client("b"), 0));
        assert_eq!(owners.sweep(1_000), 3);
        assert_eq!(owners.len(), 0);
    }

    #[test]
    fn list_results_keep_only_the_callers_tasks() {
        let owners: Arc<dyn TaskOwners> = Arc::new(InMemoryTaskOwners::default());
        let far = crate::now_ms() + 60_000;
        owners.record("demo", "mine", client("a"), far);
        owners.record("demo", "theirs", client("b"), far);
        let envelope =
            crate::gateway::jsonrpc::parse(br#"{"jsonrpc":"2.0","id":4,"method":"tasks/list"}"#)
                .unwrap();
        let rules = rules_for(&owners, &Arc::from("demo"), client("a"), &envelope).unwrap();
        let mut result = serde_json::json!({"jsonrpc":"2.0","id":4,"result":{"tasks":[
            {"taskId":"mine"},{"taskId":"theirs"},{"taskId":"unknown"}]}});
        assert!(rules.observe(&mut result));
        assert_eq!(
            result["result"]["tasks"],
            serde_json::json!([{"taskId":"mine"}])
        );
    }
}
