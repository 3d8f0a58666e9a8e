//! Pin holds shared through Redis: a definition held on one replica is held on every replica
//! at once, before any snapshot records it. The holds live in the hash `P pins`
//! (`server \0 tool` → definition hash); a hold is written there and announced on `P events`
//! (`pins`), and each replica copies the hash into its own memory, which `is_held` reads
//! synchronously. The store still records each held definition (`pinning.rs`), so once the
//! snapshot carries it the holds are forgotten here and in Redis.

use std::{
    collections::HashMap,
    sync::{Arc, Weak},
};

use super::link::RedisLink;
use crate::state::{PinHolds, ServerPins, memory::MemoryPinHolds};

/// What a replica publishes on `P events` when it holds a definition.
pub const PINS_MESSAGE: &str = "pins";

pub struct RedisPinHolds {
    link: Arc<RedisLink>,
    channel: String,
    local: MemoryPinHolds,
    /// For the tasks that write to Redis after `hold` or `forget_recorded` returned.
    me: Weak<RedisPinHolds>,
}

impl RedisPinHolds {
    pub fn new(link: Arc<RedisLink>, channel: String) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            link,
            channel,
            local: MemoryPinHolds::default(),
            me: me.clone(),
        })
    }

    fn hash_key(&self) -> String {
        self.link.key(format_args!("pins"))
    }

    /// Copies every hold in Redis into this replica's memory (on an announcement, and on
    /// (re)subscribing, for what was announced meanwhile).
    pub async fn refresh(&self) {
        let mut all = redis::cmd("HGETALL");
        all.arg(self.hash_key());
        let Ok(held) = self.link.query::<HashMap<String, String>>(all).await else {
            return;
        };
        for (field, hash) in held {
            if let Some((server, tool)) = field.split_once('\0') {
                self.local.hold(server, tool, &hash);
            }
        }
    }

    /// Runs `work` after the caller returned: holds are consulted on the request path, which
    /// must not wait for Redis.
    fn in_background<F>(&self, work: impl FnOnce(Arc<Self>) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (Some(me), Ok(runtime)) = (self.me.upgrade(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        drop(runtime.spawn(work(me)));
    }
}

impl PinHolds for RedisPinHolds {
    fn hold(&self, server: &str, tool: &str, hash: &str) {
        self.local.hold(server, tool, hash);
        let field = format!("{server}\0{tool}");
        let hash = hash.to_owned();
        self.in_background(move |me| async move {
            let mut set = redis::cmd("HSET");
            set.arg(me.hash_key()).arg(&field).arg(&hash);
            let mut publish = redis::cmd("PUBLISH");
            publish.arg(&me.channel).arg(PINS_MESSAGE);
            if me.link.query::<i64>(set).await.is_err()
                || me.link.query::<i64>(publish).await.is_err()
            {
                tracing::debug!("a pin hold is known to this replica only until the snapshot");
            }
        });
    }

    fn is_held(&self, server: &str, tool: &str, pins: &ServerPins) -> bool {
        self.local.is_held(server, tool, pins)
    }

    fn forget_recorded(&self, server: &str, pins: &ServerPins) {
        self.local.forget_recorded(server, pins);
        let approved = pins.approved.clone();
        let pending = pins.pending.clone();
        let server = server.to_owned();
        self.in_background(move |me| async move {
            let mut all = redis::cmd("HGETALL");
            all.arg(me.hash_key());
            let Ok(held) = me.link.query::<HashMap<String, String>>(all).await else {
                return;
            };
            for (field, hash) in held {
                let Some((held_server, tool)) = field.split_once('\0') else {
                    continue;
                };
                let settled = held_server == server
                    && (pending.contains(tool)
                        || approved
                            .get(tool)
                            .is_some_and(|a| a.as_deref() == Some(&*hash)));
                if settled {
                    let mut forget = redis::cmd("HDEL");
                    forget.arg(me.hash_key()).arg(&field);
                    let _: Result<i64, _> = me.link.query(forget).await;
                }
            }
        });
    }

    fn len(&self) -> usize {
        self.local.len()
    }
}
