//! `[telemetry]`: OpenTelemetry traces sent as OTLP over HTTP (protobuf), off unless
//! `otlp_endpoint` is set; `[log] format`. Documented in docs/configuration.md and
//! docs/observability.md.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use gatehouse_model::duration::serde_human;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); spans go to
    /// `{otlp_endpoint}/v1/traces`. Absent: no traces, and nothing on the request path.
    /// Headers for the collector (credentials) come from `OTEL_EXPORTER_OTLP_HEADERS` or
    /// `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, never from this file.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of every span.
    pub service_name: String,
    /// Share of traces started here that are kept (0.0–1.0); a caller's sampled flag wins.
    pub sample_ratio: f64,
    /// How often finished spans are sent.
    #[serde(with = "serde_human")]
    pub export_interval: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "gatehouse".into(),
            sample_ratio: 1.0,
            export_interval: Duration::from_secs(5),
        }
    }
}

impl TelemetryConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(format!(
                "telemetry.sample_ratio {} must be between 0 and 1",
                self.sample_ratio
            ));
        }
        if self.export_interval.is_zero() {
            return Err("telemetry.export_interval must be positive".into());
        }
        if let Some(endpoint) = &self.otlp_endpoint {
            let uri = http::Uri::try_from(endpoint.as_str())
                .map_err(|e| format!("telemetry.otlp_endpoint {endpoint:?}: {e}"))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(format!(
                    "telemetry.otlp_endpoint {endpoint:?} must be an absolute http(s) URL"
                ));
            }
        }
        Ok(())
    }

    /// Where spans are posted.
    pub fn traces_url(&self) -> Option<String> {
        self.otlp_endpoint
            .as_deref()
            .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (`tracing-subscriber`'s JSON format).
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_bad_settings_are_refused() {
        let config = TelemetryConfig::default();
        assert_eq!(config.traces_url(), None);
        assert!(config.validate().is_ok());
        let with = |adjust: fn(&mut TelemetryConfig)| {
            let mut config = TelemetryConfig::default();
            adjust(&mut config);
            config.validate()
        };
        assert!(with(|c| c.sample_ratio = 1.5).is_err());
        assert!(with(|c| c.sample_ratio = -0.1).is_err());
        assert!(with(|c| c.export_interval = Duration::ZERO).is_err());
        assert!(with(|c| c.otlp_endpoint = Some("collector:4318".into())).is_err());
        assert!(with(|c| c.otlp_endpoint = Some("ftp://collector".into())).is_err());
        let config = TelemetryConfig {
            otlp_endpoint: Some("http://collector:4318/".into()),
            ..TelemetryConfig::default()
        };
        assert!(config.validate().is_ok());
        assert_eq!(
            config.traces_url().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
    }
}
