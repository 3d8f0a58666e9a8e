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

mod forwarded_header;
mod listener;
mod redis;
mod shutdown;
pub use forwarded_header::ForwardedHeader;
pub use listener::HttpConfig;
pub use redis::{OnOutage, RedisConfig};
pub use shutdown::ShutdownConfig;

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
    /// Shared runtime state for a cluster; absent: in this process's memory.
    pub redis: Option<RedisConfig>,
}

/// 2,000 proofs a second over the longest proof window (300 s old plus 60 s of clock skew).
pub const DEFAULT_DPOP_REPLAY_CAPACITY: usize = 720_000;

/// The built-in OAuth 2.1 authorization server (docs/oauth.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthConfig {
    /// Lifetime of access tokens (JWTs validated without a database round trip, so revocation
    /// relies on the revocation list until they expire).
    #[serde(with = "serde_human")]
    pub access_token_ttl: Duration,
    #[serde(with = "serde_human")]
    pub refresh_token_ttl: Duration,
    /// A consumed refresh token presented again within this time, while its successor is still
    /// unused, is a retry (the client lost the answer); later it is theft, and the whole family
    /// is revoked.
    #[serde(with = "serde_human")]
    pub refresh_reuse_grace: Duration,
    /// Lifetime of authorization codes; at most 60 s.
    #[serde(with = "serde_human")]
    pub authorization_code_ttl: Duration,
    /// Algorithm of new signing keys: `EdDSA` (Ed25519), `ES256` or `RS256`.
    pub signing_alg: String,
    /// Signing keys are replaced this often (`0s` turns automatic rotation off).
    #[serde(with = "serde_human")]
    pub key_rotation_interval: Duration,
    /// A new key is published in the JWKS this long before it starts signing, so verifiers
    /// that cache the JWKS know it before they see it.
    #[serde(with = "serde_human")]
    pub key_publish_lead: Duration,
    /// Allowed clock difference when checking `exp`, `nbf` and `iat`; at most 60 s.
    #[serde(with = "serde_human")]
    pub clock_skew: Duration,
    /// RFC 7591 dynamic client registration: `off`, `open` (anyone may register a client
    /// that then needs a user's consent for everything), or `token` (an initial access token
    /// whose SHA-256 is `registration_token_sha256`).
    pub registration: gatehouse_model::registration_mode::RegistrationMode,
    /// Hex SHA-256 of the initial access token, for `registration = "token"` (the token
    /// itself is never stored).
    pub registration_token_sha256: Option<String>,
    /// Accept `https://` client ids whose Client ID Metadata Document Gatehouse fetches.
    pub client_metadata_documents: bool,
    /// Let metadata documents be fetched from private, loopback or link-local addresses
    /// (tests, closed networks). Off: such hosts are refused (SSRF).
    pub client_metadata_allow_private: bool,
    /// Hosts whose metadata-document client ids are trusted: `app.example.com`, or
    /// `*.example.com` for its subdomains. Empty: any public host.
    pub client_metadata_hosts: Vec<String>,
    /// Require DPoP proofs to carry a nonce Gatehouse handed out (RFC 9449 §8, §9): a proof
    /// made ahead of time, on a machine the key was copied to, then goes stale within minutes.
    pub dpop_nonce: bool,
    /// DPoP proof ids one replica remembers at most without Redis (each until its proof
    /// expires); a proof beyond a cache full of live ids is refused.
    pub dpop_replay_capacity: usize,
    /// How old a DPoP proof's `iat` may be (at most five minutes). Shorter: a proof is
    /// remembered for less time, so the replay cache holds fewer.
    #[serde(with = "serde_human")]
    pub dpop_proof_max_age: Duration,
    /// Upstream OpenID Connect providers users can sign in with.
    pub providers: Vec<IdentityProviderConfig>,
    /// External authorization servers whose access tokens some servers accept.
    pub trusted_issuers: Vec<TrustedIssuerConfig>,
}

/// An existing enterprise authorization server (Entra ID, Okta, Keycloak, Auth0) whose access
/// tokens are accepted at some servers, mapped onto Gatehouse clients, groups and scopes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuerConfig {
    pub name: String,
    /// Must equal the tokens' `iss` exactly.
    pub issuer: String,
    /// Where its keys are; default: `jwks_uri` from its discovery document.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Required `aud`; default: the server's MCP URL (RFC 8707 resource).
    #[serde(default)]
    pub audience: Option<String>,
    /// Servers that accept these tokens.
    pub servers: Vec<String>,
    /// Claims naming the calling application, tried in order.
    #[serde(default = "default_client_claims")]
    pub client_claims: Vec<String>,
    /// Application id → Gatehouse client. Empty: the id is the client's name.
    #[serde(default)]
    pub client_map: std::collections::BTreeMap<String, String>,
    /// Claim holding scopes (space-separated string or array); `scp` for Entra ID.
    #[serde(default = "default_scope_claim")]
    pub scope_claim: String,
    /// External scope → Gatehouse scope (`mcp:{server}…`). Empty: values that are Gatehouse
    /// scopes are taken as they are.
    #[serde(default)]
    pub scope_map: std::collections::BTreeMap<String, String>,
    /// Claim holding a user's groups; a token with mapped groups acts for that user.
    #[serde(default)]
    pub groups_claim: Option<String>,
    #[serde(default)]
    pub group_map: std::collections::BTreeMap<String, String>,
}

fn default_client_claims() -> Vec<String> {
    vec!["client_id".into(), "azp".into(), "appid".into()]
}

fn default_scope_claim() -> String {
    "scope".into()
}

/// An upstream OpenID Connect provider (Okta, Entra ID, Keycloak, …) for user sign-in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityProviderConfig {
    /// Short name, in URLs (`/oauth/login/{name}`) and as the users' `idp`.
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Issuer URL; its `/.well-known/openid-configuration` is fetched.
    pub issuer: String,
    pub client_id: String,
    /// Name of the environment variable holding the client secret (never in the file).
    pub client_secret_env: String,
    #[serde(default = "default_idp_scopes")]
    pub scopes: Vec<String>,
    /// ID-token claim used as the username (`email`, `preferred_username`, …); falls back to
    /// `sub`.
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// Claim holding the user's groups (a JSON array or a space-separated string).
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Claim value → Gatehouse group. When empty, values are taken as they are (those that are
    /// valid group names); otherwise unmapped values are dropped.
    #[serde(default)]
    pub group_map: std::collections::BTreeMap<String, String>,
}

fn default_idp_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into(), "profile".into()]
}

fn default_username_claim() -> String {
    "email".into()
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(600),
            refresh_token_ttl: Duration::from_secs(30 * 86_400),
            refresh_reuse_grace: Duration::from_secs(10),
            authorization_code_ttl: Duration::from_secs(60),
            signing_alg: "EdDSA".into(),
            key_rotation_interval: Duration::from_secs(30 * 86_400),
            key_publish_lead: Duration::from_secs(3_600),
            clock_skew: Duration::from_secs(60),
            registration: gatehouse_model::registration_mode::RegistrationMode::Off,
            registration_token_sha256: None,
            client_metadata_documents: true,
            client_metadata_allow_private: false,
            client_metadata_hosts: Vec::new(),
            dpop_nonce: false,
            dpop_replay_capacity: DEFAULT_DPOP_REPLAY_CAPACITY,
            dpop_proof_max_age: Duration::from_secs(300),
            providers: Vec::new(),
            trusted_issuers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Networks allowed to read `/metrics` (it names servers and denial reasons).
    pub allow: Vec<ipnet::IpNet>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            allow: ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|net| net.parse().ok())
                .collect(),
        }
    }
}

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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// End each response only once its audit event is committed, so a crash loses nothing
    /// answered. On by default: a trail that loses its last events in a crash is no evidence.
    pub durable: bool,
    /// Events written per transaction at most.
    pub batch_size: usize,
    /// How long a batch may wait for more events before it is written (ignored when durable).
    #[serde(with = "serde_human")]
    pub linger: Duration,
    /// Events buffered in memory before requests wait for the writer (back-pressure, not loss).
    pub channel_capacity: usize,
    /// How long a request waits for room in a full queue before it is refused
    /// (`audit_unavailable`) rather than forwarded and answered unrecorded.
    #[serde(with = "serde_human")]
    pub queue_wait: Duration,
    /// Durable mode: how long an answer is held for its event's commit before it is broken
    /// off (never ended cleanly) while the database does not answer.
    #[serde(with = "serde_human")]
    pub commit_timeout: Duration,
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
            redis: None,
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
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            durable: true,
            batch_size: 512,
            linger: Duration::from_millis(20),
            channel_capacity: 16_384,
            queue_wait: Duration::from_secs(1),
            commit_timeout: Duration::from_secs(10),
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
    "redis",
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
}

#[cfg(test)]
// figment::Jail fixes the closure's error type; its size is not ours to choose.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn rejects_bad_public_url() {
        let config = Config {
            public_url: "ftp://x".into(),
            ..Config::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("public_url")
        );
    }

    #[test]
    fn toml_and_env_layering() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "g.toml",
                "public_url = \"https://mcp.example.com/\"\n[gateway]\nupstream_timeout = \"5s\"\n",
            )?;
            jail.set_env("GATEHOUSE_GATEWAY__MAX_BODY_BYTES", "1024");
            jail.set_env("GATEHOUSE_BIN", "/some/tool/of/a/script");
            jail.set_env("GATEHOUSE_MASTER_KEY", "00");
            let config = Config::load(Some(std::path::Path::new("g.toml"))).unwrap();
            assert_eq!(config.public_base(), "https://mcp.example.com");
            assert_eq!(config.gateway.upstream_timeout, Duration::from_secs(5));
            assert_eq!(config.gateway.max_body_bytes, 1024);
            Ok(())
        });
    }

    #[test]
    fn the_pool_size_comes_from_the_environment_and_is_checked() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(Config::load(None).unwrap().database_max_connections, 10);
            jail.set_env("GATEHOUSE_DATABASE_MAX_CONNECTIONS", "32");
            assert_eq!(Config::load(None).unwrap().database_max_connections, 32);
            jail.set_env("GATEHOUSE_DATABASE_MAX_CONNECTIONS", "0");
            let err = Config::load(None).unwrap_err();
            assert!(
                err.to_string().contains("database_max_connections"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn redis_comes_from_the_environment() {
        // Replicas started with GATEHOUSE_REDIS__URL alone ran on per-process state.
        figment::Jail::expect_with(|jail| {
            jail.set_env("GATEHOUSE_REDIS__URL", "redis://127.0.0.1:6390");
            jail.set_env("GATEHOUSE_REDIS__KEY_PREFIX", "gh-test:");
            let redis = Config::load(None)
                .unwrap()
                .redis
                .expect("[redis] from the environment");
            assert_eq!(redis.url.as_deref(), Some("redis://127.0.0.1:6390"));
            Ok(())
        });
    }

    #[test]
    fn every_section_can_be_set_from_the_environment() {
        let value = serde_json::to_value(Config::default()).unwrap();
        for key in value.as_object().unwrap().keys() {
            assert!(
                ENV_KEYS.contains(&key.as_str()),
                "GATEHOUSE_{} is ignored: add {key:?} to ENV_KEYS",
                key.to_ascii_uppercase()
            );
        }
    }

    #[test]
    fn replica_id_comes_from_the_environment_and_is_checked() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("GATEHOUSE_REPLICA_ID", "gw-2");
            let config = Config::load(None).unwrap();
            assert_eq!(config.replica_id.as_deref(), Some("gw-2"));
            jail.set_env("GATEHOUSE_REPLICA_ID", "gw 2");
            let err = Config::load(None).unwrap_err();
            assert!(err.to_string().contains("replica_id"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_zero_poll_or_flush_interval_is_refused() {
        // A zero period would stop the reload loop at start: changes never applied, and no
        // heartbeat for the CLI to wait on.
        for zero in ["poll_interval", "usage_flush_interval"] {
            figment::Jail::expect_with(|jail| {
                jail.create_file("g.toml", &format!("[snapshot]\n{zero} = \"0s\"\n"))?;
                let err = Config::load(Some(std::path::Path::new("g.toml"))).unwrap_err();
                assert!(
                    err.to_string().contains("must be positive"),
                    "{zero}: {err}"
                );
                Ok(())
            });
        }
    }

    #[test]
    fn a_registration_mode_is_off_open_or_token() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("g.toml", "[oauth]\nregistration = \"open\"\n")?;
            let config = Config::load(Some(std::path::Path::new("g.toml"))).unwrap();
            assert_eq!(
                config.oauth.registration,
                gatehouse_model::registration_mode::RegistrationMode::Open
            );
            jail.create_file("g.toml", "[oauth]\nregistration = \"public\"\n")?;
            let err = Config::load(Some(std::path::Path::new("g.toml"))).unwrap_err();
            assert!(
                err.to_string()
                    .contains("oauth.registration \"public\" must be off, open or token"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("g.toml", "listen_adress = \"1.2.3.4:1\"\n")?;
            let err = Config::load(Some(std::path::Path::new("g.toml"))).unwrap_err();
            assert!(err.to_string().contains("listen_adress"), "{err}");
            Ok(())
        });
    }
}
