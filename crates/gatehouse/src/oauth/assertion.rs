//! `private_key_jwt` client authentication (RFC 7523 §2.2, OpenID Connect Core §9): the client
//! proves itself with a short JWT signed by a key from the JWKS it registered.
//!
//! The assertion must name the client as `iss` and `sub`, be meant for this authorization
//! server (`aud` = the issuer or the token endpoint URL), expire within five minutes and carry
//! a `jti` never seen before (remembered until it expires), so a captured assertion cannot be
//! replayed.
//!
//! An assertion whose `iss` is a workload issuer is a platform's token instead
//! (`workload.rs`): its issuer's rules, not a registered JWKS, say which client it is.

use http::HeaderMap;
use serde_json::Value;
use std::sync::Arc;

use crate::{
    AppState,
    error::OAuthError,
    oauth::{clients::OAuthClient, form::Form},
    snapshot::Snapshot,
    tokens::jwt::{self, Expectations, JwtError},
};

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest accepted assertion lifetime, in seconds.
const MAX_LIFETIME: i64 = 300;

/// Client authentication for the token, revocation and introspection endpoints: an assertion
/// when the request carries one, else secrets or a public `client_id`.
pub async fn authenticate(
    state: &AppState,
    snapshot: &Snapshot,
    headers: &HeaderMap,
    form: &Form,
    now_ms: i64,
) -> Result<Arc<OAuthClient>, OAuthError> {
    let (Some(kind), Some(assertion)) = (
        form.get("client_assertion_type"),
        form.get("client_assertion"),
    ) else {
        return snapshot
            .oauth
            .clients
            .authenticate(&state.keyring, headers, form, now_ms);
    };
    let fail = OAuthError::InvalidClient { basic: false };
    if kind != JWT_BEARER {
        return Err(OAuthError::InvalidRequest(
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                .into(),
        ));
    }
    if headers.contains_key(http::header::AUTHORIZATION) || form.get("client_secret").is_some() {
        return Err(OAuthError::InvalidRequest(
            "use one client authentication method".into(),
        ));
    }
    if super::workload::issuer_of(state, assertion).is_some() {
        let workload = super::workload::verify(
            state,
            snapshot,
            assertion,
            now_ms.div_euclid(1000),
            |client| form.get("client_id").is_none_or(|id| id == client),
        )
        .await
        .map_err(|refusal| {
            tracing::info!(%refusal, "workload client assertion refused");
            refusal.into_oauth(crate::error::AssertionRole::ClientAuthentication)
        })?;
        return Ok(super::workload::client_for(snapshot, &workload));
    }
    let claimed = crate::oauth::external::unverified_claim(assertion, "iss").ok_or(fail.clone())?;
    if form.get("client_id").is_some_and(|id| id != claimed) {
        return Err(fail);
    }
    let client = snapshot.oauth.clients.get(&claimed).ok_or(fail.clone())?;
    let keys = match (
        &client.keys,
        client.metadata.token_endpoint_auth_method.as_str(),
    ) {
        (Some(keys), "private_key_jwt") => keys,
        _ => return Err(fail),
    };
    let issuer = state.config.public_base();
    let now = now_ms.div_euclid(1000);
    let leeway = i64::try_from(state.config.oauth.clock_skew.as_secs()).unwrap_or(60);
    let expect = |audience: String| Expectations {
        issuer: claimed.clone(),
        audience,
        typ: None,
        leeway_secs: leeway,
        single_key_without_kid: true,
    };
    let verified = match jwt::verify_at(assertion, keys, &expect(issuer.to_owned()), now) {
        Err(JwtError::WrongAudience) => jwt::verify_at(
            assertion,
            keys,
            &expect(format!("{issuer}/oauth/token")),
            now,
        ),
        other => other,
    }
    .map_err(|_| fail.clone())?;
    let claims = verified.claims();
    let jti = claims.get("jti").and_then(Value::as_str);
    let sub_ok = claims.get("sub").and_then(Value::as_str) == Some(claimed.as_str());
    let exp = verified.exp();
    let (Some(jti), true) = (jti, sub_ok) else {
        return Err(fail);
    };
    if exp - now > MAX_LIFETIME + leeway {
        return Err(fail);
    }
    match state
        .client_assertions
        .first_use(&format!("{claimed}\u{0}{jti}"), exp + leeway, now)
        .await
    {
        Ok(true) => {}
        Ok(false) => return Err(fail),
        // The credential is fine, but whether it was used before is unknown: a replay must
        // not pass, and the client should retry rather than think its key is wrong.
        Err(crate::state::Unavailable) => return Err(OAuthError::TemporarilyUnavailable),
    }
    Ok(client.clone())
}

#[cfg(test)]
mod tests {
    use crate::state::{ReplayCache, memory::MemoryReplay};

    #[tokio::test]
    async fn an_assertion_is_used_once() {
        let replay = MemoryReplay::default();
        assert_eq!(replay.first_use("c\0j1", 100, 0).await, Ok(true));
        assert_eq!(replay.first_use("c\0j1", 100, 50).await, Ok(false));
        assert_eq!(replay.first_use("c\0j2", 100, 50).await, Ok(true));
        // Once expired, a jti could be reused, but the assertion's own exp refuses it anyway.
        assert_eq!(replay.first_use("c\0j1", 300, 200).await, Ok(true));
    }
}
