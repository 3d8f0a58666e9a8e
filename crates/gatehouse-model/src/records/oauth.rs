//! What the OAuth 2.1 authorization server keeps: client secrets and metadata, signing keys,
//! revoked access tokens, refresh-token families and authorization codes.

use serde::{Deserialize, Serialize};

/// How a client uses the authorization server (RFC 7591 field names), stored as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthClientMetadata {
    /// `client_secret_basic`, `client_secret_post`, `private_key_jwt` or `none`.
    pub token_endpoint_auth_method: String,
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// `web` or `native` (RFC 8252 loopback redirect rules apply to native clients).
    #[serde(default)]
    pub application_type: Option<String>,
    /// The client's public keys, for `private_key_jwt`.
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    #[serde(default)]
    pub client_name: Option<String>,
    /// Where the registration came from: `cli`, `dcr` or `cimd`.
    pub origin: String,
    /// RFC 9449 §5.2: every token request must carry a DPoP proof, so every access token the
    /// client gets is bound to its key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSecretRecord {
    pub id: String,
    pub client: String,
    #[serde(skip)]
    pub secret_hash: Vec<u8>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub alg: String,
    #[serde(skip)]
    pub private_sealed: Vec<u8>,
    pub public_jwk: String,
    pub created_at: i64,
    pub active_at: i64,
    pub retired_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedToken {
    pub jti: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub id: String,
    pub family: String,
    pub token_hash: Vec<u8>,
    pub client: String,
    pub subject: Option<String>,
    pub scope: String,
    pub resource: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
    pub replaced_by: Option<String>,
    pub revoked_at: Option<i64>,
    /// For a public client's token bound to a DPoP key (whose `token_hash` includes the key):
    /// the hash of the token alone, by which RFC 7009 revocation finds it without a proof.
    pub revocation_hash: Option<Vec<u8>>,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// Consumed now and `next` stored as its successor. Also the answer to a retry within
    /// the grace window while the previous successor is unused: that successor is revoked
    /// and `next` replaces it (the client lost the first answer).
    Rotated,
    /// Unknown, expired or revoked.
    Invalid,
    /// Consumed earlier: the family is revoked now.
    Reused,
}
