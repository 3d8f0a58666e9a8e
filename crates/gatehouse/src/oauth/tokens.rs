//! Access tokens: RFC 9068 JWTs minted by the token endpoint and checked by the gateway.
//!
//! The gateway checks a token's signature once per process: the verified identity is cached
//! by a hash of the token until its `exp`. Every request still checks, from the cached entry,
//! the audience (this server's resource URL), expiry, the revocation list and that the client
//! still exists; those are hash lookups.

use serde::Serialize;
use std::sync::{Arc, OnceLock};

use crate::{
    error::{CredentialProblem, GatewayError, OAuthError},
    secrets,
    tokens::{
        jwt::{self, Expectations, JwtError},
        signing::SigningKeys,
    },
};
use gatehouse_model::scope::Scope;

/// The claims Gatehouse signs (RFC 9068 §2.2).
#[derive(Debug, Serialize)]
struct AccessClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    /// A string when there is one audience (what most verifiers expect), else an array.
    aud: Audience<'a>,
    client_id: &'a str,
    scope: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: &'a str,
    /// The grant (refresh-token family) the token comes from: revoking the grant revokes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    gh_grant: Option<&'a str>,
    /// RFC 9449 §6.1: the key a DPoP-bound token is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation<'a>>,
}

#[derive(Debug, Serialize)]
struct Confirmation<'a> {
    jkt: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Audience<'a> {
    One(&'a str),
    Many(&'a [String]),
}

/// What the token endpoint hands out.
#[derive(Debug)]
pub struct MintedToken {
    pub token: String,
    pub jti: String,
    pub expires_in: i64,
}

pub struct MintRequest<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub client_id: &'a str,
    pub audiences: &'a [String],
    pub scope: &'a Scope,
    pub ttl_secs: i64,
    pub now_ms: i64,
    /// The refresh-token family, for user-delegated grants.
    pub grant: Option<&'a str>,
    /// The thumbprint of the DPoP key the token is bound to.
    pub jkt: Option<&'a str>,
}

pub fn mint(keys: &SigningKeys, req: &MintRequest<'_>) -> Result<MintedToken, OAuthError> {
    let key = keys.signer(req.now_ms).ok_or_else(|| {
        tracing::error!("no signing key is active: the token endpoint cannot issue tokens");
        OAuthError::TemporarilyUnavailable
    })?;
    let jti = secrets::random_id(20).map_err(|_| OAuthError::ServerError)?;
    let now = req.now_ms.div_euclid(1000);
    let aud = match req.audiences {
        [one] => Audience::One(one),
        many => Audience::Many(many),
    };
    let claims = AccessClaims {
        iss: req.issuer,
        sub: req.subject,
        aud,
        client_id: req.client_id,
        scope: req.scope.to_string(),
        iat: now,
        nbf: now,
        exp: now + req.ttl_secs,
        jti: &jti,
        gh_grant: req.grant,
        cnf: req.jkt.map(|jkt| Confirmation { jkt }),
    };
    let token = jwt::encode(key, Some(jwt::ACCESS_TOKEN_TYP), &claims).map_err(|e| {
        tracing::error!(error = %e, "access token signing failed");
        OAuthError::ServerError
    })?;
    Ok(MintedToken {
        token,
        jti,
        expires_in: req.ttl_secs,
    })
}

pub use crate::tokens::access::TokenIdentity;

/// Whether a bearer credential is shaped like a JWT (and should take this path).
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|&b| b == b'.').count() == 2
}

/// Full verification (signature and claims) for `audience`.
pub fn verify(
    token: &str,
    keys: &SigningKeys,
    issuer: &str,
    audience: &str,
    leeway_secs: i64,
    now_secs: i64,
) -> Result<TokenIdentity, GatewayError> {
    let expect = Expectations::access_token(issuer, audience).with_leeway(leeway_secs);
    let claims = jwt::verify_at(token, &keys.verifiers, &expect, now_secs).map_err(|e| {
        GatewayError::InvalidCredential(match e {
            JwtError::Expired => CredentialProblem::Expired,
            JwtError::TooLarge
            | JwtError::SegmentCount
            | JwtError::Base64
            | JwtError::BadHeader
            | JwtError::BadClaims => CredentialProblem::Malformed,
            _ => CredentialProblem::NotRecognised,
        })
    })?;
    TokenIdentity::from_claims(&claims)
}

impl TokenIdentity {
    /// The identity a verified token's claims name; `Malformed` if one is missing.
    pub fn from_claims(claims: &jwt::VerifiedClaims) -> Result<Self, GatewayError> {
        let malformed = || GatewayError::InvalidCredential(CredentialProblem::Malformed);
        let client = claims.client_id().ok_or_else(malformed)?;
        let subject = claims.sub().ok_or_else(malformed)?;
        let jti = claims.jti().ok_or_else(malformed)?;
        let scope = Scope::parse(claims.scope().unwrap_or("")).map_err(|_| malformed())?;
        let audiences = match claims.get("aud") {
            Some(serde_json::Value::String(one)) => vec![one.clone()],
            Some(serde_json::Value::Array(many)) => many
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect(),
            _ => return Err(malformed()),
        };
        Ok(TokenIdentity {
            client: Arc::from(client),
            subject: Arc::from(subject),
            jti: Arc::from(jti),
            kid: claims.kid().to_owned(),
            grant: claims
                .get("gh_grant")
                .and_then(|g| g.as_str())
                .map(str::to_owned),
            scope,
            audiences,
            exp: claims.exp(),
            jkt: match claims.get("cnf") {
                None => None,
                // A confirmation Gatehouse cannot honour is refused, never ignored: the token
                // would otherwise work without the key it was bound to.
                Some(cnf) => Some(Arc::from(
                    cnf.get("jkt")
                        .and_then(|j| j.as_str())
                        .filter(|j| !j.is_empty())
                        .ok_or_else(malformed)?,
                )),
            },
            first_server_scope: OnceLock::new(),
        })
    }
}

/// Verifies a token Gatehouse issued, for whichever audience it names (revocation and
/// introspection are not tied to one server).
pub fn verify_any_audience(
    token: &str,
    keys: &SigningKeys,
    issuer: &str,
    leeway_secs: i64,
    now_secs: i64,
) -> Result<TokenIdentity, GatewayError> {
    use base64::Engine;
    let malformed = || GatewayError::InvalidCredential(CredentialProblem::Malformed);
    let payload = token.split('.').nth(1).ok_or_else(malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| malformed())?;
    // Untrusted until the signature verifies below; only used to pick the audience to check.
    let claims: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    let audience = match claims.get("aud") {
        Some(serde_json::Value::String(one)) => one.clone(),
        Some(serde_json::Value::Array(many)) => many
            .first()
            .and_then(|a| a.as_str())
            .ok_or_else(malformed)?
            .to_owned(),
        _ => return Err(malformed()),
    };
    verify(token, keys, issuer, &audience, leeway_secs, now_secs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn identity(scope: &str) -> TokenIdentity {
        TokenIdentity {
            client: Arc::from("app"),
            subject: Arc::from("app"),
            jti: Arc::from("at-1"),
            kid: "k1".into(),
            grant: None,
            scope: Scope::parse(scope).unwrap(),
            audiences: vec!["https://gw.example/github/mcp".into()],
            exp: 0,
            jkt: None,
            first_server_scope: OnceLock::new(),
        }
    }

    #[test]
    fn scope_for_is_derived_once_per_server_and_never_shared_between_servers() {
        let identity = identity("mcp:github:read mcp:slack:tool:post");
        let github = identity.scope_for("github");
        assert!(github.read && !github.all && github.tools.is_empty());
        assert!(Arc::ptr_eq(&github, &identity.scope_for("github")));
        // Another server asked of the same token gets its own scope, not the remembered one.
        let slack = identity.scope_for("slack");
        assert_eq!(*slack, identity.scope.for_server("slack"));
        assert!(slack.allows_tool("post") && !slack.read);
        assert_eq!(
            *identity.scope_for("github"),
            identity.scope.for_server("github")
        );
        assert!(!identity.scope_for("other").any);
    }
}
