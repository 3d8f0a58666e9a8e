//! Legacy sessions in Redis, so a session opened through one replica continues through any:
//! `P s:{server}:{id}` holds the owner's hash (expiring after the idle timeout) and
//! `P so:{server}:{owner hash}` the owner's sessions by last use, for the per-owner cap.
//!
//! Every binding is also kept in this replica's memory: while Redis does not answer, the
//! sessions opened here keep working here (another replica answers 404 and the client
//! re-initialises, the specification's answer to a lost session).

use sha2::{Digest, Sha256};
use std::sync::Arc;

use super::link::RedisLink;
use crate::state::{Owner, SessionCheck, SessionStore, StateFuture, memory::MemorySessions};

/// An owner as key material: each part with its length, so no two owners encode alike.
pub fn owner_hash(owner: Owner<'_>) -> String {
    let part = |text: Option<&str>| match text {
        Some(text) => format!("{}:{text}", text.len()),
        None => "-".to_owned(),
    };
    let encoded = format!("{}|{}", part(owner.client), part(owner.subject));
    hex::encode(&Sha256::digest(encoded.as_bytes())[..16])
}

pub struct RedisSessions {
    link: Arc<RedisLink>,
    local: MemorySessions,
    /// Bound here while Redis did not answer: (server, id, owner hash, when), written to
    /// Redis after its next answer so other replicas know them again.
    unsynced: parking_lot::Mutex<Vec<(String, String, String, i64)>>,
    idle_ms: i64,
    max_per_owner: usize,
}

impl RedisSessions {
    pub fn new(link: Arc<RedisLink>, max_per_owner: usize, idle_ms: i64) -> Self {
        Self {
            link,
            local: MemorySessions::new(max_per_owner),
            unsynced: parking_lot::Mutex::default(),
            idle_ms: idle_ms.max(1),
            max_per_owner: max_per_owner.max(1),
        }
    }

    /// Binds in Redis; `None` when it did not answer.
    async fn bind_shared(
        &self,
        server: &str,
        session_id: &str,
        hash: &str,
        now_ms: i64,
    ) -> Option<usize> {
        let mut invocation = self
            .link
            .scripts
            .session_bind
            .key(self.session_key(server, session_id));
        invocation
            .key(format!("{}{hash}", self.owners_prefix(server)))
            .arg(session_id)
            .arg(hash)
            .arg(now_ms)
            .arg(self.idle_ms)
            .arg(self.max_per_owner)
            .arg(self.link.key(format_args!("s:{server}:")));
        self.link.invoke::<usize>(invocation).await.ok()
    }

    fn is_unsynced(&self, server: &str, session_id: &str) -> bool {
        self.unsynced
            .lock()
            .iter()
            .any(|(s, id, ..)| s == server && id == session_id)
    }

    /// Writes the bindings made during an outage, now that Redis answers again.
    async fn write_unsynced(&self) {
        let pending = std::mem::take(&mut *self.unsynced.lock());
        for (server, id, hash, at) in pending {
            if self.bind_shared(&server, &id, &hash, at).await.is_none() {
                self.unsynced.lock().push((server, id, hash, at));
            }
        }
    }

    fn session_key(&self, server: &str, id: &str) -> String {
        self.link.key(format_args!("s:{server}:{id}"))
    }

    fn owners_prefix(&self, server: &str) -> String {
        self.link.key(format_args!("so:{server}:"))
    }
}

impl SessionStore for RedisSessions {
    fn bind<'a>(
        &'a self,
        server: &'a Arc<str>,
        session_id: &'a str,
        owner: Owner<'a>,
        now_ms: i64,
    ) -> StateFuture<'a, usize> {
        let evicted_here = self.local.bind_now(server, session_id, owner, now_ms);
        StateFuture::pending(async move {
            let hash = owner_hash(owner);
            if !self.link.is_down() && !self.unsynced.lock().is_empty() {
                self.write_unsynced().await;
            }
            match self.bind_shared(server, session_id, &hash, now_ms).await {
                Some(evicted) => evicted,
                None => {
                    self.unsynced.lock().push((
                        server.to_string(),
                        session_id.to_owned(),
                        hash,
                        now_ms,
                    ));
                    evicted_here
                }
            }
        })
    }

    fn check<'a>(
        &'a self,
        server: &'a str,
        session_id: &'a str,
        owner: Owner<'a>,
        now_ms: i64,
    ) -> StateFuture<'a, SessionCheck> {
        StateFuture::pending(async move {
            let hash = owner_hash(owner);
            let mut invocation = self
                .link
                .scripts
                .session_check
                .key(self.session_key(server, session_id));
            invocation
                .key(format!("{}{hash}", self.owners_prefix(server)))
                .arg(&hash)
                .arg(session_id)
                .arg(now_ms)
                .arg(self.idle_ms);
            if !self.link.is_down() && !self.unsynced.lock().is_empty() {
                self.write_unsynced().await;
            }
            match self.link.invoke::<i64>(invocation).await {
                Ok(1) => {
                    // Kept fresh here too, for a later outage.
                    let _ = self.local.check_now(server, session_id, owner, now_ms);
                    SessionCheck::Owned
                }
                // Bound here during an outage and not yet written back: this copy knows.
                Ok(_) if self.is_unsynced(server, session_id) => {
                    self.local.check_now(server, session_id, owner, now_ms)
                }
                Ok(_) => SessionCheck::NotFound,
                Err(_) => self.local.check_now(server, session_id, owner, now_ms),
            }
        })
    }

    fn remove<'a>(&'a self, server: &'a str, session_id: &'a str) -> StateFuture<'a, ()> {
        self.local.remove_now(server, session_id);
        StateFuture::pending(async move {
            let mut invocation = self
                .link
                .scripts
                .session_remove
                .key(self.session_key(server, session_id));
            invocation.arg(session_id).arg(self.owners_prefix(server));
            let _: Result<i64, _> = self.link.invoke(invocation).await;
        })
    }

    fn is_live<'a>(&'a self, server: &'a str, session_id: &'a str) -> StateFuture<'a, bool> {
        StateFuture::pending(async move {
            let mut exists = redis::cmd("EXISTS");
            exists.arg(self.session_key(server, session_id));
            match self.link.query::<i64>(exists).await {
                Ok(found) => found > 0 || self.is_unsynced(server, session_id),
                // Unanswered: this replica's copy decides, and it keeps what it bound here.
                Err(_) => self.local.is_live_now(server, session_id),
            }
        })
    }

    fn sweep(&self, cutoff_ms: i64) -> usize {
        // Redis expires its keys itself; only the local copies need sweeping.
        self.local.sweep(cutoff_ms)
    }

    fn len(&self) -> usize {
        self.local.len()
    }
}
