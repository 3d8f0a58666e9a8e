//! The connection to Redis: one multiplexed `ConnectionManager` per replica (it pipelines
//! concurrent commands and reconnects by itself), every command bounded by
//! `redis.command_timeout`, every key under `redis.key_prefix`.

use redis::{FromRedisValue, Script, ScriptInvocation, aio::ConnectionManager};
use std::{future::Future, time::Duration};

use crate::{
    config::RedisConfig,
    state::{StateError, Unavailable},
};

pub struct RedisLink {
    manager: ConnectionManager,
    prefix: String,
    timeout: Duration,
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
        })
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
        match tokio::time::timeout(self.timeout, command).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(err)) => {
                tracing::debug!(kind = ?err.kind(), "redis command failed");
                Err(Unavailable)
            }
            Err(_) => {
                tracing::debug!(timeout = ?self.timeout, "redis command timed out");
                Err(Unavailable)
            }
        }
    }
}

/// A script, parsed once.
pub fn script(source: &'static str) -> Script {
    Script::new(source)
}
