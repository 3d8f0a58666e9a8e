//! Legacy MCP sessions (2025-03-26 … 2025-11-25), bound to the principal that opened them.
//!
//! The upstream issues `Mcp-Session-Id` on its `initialize` response; Gatehouse records who
//! received it. A session id presented by anyone else, or one Gatehouse does not know (for
//! example after a restart), gets 404, which the specification tells clients to answer by
//! re-initialising. Session ids are never treated as credentials.

use parking_lot::RwLock;
use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
};

#[derive(Debug)]
struct Binding {
    owner: Arc<str>,
    last_seen_ms: AtomicI64,
}

#[derive(Debug, Default)]
pub struct Sessions {
    bindings: RwLock<HashMap<(Arc<str>, String), Binding>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCheck {
    Owned,
    /// Unknown, or bound to someone else: one answer, so ids cannot be probed.
    NotFound,
}

impl Sessions {
    pub fn bind(&self, server: &Arc<str>, session_id: &str, owner: &str, now_ms: i64) {
        self.bindings.write().insert(
            (server.clone(), session_id.to_owned()),
            Binding {
                owner: Arc::from(owner),
                last_seen_ms: AtomicI64::new(now_ms),
            },
        );
    }

    pub fn check(
        &self,
        server: &Arc<str>,
        session_id: &str,
        owner: &str,
        now_ms: i64,
    ) -> SessionCheck {
        let bindings = self.bindings.read();
        match bindings.get(&(server.clone(), session_id.to_owned())) {
            Some(binding) if &*binding.owner == owner => {
                binding.last_seen_ms.store(now_ms, Ordering::Relaxed);
                SessionCheck::Owned
            }
            _ => SessionCheck::NotFound,
        }
    }

    pub fn remove(&self, server: &Arc<str>, session_id: &str) {
        self.bindings
            .write()
            .remove(&(server.clone(), session_id.to_owned()));
    }

    /// Forgets sessions idle since before `cutoff_ms`.
    pub fn sweep(&self, cutoff_ms: i64) -> usize {
        let mut bindings = self.bindings.write();
        let before = bindings.len();
        bindings.retain(|_, b| b.last_seen_ms.load(Ordering::Relaxed) >= cutoff_ms);
        before - bindings.len()
    }

    pub fn len(&self) -> usize {
        self.bindings.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_belong_to_their_owner() {
        let sessions = Sessions::default();
        let server: Arc<str> = Arc::from("demo");
        sessions.bind(&server, "s1", "alice", 0);
        assert_eq!(
            sessions.check(&server, "s1", "alice", 1),
            SessionCheck::Owned
        );
        assert_eq!(
            sessions.check(&server, "s1", "mallory", 1),
            SessionCheck::NotFound
        );
        assert_eq!(
            sessions.check(&Arc::from("other"), "s1", "alice", 1),
            SessionCheck::NotFound
        );
        assert_eq!(
            sessions.check(&server, "s2", "alice", 1),
            SessionCheck::NotFound
        );
    }

    #[test]
    fn idle_sessions_are_swept() {
        let sessions = Sessions::default();
        let server: Arc<str> = Arc::from("demo");
        sessions.bind(&server, "old", "a", 10);
        sessions.bind(&server, "new", "a", 100);
        assert_eq!(sessions.sweep(50), 1);
        assert_eq!(
            sessions.check(&server, "new", "a", 101),
            SessionCheck::Owned
        );
        assert_eq!(
            sessions.check(&server, "old", "a", 101),
            SessionCheck::NotFound
        );
    }
}
