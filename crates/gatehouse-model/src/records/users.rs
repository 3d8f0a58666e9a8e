//! People who sign in so agents can act for them, and what their groups may reach.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: String,
    pub username: String,
    pub display_name: String,
    /// argon2id PHC string (local users).
    #[serde(skip)]
    pub password_hash: Option<String>,
    /// Upstream OpenID provider and subject (federated users).
    pub idp: Option<String>,
    pub idp_subject: Option<String>,
    pub groups: Vec<String>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    pub last_login_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupConnectionRecord {
    pub group: String,
    pub server: String,
    pub tools: Vec<String>,
    pub resources: bool,
    pub prompts: bool,
    pub created_at: i64,
}

/// An authorization code as stored (the code itself only as a hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCodeRecord {
    pub code_hash: Vec<u8>,
    pub client: String,
    pub subject: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub scope: String,
    pub resource: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
    /// What redeeming it issued: revoked if the code is presented again.
    pub family: Option<String>,
    pub access_jti: Option<String>,
    pub access_expires_at: Option<i64>,
    /// RFC 9449 §10: the JWK thumbprint the client named with `dpop_jkt` at the authorization
    /// request; only a token request with a DPoP proof by that key may redeem the code.
    pub dpop_jkt: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// First use, now consumed.
    Fresh(AuthorizationCodeRecord),
    /// Used before: a replay (the record says what it issued, to revoke).
    Replayed(AuthorizationCodeRecord),
    /// Unknown or expired.
    Invalid,
}

/// A person's own tokens at an upstream (per-user delegated credentials), sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamGrantRecord {
    pub user_id: String,
    pub server: String,
    #[serde(skip)]
    pub access_sealed: Vec<u8>,
    #[serde(skip)]
    pub refresh_sealed: Option<Vec<u8>>,
    /// Milliseconds since the Unix epoch; `None` when the upstream named no lifetime.
    pub expires_at: Option<i64>,
    pub scope: String,
    pub created_at: i64,
    pub refreshed_at: Option<i64>,
}
