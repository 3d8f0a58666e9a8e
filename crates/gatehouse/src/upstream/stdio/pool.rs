//! The running stdio children of this process, by server (ADR 0006 §2): one shared child, or
//! one per principal. Runtime state behind a small trait, like `crate::state`'s: children are
//! per replica, and the in-memory pool is the one implementation.
//!
//! A child starts on its server's first call and keeps running; a changed server record
//! (another command, environment or setting) replaces it on the next call, a deleted server's
//! child is stopped by the sweep, and shutdown stops them all.

use parking_lot::Mutex;
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use super::supervisor::{Lifecycle, ResourceLimits, StdioCommand, Supervisor};
use crate::{
    snapshot::stdio::StdioLaunch,
    state::{Owner, OwnerId, SessionStore},
};
use gatehouse_model::records::{Sharing, command_allowed};

/// Per-principal children per server when `max_children` is not set.
pub const DEFAULT_MAX_CHILDREN: u32 = 16;
/// A per-principal child idle this long is stopped when `idle_timeout` is not set.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Why no child could serve a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChildRefused {
    /// The command is not in `[gateway] stdio_commands`.
    #[error("the command {0:?} is not in gateway.stdio_commands")]
    CommandNotAllowed(String),
    /// Every per-principal child the server may run is busy or in use.
    #[error("the server runs {0} per-principal children already")]
    Full(u32),
}

/// The children of stdio servers.
pub trait StdioChildren: Send + Sync {
    /// The child that serves `owner` on `server`: started if none runs, replaced if `launch`
    /// differs from the one it runs.
    fn child(
        &self,
        server: &str,
        launch: &Arc<StdioLaunch>,
        owner: Owner<'_>,
    ) -> Result<Supervisor, ChildRefused>;

    /// The child that serves `owner` on `server` if one runs; never starts one.
    fn running_child(&self, server: &str, owner: Owner<'_>) -> Option<Supervisor>;

    /// Stops the children of servers `keep` says are gone or changed, and per-principal
    /// children idle past their server's `idle_timeout`.
    fn sweep(&self, keep: &dyn Fn(&str, &StdioLaunch) -> bool);

    /// Every running child, with its server's name.
    fn running_children(&self) -> Vec<(String, Supervisor)>;

    /// Stops every child (shutdown).
    fn stop_all(&self);

    /// Children running, for tests and status.
    fn running(&self, server: &str) -> usize;
}

struct ServerChildren {
    launch: Arc<StdioLaunch>,
    shared: Option<Supervisor>,
    per_principal: HashMap<OwnerId, (Supervisor, Instant)>,
}

impl ServerChildren {
    fn stop(&self) {
        if let Some(shared) = &self.shared {
            shared.stop();
        }
        for (child, _) in self.per_principal.values() {
            child.stop();
        }
    }
}

/// The pool of a single process.
pub struct InMemoryChildren {
    allowed: Option<Vec<String>>,
    lifecycle: Lifecycle,
    servers: Mutex<HashMap<String, ServerChildren>>,
}

impl InMemoryChildren {
    /// `allowed` is `[gateway] stdio_commands` (`None`: any command).
    pub fn new(allowed: Option<Vec<String>>, lifecycle: Lifecycle) -> Self {
        Self {
            allowed,
            lifecycle,
            servers: Mutex::new(HashMap::new()),
        }
    }

    fn start(&self, server: &str, launch: &StdioLaunch) -> Supervisor {
        Supervisor::start(server, command_of(launch), self.lifecycle)
    }
}

/// Releases the subscriptions of sessions that ended without a `DELETE` (idle past
/// `session_idle_timeout`, dropped for the per-owner cap, expired in Redis) as a `DELETE`
/// does: a child is unsubscribed from what no live session wants any more.
pub async fn release_ended_sessions(children: &dyn StdioChildren, sessions: &dyn SessionStore) {
    for (server, child) in children.running_children() {
        for session in child.subscribed_sessions() {
            if !sessions.is_live(&server, &session).await {
                child.end_session(&session).await;
            }
        }
    }
}

/// Names, at start, every stdio server whose command `[gateway] stdio_commands` does not
/// list: none of them will run (each call is refused with `server_unavailable`), and the
/// operator learns it now rather than from the first refused call.
pub fn refuse_unlisted_at_start(snapshot: &crate::snapshot::Snapshot, allowed: Option<&[String]>) {
    let Some(allowed) = allowed else { return };
    for server in snapshot.servers.values() {
        if let Some(launch) = &server.stdio
            && !command_allowed(allowed, &launch.settings.command)
        {
            tracing::error!(server = %server.name, command = %launch.settings.command,
                "stdio server will not run: its command is not in gateway.stdio_commands");
        }
    }
}

/// What the supervisor runs for `launch`.
pub fn command_of(launch: &StdioLaunch) -> StdioCommand {
    let limits = launch.settings.limits;
    StdioCommand {
        program: launch.settings.command.clone(),
        args: launch.settings.args.clone(),
        env: launch.env.clone(),
        cwd: launch.settings.cwd.as_ref().map(Into::into),
        limits: (!limits.is_empty()).then_some(ResourceLimits {
            memory_bytes: limits.memory_bytes,
            open_files: limits.open_files,
            processes: limits.processes,
            cpu_seconds: limits.cpu_seconds,
        }),
    }
}

impl StdioChildren for InMemoryChildren {
    fn child(
        &self,
        server: &str,
        launch: &Arc<StdioLaunch>,
        owner: Owner<'_>,
    ) -> Result<Supervisor, ChildRefused> {
        let command = &launch.settings.command;
        if let Some(allowed) = &self.allowed
            && !command_allowed(allowed, command)
        {
            return Err(ChildRefused::CommandNotAllowed(command.clone()));
        }
        let mut servers = self.servers.lock();
        let entry = servers
            .entry(server.to_owned())
            .or_insert_with(|| ServerChildren {
                launch: launch.clone(),
                shared: None,
                per_principal: HashMap::new(),
            });
        if entry.launch != *launch {
            // The record changed: its programs are replaced, not left running the old one.
            entry.stop();
            *entry = ServerChildren {
                launch: launch.clone(),
                shared: None,
                per_principal: HashMap::new(),
            };
        }
        match launch.settings.sharing {
            Sharing::Shared => {
                if let Some(child) = &entry.shared {
                    return Ok(child.clone());
                }
                let child = self.start(server, launch);
                entry.shared = Some(child.clone());
                Ok(child)
            }
            Sharing::PerPrincipal => {
                let key = OwnerId::from(owner);
                if let Some((child, used)) = entry.per_principal.get_mut(&key) {
                    *used = Instant::now();
                    return Ok(child.clone());
                }
                let max = launch.settings.max_children.unwrap_or(DEFAULT_MAX_CHILDREN);
                if entry.per_principal.len() >= max as usize {
                    return Err(ChildRefused::Full(max));
                }
                let child = self.start(server, launch);
                entry
                    .per_principal
                    .insert(key, (child.clone(), Instant::now()));
                Ok(child)
            }
        }
    }

    fn running_child(&self, server: &str, owner: Owner<'_>) -> Option<Supervisor> {
        let servers = self.servers.lock();
        let children = servers.get(server)?;
        match children.launch.settings.sharing {
            Sharing::Shared => children.shared.clone(),
            Sharing::PerPrincipal => children
                .per_principal
                .get(&OwnerId::from(owner))
                .map(|(child, _)| child.clone()),
        }
    }

    fn sweep(&self, keep: &dyn Fn(&str, &StdioLaunch) -> bool) {
        let mut servers = self.servers.lock();
        servers.retain(|name, children| {
            if !keep(name, &children.launch) {
                children.stop();
                return false;
            }
            let idle = children
                .launch
                .settings
                .idle_timeout_secs
                .map_or(DEFAULT_IDLE_TIMEOUT, Duration::from_secs);
            children.per_principal.retain(|_, (child, used)| {
                // A child with a call in flight is busy, however long ago it was asked.
                let keep = used.elapsed() < idle || child.in_flight() > 0;
                if !keep {
                    child.stop();
                }
                keep
            });
            true
        });
    }

    fn running_children(&self) -> Vec<(String, Supervisor)> {
        let servers = self.servers.lock();
        let mut running = Vec::new();
        for (name, children) in servers.iter() {
            let per_principal = children.per_principal.values().map(|(child, _)| child);
            for child in children.shared.iter().chain(per_principal) {
                running.push((name.clone(), child.clone()));
            }
        }
        running
    }

    fn stop_all(&self) {
        for (_, children) in self.servers.lock().drain() {
            children.stop();
        }
    }

    fn running(&self, server: &str) -> usize {
        self.servers.lock().get(server).map_or(0, |c| {
            usize::from(c.shared.is_some()) + c.per_principal.len()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_model::records::StdioSettings;

    #[test]
    fn debug_output_names_the_environment_but_never_shows_its_values() {
        let launch = StdioLaunch {
            settings: StdioSettings {
                command: "npx".into(),
                args: vec!["-y".into()],
                env_names: vec!["API_KEY".into()],
                env_sealed: None,
                cwd: None,
                sharing: Sharing::Shared,
                max_children: None,
                idle_timeout_secs: None,
                limits: Default::default(),
            },
            env: vec![("API_KEY".into(), "sk-live-123456".into())],
        };
        for shown in [format!("{launch:?}"), format!("{:?}", command_of(&launch))] {
            assert!(shown.contains("API_KEY"), "{shown}");
            assert!(!shown.contains("sk-live-123456"), "{shown}");
        }
    }
}
