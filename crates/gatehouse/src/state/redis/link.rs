//! The connection to Redis: one multiplexed `ConnectionManager` per replica (it pipelines
//! concurrent commands and reconnects by itself), every command bounded by
//! `redis.command_timeout`, every key under `redis.key_prefix`.
//!
//! With Sentinel the master is asked of the sentinels, and asked again (at most once a
//! second) after a command fails, which is how a failover is followed: the old master
//! refuses writes (`READONLY`) or is gone.

use parking_lot::{Mutex, RwLock};
use redis::{FromRedisValue, Script, ScriptInvocation, aio::ConnectionManager};
use std::{
    future::Future,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{
    config::RedisConfig,
    state::{StateError, Unavailable},
};

/// Consecutive failed commands that mark Redis down.
const DOWN_AFTER: u32 = 3;
/// How often a down Redis is asked whether it is back.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Sentinel: the master is asked again at most this often.
const RESOLVE_EVERY: Duration = Duration::from_secs(1);

pub struct RedisLink {
    target: Target,
    /// The current master's connection; `None` until a sentinel has named one.
    manager: RwLock<Option<(String, ConnectionManager)>>,
    resolved_at: Mutex<Option<Instant>>,
    prefix: String,
    timeout: Duration,
    health: Arc<Health>,
    me: Weak<RedisLink>,
    /// The Lua scripts, parsed and hashed once for this link (not as globals).
    pub(super) scripts: Scripts,
}

/// Every script Gatehouse runs on Redis (`scripts/*.lua`).
pub(super) struct Scripts {
    pub gcra: Script,
    pub gcra_give_back: Script,
    pub quota: Script,
    pub quota_refund: Script,
    pub session_bind: Script,
    pub session_check: Script,
    pub session_remove: Script,
    pub task_record: Script,
}

impl Scripts {
    fn load() -> Self {
        Self {
            gcra: Script::new(include_str!("scripts/gcra.lua")),
            gcra_give_back: Script::new(include_str!("scripts/gcra_give_back.lua")),
            quota: Script::new(include_str!("scripts/quota.lua")),
            quota_refund: Script::new(include_str!("scripts/quota_refund.lua")),
            session_bind: Script::new(include_str!("scripts/session_bind.lua")),
            session_check: Script::new(include_str!("scripts/session_check.lua")),
            session_remove: Script::new(include_str!("scripts/session_remove.lua")),
            task_record: Script::new(include_str!("scripts/task_record.lua")),
        }
    }
}

enum Target {
    Standalone,
    Sentinel {
        sentinels: Vec<String>,
        master_name: String,
    },
}

/// Whether Redis answers. While it is down, commands fail at once (each caller takes its
/// fallback without waiting out a timeout) and one probe a second looks for its return.
#[derive(Default)]
struct Health {
    failures: AtomicU32,
    down: AtomicBool,
}

impl RedisLink {
    /// Builds the link without connecting: a Redis that is down at start is reached once it
    /// is back, and until then its commands fail like any other.
    pub fn open(config: &RedisConfig) -> Result<Arc<Self>, StateError> {
        let (target, manager) = match (&config.url, &config.master_name) {
            (Some(url), _) => (
                Target::Standalone,
                Some((url.clone(), manager_for(url, config.command_timeout)?)),
            ),
            (None, Some(master_name)) => (
                Target::Sentinel {
                    sentinels: config.sentinels.clone(),
                    master_name: master_name.clone(),
                },
                None,
            ),
            (None, None) => {
                return Err(StateError::Redis(
                    "set redis.url, or redis.sentinels and redis.master_name".into(),
                ));
            }
        };
        Ok(Arc::new_cyclic(|me| Self {
            target,
            manager: RwLock::new(manager),
            resolved_at: Mutex::new(None),
            prefix: config.key_prefix.clone(),
            timeout: config.command_timeout,
            health: Arc::default(),
            me: me.clone(),
            scripts: Scripts::load(),
        }))
    }

    /// The current master: its URL (for the subscription) and connection.
    pub async fn master(&self) -> Option<(String, ConnectionManager)> {
        if let Some(current) = self.manager.read().clone() {
            return Some(current);
        }
        let Target::Sentinel {
            sentinels,
            master_name,
        } = &self.target
        else {
            return None;
        };
        *self.resolved_at.lock() = Some(Instant::now());
        for sentinel in sentinels {
            let Some((host, port)) = self.ask_sentinel(sentinel, master_name).await else {
                continue;
            };
            let url = format!("redis://{host}:{port}");
            let Ok(manager) = manager_for(&url, self.timeout) else {
                continue;
            };
            tracing::info!(master = %format!("{host}:{port}"), "redis master named by sentinel");
            *self.manager.write() = Some((url.clone(), manager.clone()));
            return Some((url, manager));
        }
        None
    }

    async fn ask_sentinel(&self, sentinel: &str, master_name: &str) -> Option<(String, u16)> {
        let client = redis::Client::open(format!("redis://{sentinel}")).ok()?;
        let asked = async {
            let mut connection = client.get_multiplexed_async_connection().await?;
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(master_name)
                .query_async::<Option<(String, u16)>>(&mut connection)
                .await
        };
        match tokio::time::timeout(self.timeout.max(Duration::from_millis(500)), asked).await {
            Ok(Ok(master)) => master,
            _ => None,
        }
    }

    /// After a failed command under Sentinel: ask for the master again (at most once a
    /// second), in case it moved.
    fn forget_master(&self) {
        if matches!(self.target, Target::Standalone) {
            return;
        }
        let recent = self
            .resolved_at
            .lock()
            .is_some_and(|at| at.elapsed() < RESOLVE_EVERY);
        if !recent {
            *self.manager.write() = None;
        }
    }

    /// Marked down after [`DOWN_AFTER`] consecutive failures, until a probe succeeds.
    pub fn is_down(&self) -> bool {
        self.health.down.load(Ordering::Relaxed)
    }

    fn failed(&self) {
        let failures = self.health.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < DOWN_AFTER || self.health.down.swap(true, Ordering::Relaxed) {
            return;
        }
        tracing::warn!(
            failures,
            "redis unreachable; shared state falls back (docs/cluster.md) until it answers"
        );
        let (health, me, timeout) = (self.health.clone(), self.me.clone(), self.timeout);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        drop(runtime.spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                let Some(link) = me.upgrade() else {
                    return;
                };
                link.forget_master();
                let Some((_, mut manager)) = link.master().await else {
                    continue;
                };
                let ping = redis::cmd("PING");
                let answer = tokio::time::timeout(
                    timeout.max(Duration::from_millis(500)),
                    ping.query_async::<String>(&mut manager),
                )
                .await;
                if let Ok(Ok(_)) = answer {
                    health.failures.store(0, Ordering::Relaxed);
                    health.down.store(false, Ordering::Relaxed);
                    tracing::info!("redis reachable again; shared state resumes");
                    return;
                }
            }
        }));
    }

    /// `prefix` + `rest`.
    pub fn key(&self, rest: std::fmt::Arguments<'_>) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// Runs a script (EVALSHA, loading it on `NOSCRIPT`).
    pub async fn invoke<T: FromRedisValue>(
        &self,
        invocation: ScriptInvocation<'_>,
    ) -> Result<T, Unavailable> {
        let mut connection = self.connection().await?;
        self.bounded(async move { invocation.invoke_async(&mut connection).await })
            .await
    }

    async fn connection(&self) -> Result<ConnectionManager, Unavailable> {
        if self.is_down() {
            return Err(Unavailable);
        }
        match self.master().await {
            Some((_, manager)) => Ok(manager),
            None => {
                self.failed();
                Err(Unavailable)
            }
        }
    }

    /// Runs one command.
    pub async fn query<T: FromRedisValue>(&self, command: redis::Cmd) -> Result<T, Unavailable> {
        let mut connection = self.connection().await?;
        self.bounded(async move { command.query_async(&mut connection).await })
            .await
    }

    async fn bounded<T>(
        &self,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Unavailable> {
        if self.is_down() {
            return Err(Unavailable);
        }
        match tokio::time::timeout(self.timeout, command).await {
            Ok(Ok(answer)) => {
                self.health.failures.store(0, Ordering::Relaxed);
                Ok(answer)
            }
            Ok(Err(err)) => {
                tracing::debug!(kind = ?err.kind(), "redis command failed");
                self.forget_master();
                self.failed();
                Err(Unavailable)
            }
            Err(_) => {
                tracing::debug!(timeout = ?self.timeout, "redis command timed out");
                self.forget_master();
                self.failed();
                Err(Unavailable)
            }
        }
    }
}

fn manager_for(url: &str, timeout: Duration) -> Result<ConnectionManager, StateError> {
    // The error text of a bad URL may quote it, password included: keep only its kind.
    let client = redis::Client::open(url)
        .map_err(|err| StateError::Redis(format!("redis.url: {:?}", err.kind())))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout.max(Duration::from_secs(1))))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1);
    ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|err| StateError::Redis(format!("{:?}", err.kind())))
}
