//! `[shutdown]`: how a stopping server leaves its load balancer and finishes its work.
//! Documented in docs/configuration.md (and docs/deploy.md for rolling restarts).

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::ConfigError;
use gatehouse_model::duration::serde_human;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// After the stop signal `/readyz` answers 503 `draining` while requests are still
    /// accepted for this long, so a load balancer stops sending new ones before the listener
    /// closes (its probe period, or Kubernetes' endpoint propagation).
    #[serde(with = "serde_human")]
    pub ready_delay: Duration,
    /// Once accepting has stopped, requests and streams in flight get this long to finish;
    /// the rest are cut (outcome `shutdown`).
    #[serde(with = "serde_human")]
    pub drain_timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            ready_delay: Duration::ZERO,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

impl ShutdownConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        // An hour is far beyond any orchestrator's grace period: a larger value is a typo
        // (`30m` for `30s`) that would keep a stopping replica around for good.
        let hour = Duration::from_secs(3_600);
        if self.ready_delay > hour || self.drain_timeout > hour {
            return Err(ConfigError::Invalid(
                "shutdown.ready_delay and shutdown.drain_timeout must be at most 1h".into(),
            ));
        }
        Ok(())
    }
}
