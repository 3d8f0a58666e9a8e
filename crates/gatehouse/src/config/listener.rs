//! `[http]`: limits of the public listener (and the admin listener), so slow, large or
//! numerous clients cannot hold the server. Documented in docs/configuration.md.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::ConfigError;
use gatehouse_model::duration::serde_human;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Time to receive a request head; also how long a kept-alive connection may sit idle.
    #[serde(with = "serde_human")]
    pub header_read_timeout: Duration,
    /// Time to receive a request body once its head has arrived (408 after it).
    #[serde(with = "serde_human")]
    pub body_read_timeout: Duration,
    /// Largest request line plus headers (431 above it).
    pub max_header_bytes: usize,
    /// Open connections at most; beyond it the oldest idle one is closed, or the newcomer
    /// answered 503 when none is idle.
    pub max_connections: usize,
    /// Gateway requests processed at once at most; beyond it 503 `overloaded`.
    pub max_concurrent_requests: usize,
    /// Password checks (argon2id, tens of milliseconds of CPU each) running at once at most.
    pub max_concurrent_logins: usize,
    /// Failed sign-ins allowed per client address, and per username, within `login_window`
    /// before further attempts are refused (429) until the window has passed.
    pub login_max_failures: u32,
    #[serde(with = "serde_human")]
    pub login_window: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            max_connections: 4096,
            max_concurrent_requests: 1024,
            max_concurrent_logins: 2,
            login_max_failures: 10,
            login_window: Duration::from_secs(300),
        }
    }
}

impl HttpConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("header_read_timeout", !self.header_read_timeout.is_zero()),
            ("body_read_timeout", !self.body_read_timeout.is_zero()),
            ("max_header_bytes", self.max_header_bytes >= 1024),
            ("max_connections", self.max_connections > 0),
            ("max_concurrent_requests", self.max_concurrent_requests > 0),
            ("max_concurrent_logins", self.max_concurrent_logins > 0),
            ("login_max_failures", self.login_max_failures > 0),
            ("login_window", !self.login_window.is_zero()),
        ];
        match positive.iter().find(|(_, ok)| !ok) {
            Some((key, _)) => Err(ConfigError::Invalid(format!(
                "http.{key} must be positive (max_header_bytes at least 1024)"
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_limits_are_refused() {
        let config = HttpConfig {
            max_connections: 0,
            ..HttpConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("http.max_connections"), "{err}");
        HttpConfig::default().validate().unwrap();
    }
}
