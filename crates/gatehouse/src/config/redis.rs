//! `[redis]`: where a cluster keeps its shared runtime state (counters, sessions, replay ids,
//! pin holds, change announcements). Absent, each process keeps its own in memory.
//! Documented in docs/configuration.md ("Cluster").

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::ConfigError;
use gatehouse_model::duration::serde_human;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// A standalone server: `redis://[user:password@]host[:port][/db]`.
    pub url: Option<String>,
    /// Sentinels (`host:port`) that name the master `master_name`; instead of `url`.
    pub sentinels: Vec<String>,
    pub master_name: Option<String>,
    /// Prefix of every key and channel, so deployments can share one Redis.
    pub key_prefix: String,
    /// Longest a command may take before it counts as failed.
    #[serde(with = "serde_human")]
    pub command_timeout: Duration,
    /// What stateful policies do while Redis cannot be reached.
    pub on_outage: OnOutage,
}

/// `redis.on_outage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnOutage {
    /// Each replica counts on its own at its share of the limit.
    #[default]
    Local,
    /// Stateful policies refuse (`state_unavailable`) until Redis is back.
    Closed,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            sentinels: Vec::new(),
            master_name: None,
            key_prefix: "gatehouse:".into(),
            command_timeout: Duration::from_millis(100),
            on_outage: OnOutage::Local,
        }
    }
}

impl RedisConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |text: &str| Err(ConfigError::Invalid(format!("redis: {text}")));
        match (&self.url, self.sentinels.is_empty(), &self.master_name) {
            (Some(url), true, None) => {
                if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                    // The URL may hold a password: name the problem, not the value.
                    return invalid("redis.url must start with redis:// or rediss://");
                }
            }
            (None, false, Some(name)) if !name.is_empty() => {
                if self.sentinels.iter().any(|s| s.rsplit_once(':').is_none()) {
                    return invalid("each of redis.sentinels must be host:port");
                }
            }
            (None, true, None) => {
                return invalid("set redis.url, or redis.sentinels and redis.master_name");
            }
            _ => {
                return invalid(
                    "set either redis.url or redis.sentinels with redis.master_name, not both",
                );
            }
        }
        if self.key_prefix.is_empty() || self.key_prefix.len() > 64 {
            return invalid("redis.key_prefix must be 1 to 64 bytes");
        }
        if self.command_timeout.is_zero() {
            return invalid("redis.command_timeout must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(edit: impl FnOnce(&mut RedisConfig)) -> Result<(), ConfigError> {
        let mut config = RedisConfig {
            url: Some("redis://127.0.0.1:6379".into()),
            ..RedisConfig::default()
        };
        edit(&mut config);
        config.validate()
    }

    #[test]
    fn a_standalone_url_or_sentinels_with_a_master_name_is_required() {
        assert!(with(|_| {}).is_ok());
        assert!(with(|c| c.url = None).is_err(), "nothing named");
        assert!(with(|c| c.url = Some("http://x".into())).is_err());
        assert!(
            with(|c| {
                c.url = None;
                c.sentinels = vec!["127.0.0.1:26379".into()];
                c.master_name = Some("main".into());
            })
            .is_ok()
        );
        assert!(
            with(|c| {
                c.sentinels = vec!["127.0.0.1:26379".into()];
                c.master_name = Some("main".into());
            })
            .is_err(),
            "both"
        );
        assert!(
            with(|c| {
                c.url = None;
                c.sentinels = vec!["127.0.0.1:26379".into()];
            })
            .is_err(),
            "sentinels without a master name"
        );
        assert!(with(|c| c.key_prefix = String::new()).is_err());
        assert!(with(|c| c.command_timeout = Duration::ZERO).is_err());
    }

    #[test]
    fn a_refused_url_is_not_echoed() {
        let refused = with(|c| c.url = Some("http://user:s3cret@host".into())).unwrap_err();
        assert!(!refused.to_string().contains("s3cret"), "{refused}");
    }

    // figment's Jail returns its own large error type.
    #[allow(clippy::result_large_err)]
    #[test]
    fn redis_is_set_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("GATEHOUSE_REDIS__URL", "redis://127.0.0.1:6379");
            jail.set_env("GATEHOUSE_REDIS__KEY_PREFIX", "blue:");
            let config = crate::config::Config::load(None).unwrap();
            let redis = config.redis.expect("[redis] from GATEHOUSE_REDIS__*");
            assert_eq!(redis.url.as_deref(), Some("redis://127.0.0.1:6379"));
            assert_eq!(redis.key_prefix, "blue:");
            Ok(())
        });
    }
}
