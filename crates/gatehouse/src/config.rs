//! Configuration: `gatehouse.toml` layered under `GATEHOUSE_*` environment variables.
//!
//! Every key and its default is documented in `docs/configuration.md`; keep the two in step.

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use gatehouse_model::duration::serde_human;

/// Sessions one owner may hold on one server when `gateway.max_sessions_per_owner` is not set.
pub const DEFAULT_MAX_SESSIONS_PER_OWNER: usize = 64;

mod admin;
mod audit;
pub mod audit_sinks;
mod forwarded_header;
mod listener;
mod metrics;
mod oauth;
mod redis;
mod shutdown;
mod telemetry;
mod workload;
pub use admin::{AdminConfig, AdminSignInConfig};
pub use audit::AuditConfig;
pub use forwarded_header::ForwardedHeader;
pub use listener::HttpConfig;
pub use metrics::MetricsConfig;
pub use oauth::{IdentityProviderConfig, OAuthConfig, TrustedIssuerConfig};
pub use redis::{OnOutage, RedisConfig};
pub use shutdown::ShutdownConfig;
pub use telemetry::{LogFormat, TelemetryConfig};
pub use workload::{WorkloadIssuerConfig, WorkloadRule};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP listener binds.
    pub listen: SocketAddr,
    /// Address of the admin listener serving `/metrics` (and `/healthz`, `/readyz`); none: no
    /// `/metrics` at all. Bind it where only operators reach.
    pub admin_listen: Option<SocketAddr>,
    /// The URL clients use to reach this Gatehouse. Each server's MCP URL
    /// (`{public_url}/{server}/mcp`) is derived from it and becomes its OAuth resource id.
    pub public_url: String,
    /// Directory for the SQLite database and the master key file.
    pub data_dir: PathBuf,
    /// Overrides the database location; default `sqlite://{data_dir}/gatehouse.db`.
    pub database_url: Option<String>,
    /// Most connections this process opens to a PostgreSQL store (SQLite keeps its own).
    pub database_max_connections: u32,
    /// Names this process's heartbeat row (`gatehouse status`); default: random at start.
    pub replica_id: Option<String>,
    pub gateway: GatewayConfig,
    pub http: HttpConfig,
    pub audit: AuditConfig,
    pub snapshot: SnapshotConfig,
    pub policy: PolicyConfig,
    pub metrics: MetricsConfig,
    pub oauth: OAuthConfig,
    pub log: LogConfig,
    pub shutdown: ShutdownConfig,
    /// OpenTelemetry traces; off unless `otlp_endpoint` is set.
    pub telemetry: TelemetryConfig,
    /// Shared runtime state for a cluster; absent: in this process's memory.
    pub redis: Option<RedisConfig>,
    /// The admin listener's operator sign-in (`[admin.sign_in]`).
    pub admin: AdminConfig,
}

/// 2,000 proofs a second over the longest proof window (300 s old plus 60 s of clock skew).
pub const DEFAULT_DPOP_REPLAY_CAPACITY: usize = 720_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Proxies whose `Forwarded` / `X-Forwarded-For` headers are believed (CIDRs). Requests
    /// from anyone else are judged by their TCP peer address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The one header the trusted proxies write (`x-forwarded-for` or `forwarded`); the other
    /// is ignored, since a client can send it through a proxy that does not overwrite it.
    pub forwarded_header: ForwardedHeader,
    /// MaxMind-format database (GeoLite2/GeoIP2 Country or City, DB-IP lite) that `country`
    /// policies and the audit trail's `country` read. Loaded at start (an unreadable file stops
    /// the server) and reloaded when the file changes. Without it, `country` policies are refused.
    pub geoip_database: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Largest accepted request body; larger requests get 413.
    pub max_body_bytes: usize,
    /// Most messages in one JSON-RPC batch; longer batches get 413 before they are parsed whole.
    pub max_batch_messages: usize,
    /// Estimated memory one request's parsed JSON may take; more gets 413 (small objects cost
    /// far more parsed than as text, so the body limit alone does not bound this).
    pub max_parsed_bytes: usize,
    /// Largest upstream JSON body Gatehouse buffers to filter (`tools/list`); larger gives 502.
    pub max_response_bytes: usize,
    #[serde(with = "serde_human")]
    pub upstream_connect_timeout: Duration,
    /// Time allowed for the upstream to send response headers (streams may then run longer).
    #[serde(with = "serde_human")]
    pub upstream_timeout: Duration,
    /// Time allowed for reading an upstream JSON body that Gatehouse buffers to filter, and
    /// for other servers' documents (OpenID discovery, key sets, token responses).
    #[serde(with = "serde_human")]
    pub upstream_read_timeout: Duration,
    /// Idle connections kept per upstream host.
    pub upstream_pool_max_idle: usize,
    /// An upstream connection unused for this long is closed.
    #[serde(with = "serde_human")]
    pub upstream_pool_idle_timeout: Duration,
    /// PEM files of extra CAs trusted for `https://` upstreams, besides the system store.
    pub upstream_ca_files: Vec<PathBuf>,
    /// `Origin` values accepted besides the public URL's own origin and loopback origins.
    /// `["*"]` accepts any origin.
    pub allowed_origins: Vec<String>,
    /// `Host` values accepted besides the public URL's host and loopback hosts.
    /// `["*"]` accepts any host.
    pub allowed_hosts: Vec<String>,
    /// Legacy MCP sessions idle for longer than this are forgotten (the client re-initializes).
    #[serde(with = "serde_human")]
    pub session_idle_timeout: Duration,
    /// Legacy MCP sessions one owner (client, and the user its token acts for) may hold per
    /// server; opening one more forgets the owner's least recently used session.
    pub max_sessions_per_owner: usize,
    /// Consecutive failures of one upstream (unreachable, timed out, 502/503/504, a body that
    /// broke off) that open its circuit breaker; 0 turns the breaker off.
    pub breaker_failures: u32,
    /// How long an open breaker answers `upstream_circuit_open` without connecting before
    /// one probe request is let through.
    #[serde(with = "serde_human")]
    pub breaker_open_for: Duration,
    /// The programs a stdio server may run (exact, or a prefix ending in `*`); absent: any.
    /// In the file, not the database, so an admin token cannot widen it (ADR 0006 §3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdio_commands: Option<Vec<String>>,
    /// How long a request waits for a stdio server's program to start and initialise.
    #[serde(with = "serde_human")]
    pub stdio_start_timeout: Duration,
    /// In a session that resumes (2025-11-25), a stdio server's POST stream still without its
    /// answer after this long is closed, and the client resumes it with `GET` and
    /// `Last-Event-ID` (SEP-1699 polling). Below common 60 s proxy idle timeouts. `0s`: never.
    #[serde(with = "serde_human")]
    pub sse_poll_after: Duration,
    /// The `retry` hint of those streams' priming events: how long a client waits to resume.
    #[serde(with = "serde_human")]
    pub sse_retry: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotConfig {
    /// How often the store's change counter is checked (changes made by the CLI).
    #[serde(with = "serde_human")]
    pub poll_interval: Duration,
    /// How often key `last_used_at` values are written back.
    #[serde(with = "serde_human")]
    pub usage_flush_interval: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `gatehouse=debug`. `RUST_LOG` wins when set.
    pub filter: String,
    /// `text` or `json` (one object per line; at `debug`, one line per request).
    pub format: LogFormat,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: None,
            public_url: "http://127.0.0.1:8080".into(),
            data_dir: PathBuf::from("gatehouse-data"),
            database_url: None,
            database_max_connections: DEFAULT_DATABASE_MAX_CONNECTIONS,
            replica_id: None,
            gateway: GatewayConfig::default(),
            http: HttpConfig::default(),
            audit: AuditConfig::default(),
            snapshot: SnapshotConfig::default(),
            policy: PolicyConfig::default(),
            metrics: MetricsConfig::default(),
            oauth: OAuthConfig::default(),
            log: LogConfig::default(),
            shutdown: ShutdownConfig::default(),
            telemetry: TelemetryConfig::default(),
            redis: None,
            admin: AdminConfig::default(),
        }
    }
}

impl GatewayConfig {
    /// What one request's JSON parse may cost.
    pub fn parse_limits(&self) -> gatehouse_model::jsonrpc::Limits {
        gatehouse_model::jsonrpc::Limits {
            max_batch_messages: self.max_batch_messages,
            max_parsed_bytes: self.max_parsed_bytes,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            max_batch_messages: 100,
            max_parsed_bytes: 32 * 1024 * 1024,
            max_response_bytes: 16 * 1024 * 1024,
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_timeout: Duration::from_secs(60),
            upstream_read_timeout: Duration::from_secs(60),
            upstream_pool_max_idle: 256,
            upstream_pool_idle_timeout: Duration::from_secs(60),
            upstream_ca_files: Vec::new(),
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            session_idle_timeout: Duration::from_secs(24 * 3600),
            max_sessions_per_owner: DEFAULT_MAX_SESSIONS_PER_OWNER,
            breaker_failures: 5,
            breaker_open_for: Duration::from_secs(10),
            stdio_commands: None,
            stdio_start_timeout: Duration::from_secs(30),
            sse_poll_after: Duration::from_secs(30),
            sse_retry: Duration::from_secs(1),
        }
    }
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(250),
            usage_flush_interval: Duration::from_secs(10),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            format: LogFormat::default(),
        }
    }
}

/// `database_max_connections` unless configured.
pub const DEFAULT_DATABASE_MAX_CONNECTIONS: u32 = 10;

/// Top-level keys that `GATEHOUSE_<KEY>` variables may set.
const ENV_KEYS: &[&str] = &[
    "listen",
    "admin_listen",
    "public_url",
    "data_dir",
    "database_url",
    "database_max_connections",
    "replica_id",
    "gateway",
    "http",
    "audit",
    "snapshot",
    "policy",
    "metrics",
    "oauth",
    "log",
    "shutdown",
    "telemetry",
    "redis",
    "admin",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(String),
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
}

impl Config {
    /// Defaults, then the TOML file (if it exists, or fails if named explicitly and missing),
    /// then `GATEHOUSE_*` variables (`GATEHOUSE_GATEWAY__MAX_BODY_BYTES` for nested keys).
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            // `gatehouse.toml` in the working directory is optional; an explicit file is not.
            None if std::path::Path::new("gatehouse.toml").exists() => {
                figment = figment.merge(Toml::file_exact("gatehouse.toml"));
            }
            None => {}
        }
        // Only variables that name a configuration key: tools and scripts keep their own
        // GATEHOUSE_* variables (GATEHOUSE_BIN, …) without breaking the configuration.
        let figment = figment.merge(
            Env::prefixed("GATEHOUSE_")
                .filter(|key| {
                    let key = key.as_str().to_ascii_lowercase();
                    let top = key.split("__").next().unwrap_or("");
                    ENV_KEYS.contains(&top)
                })
                .split("__"),
        );
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.telemetry.validate().map_err(ConfigError::Invalid)?;
        self.admin
            .validate(self.admin_listen, &self.oauth.providers)
            .map_err(ConfigError::Invalid)?;
        let url = http::Uri::try_from(self.public_url.as_str())
            .map_err(|e| ConfigError::Invalid(format!("public_url {:?}: {e}", self.public_url)))?;
        if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
            return Err(ConfigError::Invalid(format!(
                "public_url {:?} must be an absolute http(s) URL",
                self.public_url
            )));
        }
        if url.query().is_some() || self.public_url.contains('#') {
            return Err(ConfigError::Invalid(
                "public_url must not have a query or fragment".into(),
            ));
        }
        if self.gateway.max_sessions_per_owner == 0 {
            return Err(ConfigError::Invalid(
                "gateway.max_sessions_per_owner must be at least 1".into(),
            ));
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError::Invalid(
                "database_max_connections must be at least 1".into(),
            ));
        }
        if let Some(id) = &self.replica_id {
            gatehouse_model::names::ReplicaId::parse(id)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        if self.snapshot.poll_interval.is_zero() || self.snapshot.usage_flush_interval.is_zero() {
            return Err(ConfigError::Invalid(
                "snapshot.poll_interval and snapshot.usage_flush_interval must be positive".into(),
            ));
        }
        let oauth = &self.oauth;
        if let Some(bad) = oauth
            .client_metadata_hosts
            .iter()
            .find(|p| !gatehouse_model::host_pattern::valid(p))
        {
            return Err(ConfigError::Invalid(format!(
                "oauth.client_metadata_hosts: {bad:?} is not a host name or *.domain pattern"
            )));
        }
        if !matches!(oauth.signing_alg.as_str(), "EdDSA" | "ES256" | "RS256") {
            return Err(ConfigError::Invalid(format!(
                "oauth.signing_alg {:?} must be EdDSA, ES256 or RS256",
                oauth.signing_alg
            )));
        }
        if oauth.access_token_ttl.is_zero() || oauth.refresh_token_ttl.is_zero() {
            return Err(ConfigError::Invalid(
                "oauth.access_token_ttl and oauth.refresh_token_ttl must be positive".into(),
            ));
        }
        if oauth.authorization_code_ttl.is_zero()
            || oauth.authorization_code_ttl > Duration::from_secs(60)
        {
            return Err(ConfigError::Invalid(
                "oauth.authorization_code_ttl must be between 1s and 60s".into(),
            ));
        }
        // Any other text is refused as the configuration is read (RegistrationMode's parse).
        use gatehouse_model::registration_mode::RegistrationMode;
        match (oauth.registration, &oauth.registration_token_sha256) {
            (RegistrationMode::Off | RegistrationMode::Open, _) => {}
            (RegistrationMode::Token, Some(hash))
                if hash.len() == 64 && hex::decode(hash).is_ok() => {}
            (RegistrationMode::Token, _) => {
                return Err(ConfigError::Invalid(
                    "oauth.registration = \"token\" needs oauth.registration_token_sha256 (64 hex digits)".into(),
                ));
            }
        }
        for provider in &oauth.providers {
            let name_ok = !provider.name.is_empty()
                && provider.name.len() <= 32
                && provider
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !name_ok {
                return Err(ConfigError::Invalid(format!(
                    "oauth.providers name {:?}: use lower-case letters, digits and '-'",
                    provider.name
                )));
            }
            if !(provider.issuer.starts_with("https://") || provider.issuer.starts_with("http://"))
            {
                return Err(ConfigError::Invalid(format!(
                    "oauth.providers {}: issuer must be an http(s) URL",
                    provider.name
                )));
            }
        }
        for trusted in &oauth.trusted_issuers {
            if trusted.servers.is_empty() || trusted.issuer.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "oauth.trusted_issuers {}: issuer and servers are required",
                    trusted.name
                )));
            }
            if trusted.issuer == self.public_base() {
                return Err(ConfigError::Invalid(format!(
                    "oauth.trusted_issuers {}: that is Gatehouse's own issuer",
                    trusted.name
                )));
            }
        }
        workload::validate(
            &oauth.workload_issuers,
            &oauth.providers,
            self.public_base(),
        )?;
        if oauth.dpop_proof_max_age < Duration::from_secs(10)
            || oauth.dpop_proof_max_age > Duration::from_secs(300)
        {
            return Err(ConfigError::Invalid(
                "oauth.dpop_proof_max_age must be between 10s and 300s".into(),
            ));
        }
        if oauth.dpop_replay_capacity == 0 {
            return Err(ConfigError::Invalid(
                "oauth.dpop_replay_capacity must be at least 1".into(),
            ));
        }
        if oauth.clock_skew > Duration::from_secs(60) {
            return Err(ConfigError::Invalid(
                "oauth.clock_skew must be at most 60s".into(),
            ));
        }
        self.http.validate()?;
        self.shutdown.validate()?;
        if let Some(redis) = &self.redis {
            redis.validate()?;
        }
        if self.gateway.breaker_failures > 0 && self.gateway.breaker_open_for.is_zero() {
            return Err(ConfigError::Invalid(
                "gateway.breaker_open_for must be positive while the breaker is on".into(),
            ));
        }
        if self.gateway.max_body_bytes == 0 {
            return Err(ConfigError::Invalid(
                "gateway.max_body_bytes must be positive".into(),
            ));
        }
        if self.gateway.max_batch_messages == 0 || self.gateway.max_parsed_bytes == 0 {
            return Err(ConfigError::Invalid(
                "gateway.max_batch_messages and gateway.max_parsed_bytes must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The public URL without a trailing slash, the prefix of every URL Gatehouse hands out.
    pub fn public_base(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("gatehouse.db").display()))
    }

    /// Where audit retention writes its archives.
    pub fn audit_archive_dir(&self) -> std::path::PathBuf {
        self.audit
            .archive_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit-archive"))
    }
}

#[cfg(test)]
mod tests;
