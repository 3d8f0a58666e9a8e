//! Task owners in Redis, so a task created through one replica is addressed through any:
//! `P t:{server}:{task}` holds the owner's hash (and, after a space, the tool whose call
//! created the task) until the task expires; `P to:{owner}` and
//! `P t-all` order the records by expiry for the per-owner cap and the capacity.
//!
//! Each record is also kept in this replica's memory: it answers while Redis does not, and
//! it filters `tasks/list` results (the relay cannot wait for Redis), so a list through this
//! replica shows the caller's tasks created here.

use std::sync::Arc;

use super::{link::RedisLink, sessions::owner_hash};
use crate::state::{
    Owner, StateFuture, TaskOrigin, TaskOwners,
    memory::tasks::{DEFAULT_CAPACITY, InMemoryTaskOwners, MAX_PER_OWNER},
};

pub struct RedisTaskOwners {
    link: Arc<RedisLink>,
    local: InMemoryTaskOwners,
}

impl RedisTaskOwners {
    pub fn new(link: Arc<RedisLink>) -> Self {
        Self {
            link,
            local: InMemoryTaskOwners::default(),
        }
    }
}

impl TaskOwners for RedisTaskOwners {
    fn record<'a>(
        &'a self,
        server: &'a str,
        task_id: &'a str,
        owner: Owner<'a>,
        tool: Option<&'a str>,
        expires_at_ms: i64,
    ) -> StateFuture<'a, ()> {
        self.local
            .record_tool_now(server, task_id, owner, tool, expires_at_ms);
        StateFuture::pending(async move {
            let hash = owner_hash(owner);
            let held = match tool {
                Some(tool) => format!("{hash} {tool}"),
                None => hash.clone(),
            };
            let member = format!("{server}:{task_id}");
            let mut invocation = self
                .link
                .scripts
                .task_record
                .key(self.link.key(format_args!("t:{member}")));
            invocation
                .key(self.link.key(format_args!("to:{hash}")))
                .key(self.link.key(format_args!("t-all")))
                .arg(&member)
                .arg(&held)
                .arg(expires_at_ms)
                .arg(MAX_PER_OWNER)
                .arg(DEFAULT_CAPACITY)
                .arg(self.link.key(format_args!("t:")));
            if self.link.invoke::<i64>(invocation).await.is_err() {
                tracing::debug!("a task's owner is known to this replica only");
            }
        })
    }

    fn owned_by<'a>(
        &'a self,
        server: &'a str,
        task_id: &'a str,
        owner: Owner<'a>,
        now_ms: i64,
    ) -> StateFuture<'a, Option<TaskOrigin>> {
        StateFuture::pending(async move {
            let mut get = redis::cmd("GET");
            get.arg(self.link.key(format_args!("t:{server}:{task_id}")));
            match self.link.query::<Option<String>>(get).await {
                Ok(held) => held.and_then(|held| {
                    let (hash, tool) = match held.split_once(' ') {
                        Some((hash, tool)) => (hash.to_owned(), Some(tool.to_owned())),
                        None => (held, None),
                    };
                    (hash == owner_hash(owner)).then_some(TaskOrigin { tool })
                }),
                Err(_) => self.local.origin_here(server, task_id, owner, now_ms),
            }
        })
    }

    fn owned_here(&self, server: &str, task_id: &str, owner: Owner<'_>, now_ms: i64) -> bool {
        self.local.owned_here(server, task_id, owner, now_ms)
    }

    fn sweep(&self, now_ms: i64) -> usize {
        self.local.sweep(now_ms)
    }

    fn len(&self) -> usize {
        self.local.len()
    }
}
