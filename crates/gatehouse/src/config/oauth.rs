//! `[oauth]`: the built-in authorization server, its sign-in providers and trusted issuers.
//! Documented in docs/configuration.md and docs/oauth.md.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::DEFAULT_DPOP_REPLAY_CAPACITY;
use gatehouse_model::duration::serde_human;

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
    /// Platforms whose workload tokens authenticate machines as clients (docs/oauth.md,
    /// guide 7).
    pub workload_issuers: Vec<super::WorkloadIssuerConfig>,
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
    /// Also accept this provider's Identity Assertion JWT Authorization Grants (ID-JAGs) at
    /// the token endpoint (enterprise-managed authorization, docs/oauth.md guide 6): the
    /// person is the same Gatehouse user as when signing in through the browser.
    #[serde(default)]
    pub accept_id_jag: bool,
    /// An ID-JAG whose `sub` is linked to no user acts for the user whose username is its
    /// `email` claim (signed in here before, or created with that name). Only for a provider
    /// that verifies addresses: whoever controls an address there becomes that user.
    #[serde(default)]
    pub link_by_email: bool,
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
            workload_issuers: Vec::new(),
        }
    }
}
