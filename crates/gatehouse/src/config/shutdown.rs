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
        // (`30h` for `30s`) that would keep a stopping replica around for good.
        let hour = Duration::from_secs(3_600);
        if self.ready_delay > hour || self.drain_timeout > hour {
            return Err(ConfigError::Invalid(
                "shutdown.ready_delay and shutdown.drain_timeout must be at most 1h".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
// figment::Jail fixes the closure's error type; its size is not ours to choose.
#[allow(clippy::result_large_err)]
mod tests {
    use super::super::Config;
    use std::time::Duration;

    #[test]
    fn shutdown_settings_come_from_the_file_and_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("g.toml", "[shutdown]\ndrain_timeout = \"45s\"\n")?;
            jail.set_env("GATEHOUSE_SHUTDOWN__READY_DELAY", "5s");
            let config = Config::load(Some(std::path::Path::new("g.toml"))).unwrap();
            assert_eq!(config.shutdown.ready_delay, Duration::from_secs(5));
            assert_eq!(config.shutdown.drain_timeout, Duration::from_secs(45));
            jail.set_env("GATEHOUSE_SHUTDOWN__READY_DELAY", "2h");
            let err = Config::load(Some(std::path::Path::new("g.toml"))).unwrap_err();
            assert!(err.to_string().contains("at most 1h"), "{err}");
            Ok(())
        });
    }
}
