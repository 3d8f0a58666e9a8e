//! MCP tasks belong to the principal that created them.
//!
//! The tasks specification binds a task to the authorization context that created it, and only
//! Gatehouse holds that context: the upstream sees one server credential for every caller.
//! So when a task-augmented request (`params.task`) comes back with a `CreateTaskResult`,
//! Gatehouse records who created `task.taskId` ([`Owner`]: the client, and the person its
//! token acts for). `tasks/get`, `tasks/result`, `tasks/cancel` and `tasks/update` naming a
//! task of someone else, or one Gatehouse never saw created, are refused before they reach the
//! upstream; a `tasks/list` result is filtered to the caller's tasks. Both wire eras alike.
//! A task started by a `tools/call` also records the tool: its later requests need the
//! caller's grant of that tool still (`tool_not_granted` once revoked) and are routed as that
//! tool's calls are.
//!
//! Records live until the task's `ttl` (at most [`MAX_TTL_MS`]; a task without one gets that).
//! The records are a [`TaskOwners`] (`state/memory/tasks.rs` in one process).

use serde_json::Value;
use std::{
    collections::{HashMap, HashSet},
    future::Future,
    sync::Arc,
};

use crate::{
    error::GatewayError,
    identity::principal::{Owner, OwnerId},
};
use gatehouse_model::jsonrpc::{Envelope, Kind};

pub use crate::state::{
    TaskOwners,
    memory::tasks::{DEFAULT_CAPACITY, InMemoryTaskOwners, MAX_PER_OWNER},
};

/// Longest a task's owner is remembered: past it, the task is refused (fail closed).
pub const MAX_TTL_MS: i64 = 24 * 3_600 * 1_000;

/// Methods that name an existing task by `params.taskId`.
const ADDRESSING: &[&str] = &["tasks/get", "tasks/result", "tasks/cancel", "tasks/update"];

/// Refuses a request that names a task the caller did not create through Gatehouse, or one
/// created by a tool call whose tool `tool_granted` no longer allows (a revoked grant ends
/// access to the tasks it started). Returns the tool that created the first task named, so
/// the request goes where that tool's calls go.
pub async fn check_requests(
    owners: &dyn TaskOwners,
    server: &str,
    owner: Owner<'_>,
    envelope: &Envelope,
    tool_granted: impl Fn(&str) -> bool,
) -> Result<Option<String>, GatewayError> {
    let now = crate::now_ms();
    let mut origin_tool = None;
    for message in &envelope.messages {
        if message.kind != Kind::Request || !ADDRESSING.contains(&message.method()) {
            continue;
        }
        let task_id = message
            .param_str("taskId")
            .ok_or_else(|| GatewayError::InvalidRequest("tasks/* needs params.taskId".into()))?;
        let Some(origin) = owners.owned_by(server, task_id, owner, now).await else {
            return Err(GatewayError::TaskNotFound);
        };
        if let Some(tool) = origin.tool {
            if !tool_granted(&tool) {
                return Err(GatewayError::ToolNotGranted { tool });
            }
            origin_tool.get_or_insert(tool);
        }
    }
    Ok(origin_tool)
}

/// What to watch for in the responses to one request: tasks it creates, lists it asks for.
pub struct TaskRules {
    owners: Arc<dyn TaskOwners>,
    server: Arc<str>,
    owner: OwnerId,
    /// Request ids (as JSON text) of task-augmented requests, and the tool each calls.
    creating: HashMap<String, Option<String>>,
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
    let mut creating = HashMap::new();
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
            let tool = (message.method() == "tools/call")
                .then(|| message.param_str("name").map(str::to_owned))
                .flatten();
            creating.insert(id.to_string(), tool);
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
    /// Records a task's owner. The relay cannot wait, so a backend that answers later (a
    /// shared one) finishes on its own task; the in-memory one is done before this returns.
    fn record(&self, task_id: &str, tool: Option<String>, expires_at_ms: i64) {
        let (owners, server, owner) =
            (self.owners.clone(), self.server.clone(), self.owner.clone());
        let task_id = task_id.to_owned();
        let mut recording = Box::pin(async move {
            owners
                .record(
                    &server,
                    &task_id,
                    owner.as_owner(),
                    tool.as_deref(),
                    expires_at_ms,
                )
                .await;
        });
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if recording.as_mut().poll(&mut cx).is_pending() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(recording)),
                Err(_) => tracing::warn!("a task's owner could not be recorded: no runtime"),
            }
        }
    }

    /// Records the tasks a response creates; filters a `tasks/list` result. Whether the
    /// message changed.
    pub fn observe(&self, message: &mut Value) -> bool {
        let Some(id) = message.get("id").map(Value::to_string) else {
            return false;
        };
        let now = crate::now_ms();
        if let Some(tool) = self.creating.get(&id) {
            let task = message.get("result").and_then(|r| r.get("task"));
            if let Some(task_id) = task.and_then(|t| t.get("taskId")).and_then(Value::as_str) {
                let ttl = task
                    .and_then(|t| t.get("ttl"))
                    .and_then(Value::as_i64)
                    .map_or(MAX_TTL_MS, |ttl| ttl.clamp(0, MAX_TTL_MS));
                self.record(task_id, tool.clone(), now.saturating_add(ttl));
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
                .is_some_and(|id| self.owners.owned_here(&self.server, id, owner, now))
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
    fn list_results_keep_only_the_callers_tasks() {
        let far = crate::now_ms() + 60_000;
        let memory = InMemoryTaskOwners::default();
        memory.record_now("demo", "mine", client("a"), far);
        memory.record_now("demo", "theirs", client("b"), far);
        let owners: Arc<dyn TaskOwners> = Arc::new(memory);
        let envelope =
            gatehouse_model::jsonrpc::parse(br#"{"jsonrpc":"2.0","id":4,"method":"tasks/list"}"#)
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
