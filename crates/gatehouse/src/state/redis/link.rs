//! The connection to Redis: one multiplexed `ConnectionManager` per replica (it pipelines
//! concurrent commands and reconnects by itself), every command bounded by
//! `redis.command_timeout`, every key under `redis.key_prefix`.

use redis::{FromRedisValue, Script, ScriptInvocation, aio::ConnectionManager};
use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use crate::{
    config::RedisConfig,
    state::{StateError, Unavailable},
};

/// Consecutive failed commands that mark Redis down.
const DOWN_AFTER: u32 = 3;
/// How often a down Redis is asked whether it is back.
const PROBE_EVERY: Duration = Duration::from_secs(1);

pub struct RedisLink {
    manager: ConnectionManager,
    prefix: String,
    timeout: Duration,
    health: Arc<Health>,
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
    pub fn open(config: &RedisConfig) -> Result<Self, StateError> {
        let Some(url) = &config.url else {
            return Err(StateError::Redis(
                "Sentinel (redis.sentinels) is not supported yet; set redis.url".into(),
            ));
        };
        // The error text of a bad URL may quote it, password included: keep only its kind.
        let client = redis::Client::open(url.as_str())
            .map_err(|err| StateError::Redis(format!("redis.url: {:?}", err.kind())))?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.command_timeout.max(Duration::from_secs(1))))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(1);
        let manager = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|err| StateError::Redis(format!("{:?}", err.kind())))?;
        Ok(Self {
            manager,
            prefix: config.key_prefix.clone(),
            timeout: config.command_timeout,
            health: Arc::default(),
        })
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
        let (health, mut manager, timeout) =
            (self.health.clone(), self.manager.clone(), self.timeout);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        drop(runtime.spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
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
        let mut connection = self.manager.clone();
        self.bounded(async move { invocation.invoke_async(&mut connection).await })
            .await
    }

    /// Runs one command.
    pub async fn query<T: FromRedisValue>(&self, command: redis::Cmd) -> Result<T, Unavailable> {
        let mut connection = self.manager.clone();
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
                self.failed();
                Err(Unavailable)
            }
            Err(_) => {
                tracing::debug!(timeout = ?self.timeout, "redis command timed out");
                self.failed();
                Err(Unavailable)
            }
        }
    }
}

/// A script, parsed once.
pub fn script(source: &'static str) -> Script {
    Script::new(source)
}
