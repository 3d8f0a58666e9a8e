//! Legacy MCP sessions (2025-03-26 … 2025-11-25), bound to the principal that opened them.
//!
//! The upstream issues `Mcp-Session-Id` on its `initialize` response; Gatehouse records who
//! received it: the client, and the person a token acts for (see [`Owner`]). A session id
//! presented by anyone else, or one Gatehouse does not know (for example after a restart),
//! gets 404, which the specification tells clients to answer by re-initialising. Session ids
//! are never treated as credentials.
//!
//! Each owner keeps at most `max_per_owner` sessions per server: opening one more forgets the
//! owner's least recently used session (whose next request gets 404 and re-initialises), so a
//! client that never sends DELETE cannot grow the map without bound, and nobody else's
//! sessions are touched.

use parking_lot::RwLock;
use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
};

use crate::state::{Owner, OwnerId, SessionCheck, SessionStore, StateFuture};

/// Sessions one owner may hold on one server when the configuration does not say.
pub const DEFAULT_MAX_PER_OWNER: usize = crate::config::DEFAULT_MAX_SESSIONS_PER_OWNER;

#[derive(Debug)]
struct Binding {
    owner: OwnerId,
    last_seen_ms: AtomicI64,
}

/// One server's sessions, by id and by owner (the owner index bounds what a cap scans).
#[derive(Debug, Default)]
struct ServerSessions {
    by_id: HashMap<String, Binding>,
    by_owner: HashMap<OwnerId, HashSet<String>>,
}

impl ServerSessions {
    fn forget(&mut self, session_id: &str) -> bool {
        let Some(binding) = self.by_id.remove(session_id) else {
            return false;
        };
        if let Some(ids) = self.by_owner.get_mut(&binding.owner) {
            ids.remove(session_id);
            if ids.is_empty() {
                self.by_owner.remove(&binding.owner);
            }
        }
        true
    }

    /// The owner's least recently used session.
    fn oldest_of(&self, owner: &OwnerId) -> Option<String> {
        self.by_owner
            .get(owner)?
            .iter()
            .filter_map(|id| {
                let binding = self.by_id.get(id)?;
                Some((binding.last_seen_ms.load(Ordering::Relaxed), id))
            })
            .min()
            .map(|(_, id)| id.clone())
    }
}

#[derive(Debug)]
pub struct MemorySessions {
    /// Keyed by server, then session id: a lookup borrows both and allocates nothing.
    servers: RwLock<HashMap<Arc<str>, ServerSessions>>,
    max_per_owner: usize,
}

impl Default for MemorySessions {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PER_OWNER)
    }
}

impl MemorySessions {
    pub fn new(max_per_owner: usize) -> Self {
        Self {
            servers: RwLock::default(),
            max_per_owner: max_per_owner.max(1),
        }
    }
}

impl MemorySessions {
    /// [`SessionStore::bind`], answered at once.
    pub fn bind_now(
        &self,
        server: &Arc<str>,
        session_id: &str,
        owner: Owner<'_>,
        now_ms: i64,
    ) -> usize {
        let owner = OwnerId::from(owner);
        let mut servers = self.servers.write();
        let sessions = servers.entry(server.clone()).or_default();
        // An upstream reusing an id hands it to the new owner only.
        sessions.forget(session_id);
        let mut evicted = 0;
        while sessions
            .by_owner
            .get(&owner)
            .is_some_and(|ids| ids.len() >= self.max_per_owner)
        {
            let Some(oldest) = sessions.oldest_of(&owner) else {
                break;
            };
            sessions.forget(&oldest);
            evicted += 1;
        }
        sessions
            .by_owner
            .entry(owner.clone())
            .or_default()
            .insert(session_id.to_owned());
        sessions.by_id.insert(
            session_id.to_owned(),
            Binding {
                owner,
                last_seen_ms: AtomicI64::new(now_ms),
            },
        );
        evicted
    }

    /// [`SessionStore::remove`], done at once.
    pub fn remove_now(&self, server: &str, session_id: &str) {
        let mut servers = self.servers.write();
        if let Some(sessions) = servers.get_mut(server) {
            sessions.forget(session_id);
            if sessions.by_id.is_empty() {
                servers.remove(server);
            }
        }
    }

    /// [`SessionStore::is_live`], answered at once.
    pub fn is_live_now(&self, server: &str, session_id: &str) -> bool {
        self.servers
            .read()
            .get(server)
            .is_some_and(|sessions| sessions.by_id.contains_key(session_id))
    }

    /// [`SessionStore::check`], answered at once.
    pub fn check_now(
        &self,
        server: &str,
        session_id: &str,
        owner: Owner<'_>,
        now_ms: i64,
    ) -> SessionCheck {
        let servers = self.servers.read();
        match servers.get(server).and_then(|s| s.by_id.get(session_id)) {
            Some(binding) if binding.owner.is(owner) => {
                binding.last_seen_ms.store(now_ms, Ordering::Relaxed);
                SessionCheck::Owned
            }
            _ => SessionCheck::NotFound,
        }
    }
}

impl SessionStore for MemorySessions {
    fn bind<'a>(
        &'a self,
        server: &'a Arc<str>,
        session_id: &'a str,
        owner: Owner<'a>,
        now_ms: i64,
    ) -> StateFuture<'a, usize> {
        StateFuture::ready(self.bind_now(server, session_id, owner, now_ms))
    }

    fn check<'a>(
        &'a self,
        server: &'a str,
        session_id: &'a str,
        owner: Owner<'a>,
        now_ms: i64,
    ) -> StateFuture<'a, SessionCheck> {
        StateFuture::ready(self.check_now(server, session_id, owner, now_ms))
    }

    fn remove<'a>(&'a self, server: &'a str, session_id: &'a str) -> StateFuture<'a, ()> {
        self.remove_now(server, session_id);
        StateFuture::ready(())
    }

    fn is_live<'a>(&'a self, server: &'a str, session_id: &'a str) -> StateFuture<'a, bool> {
        StateFuture::ready(self.is_live_now(server, session_id))
    }

    fn sweep(&self, cutoff_ms: i64) -> usize {
        let mut servers = self.servers.write();
        let mut removed = 0;
        for sessions in servers.values_mut() {
            let idle: Vec<String> = sessions
                .by_id
                .iter()
                .filter(|(_, b)| b.last_seen_ms.load(Ordering::Relaxed) < cutoff_ms)
                .map(|(id, _)| id.clone())
                .collect();
            for id in idle {
                removed += usize::from(sessions.forget(&id));
            }
        }
        servers.retain(|_, sessions| !sessions.by_id.is_empty());
        removed
    }

    fn len(&self) -> usize {
        self.servers.read().values().map(|s| s.by_id.len()).sum()
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

    fn user<'a>(client: &'a str, subject: &'a str) -> Owner<'a> {
        Owner {
            client: Some(client),
            subject: Some(subject),
        }
    }

    #[test]
    fn sessions_belong_to_their_owner() {
        let sessions = MemorySessions::default();
        let server: Arc<str> = Arc::from("demo");
        sessions.bind_now(&server, "s1", client("alice"), 0);
        assert_eq!(
            sessions.check_now(&server, "s1", client("alice"), 1),
            SessionCheck::Owned
        );
        assert_eq!(
            sessions.check_now(&server, "s1", client("mallory"), 1),
            SessionCheck::NotFound
        );
        assert_eq!(
            sessions.check_now("other", "s1", client("alice"), 1),
            SessionCheck::NotFound
        );
        assert_eq!(
            sessions.check_now(&server, "s2", client("alice"), 1),
            SessionCheck::NotFound
        );
    }

    #[test]
    fn users_of_one_client_do_not_share_sessions() {
        let sessions = MemorySessions::default();
        let server: Arc<str> = Arc::from("demo");
        sessions.bind_now(&server, "s1", user("app", "usr_a"), 0);
        assert_eq!(
            sessions.check_now(&server, "s1", user("app", "usr_a"), 1),
            SessionCheck::Owned
        );
        assert_eq!(
            sessions.check_now(&server, "s1", user("app", "usr_b"), 1),
            SessionCheck::NotFound
        );
        assert_eq!(
            sessions.check_now(&server, "s1", client("app"), 1),
            SessionCheck::NotFound,
            "the client's own credentials do not reach a user's session"
        );
    }

    #[test]
    fn idle_sessions_are_swept() {
        let sessions = MemorySessions::default();
        let server: Arc<str> = Arc::from("demo");
        sessions.bind_now(&server, "old", client("a"), 10);
        sessions.bind_now(&server, "new", client("a"), 100);
        assert_eq!(sessions.sweep(50), 1);
        assert_eq!(
            sessions.check_now(&server, "new", client("a"), 101),
            SessionCheck::Owned
        );
        assert_eq!(
            sessions.check_now(&server, "old", client("a"), 101),
            SessionCheck::NotFound
        );
        assert_eq!(sessions.sweep(1_000), 1);
        assert!(sessions.is_empty());
    }

    #[test]
    fn the_cap_forgets_the_owners_least_recently_used_session_only() {
        let sessions = MemorySessions::new(2);
        let server: Arc<str> = Arc::from("demo");
        sessions.bind_now(&server, "bob-1", client("bob"), 0);
        sessions.bind_now(&server, "a-1", client("alice"), 1);
        sessions.bind_now(&server, "a-2", client("alice"), 2);
        // a-1 is used again, so a-2 is now the least recently used.
        sessions.check_now(&server, "a-1", client("alice"), 3);
        assert_eq!(sessions.bind_now(&server, "a-3", client("alice"), 4), 1);
        assert_eq!(sessions.len(), 3);
        for (id, owner, expected) in [
            ("a-1", "alice", SessionCheck::Owned),
            ("a-2", "alice", SessionCheck::NotFound),
            ("a-3", "alice", SessionCheck::Owned),
            ("bob-1", "bob", SessionCheck::Owned),
        ] {
            assert_eq!(
                sessions.check_now(&server, id, client(owner), 5),
                expected,
                "{id}"
            );
        }
    }

    #[test]
    fn concurrent_binds_keep_every_owner_within_the_cap_and_to_their_own_sessions() {
        let sessions = MemorySessions::new(8);
        let server: Arc<str> = Arc::from("demo");
        let owners: Vec<String> = (0..4).map(|i| format!("owner-{i}")).collect();
        std::thread::scope(|threads| {
            for (t, name) in owners.iter().enumerate() {
                let (sessions, server) = (&sessions, &server);
                threads.spawn(move || {
                    for n in 0..200i64 {
                        let id = format!("{t}-{n}");
                        sessions.bind_now(server, &id, client(name), n);
                        assert_eq!(
                            sessions.check_now(server, &id, client(name), n),
                            SessionCheck::Owned,
                            "a session just bound is its owner's"
                        );
                        let other = format!("owner-{}", (t + 1) % 4);
                        assert_eq!(
                            sessions.check_now(server, &id, client(&other), n),
                            SessionCheck::NotFound
                        );
                    }
                });
            }
        });
        assert_eq!(sessions.len(), 4 * 8, "each owner keeps its 8 newest");
        for (t, name) in owners.iter().enumerate() {
            for n in 192..200 {
                assert_eq!(
                    sessions.check_now(&server, &format!("{t}-{n}"), client(name), 300),
                    SessionCheck::Owned
                );
            }
        }
    }
}
