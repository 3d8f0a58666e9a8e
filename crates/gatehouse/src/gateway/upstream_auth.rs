//! The headers one call carries to the upstream beyond what is forwarded (ADR 0006 §5–6): a
//! token fetched for the server, and Gatehouse's signed assertion of the caller. Resolved
//! before the call is routed, so a call that cannot get them is answered without reaching
//! the upstream.

use http::{HeaderName, HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::{
    context::AppState,
    error::GatewayError,
    identity::principal::Principal,
    oauth::upstream_connect,
    snapshot::{ServerEntry, upstream_auth::UpstreamAuth},
    tokens::{jwt, signing::SigningKeys},
    upstream::{delegated::Delegated, tokens::Grant},
};

/// `typ` of the identity assertion, so it cannot pass for an access token (`at+jwt`).
pub const IDENTITY_TYP: &str = "gatehouse-id+jwt";
/// Lifetime of an identity assertion: one call, with room for clock skew.
const IDENTITY_TTL_SECS: i64 = 60;

/// Headers for this call: the upstream token, the identity assertion, or none (the static
/// credential goes with the route itself).
pub async fn injected_headers(
    state: &AppState,
    server: &ServerEntry,
    principal: &Principal,
    request_id: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, GatewayError> {
    let mut headers = Vec::new();
    match &server.auth {
        UpstreamAuth::ClientCredentials(auth) => {
            let value = state.upstream_tokens.authorization(auth).await?;
            headers.push((header::AUTHORIZATION, value));
        }
        UpstreamAuth::TokenExchange(auth) => {
            // A token for a person: a caller that acts for none has nothing to exchange.
            let user = principal
                .user
                .as_deref()
                .ok_or(GatewayError::UpstreamNeedsUser)?;
            let snapshot = state.snapshot.current();
            let username = snapshot.users.get(user).map(|e| e.username.as_str());
            let audience = auth.token_endpoint.to_string();
            let subject_token = || {
                identity_assertion(
                    &snapshot.oauth.signing,
                    state.config.public_base(),
                    &audience,
                    (principal, username),
                    request_id,
                    crate::now_ms(),
                )
                .map_err(|e| e.to_string())
                .and_then(|v| v.to_str().map(str::to_owned).map_err(|e| e.to_string()))
            };
            let grant = Grant::Exchange {
                user,
                subject_token: &subject_token,
            };
            let value = state
                .upstream_tokens
                .authorization_for(auth, &grant)
                .await?;
            headers.push((header::AUTHORIZATION, value));
        }
        UpstreamAuth::PerUser(auth) => {
            let user = principal
                .user
                .as_deref()
                .ok_or(GatewayError::UpstreamNeedsUser)?;
            match state
                .upstream_tokens
                .delegated(&state.store, &state.keyring, auth, user)
                .await?
            {
                Delegated::Token(value) => headers.push((header::AUTHORIZATION, value)),
                Delegated::ConsentNeeded => {
                    return Err(upstream_connect::consent_required(
                        state,
                        user,
                        &auth.server,
                    ));
                }
            }
        }
        UpstreamAuth::None | UpstreamAuth::Static(_) => {}
    }
    if let Some(name) = &server.identity_header {
        let snapshot = state.snapshot.current();
        let username = principal
            .user
            .as_deref()
            .and_then(|user| snapshot.users.get(user))
            .map(|entry| entry.username.as_str());
        let assertion = identity_assertion(
            &snapshot.oauth.signing,
            state.config.public_base(),
            &server.upstream.to_string(),
            (principal, username),
            request_id,
            crate::now_ms(),
        )?;
        headers.push((name.clone(), assertion));
    }
    Ok(headers)
}

/// A person's upstream token the upstream refused (401: revoked or expired at its end): the
/// grant is forgotten and the person asked to connect again, rather than a 401 relayed that
/// would send the client to sign in to Gatehouse again.
pub async fn refused_person_token(
    state: &AppState,
    server: &ServerEntry,
    principal: &Principal,
    status: StatusCode,
) -> Option<GatewayError> {
    let UpstreamAuth::PerUser(auth) = &server.auth else {
        return None;
    };
    let user = principal.user.as_deref()?;
    if status != StatusCode::UNAUTHORIZED {
        return None;
    }
    tracing::info!(server = %auth.server, "the upstream refused a person's token; asking them to connect again");
    if let Err(err) = state.store.delete_upstream_grant(user, &auth.server).await {
        tracing::error!(error = %err, "forgetting a refused upstream grant failed");
    }
    Some(upstream_connect::consent_required(
        state,
        user,
        &auth.server,
    ))
}

#[derive(Serialize)]
struct IdentityClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    /// The person, when the caller acts for one; else the client.
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    /// The person's username, when the caller acts for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_username: Option<&'a str>,
    /// The audit record's request id, so the upstream's logs and Gatehouse's trail meet.
    jti: &'a str,
    iat: i64,
    exp: i64,
}

/// A JWT naming the caller, signed with the current signing key (verifiable with
/// `/oauth/jwks.json`), for `audience` only and one minute.
pub fn identity_assertion(
    keys: &SigningKeys,
    issuer: &str,
    audience: &str,
    (principal, username): (&Principal, Option<&str>),
    request_id: &str,
    now_ms: i64,
) -> Result<HeaderValue, GatewayError> {
    let key = keys.signer(now_ms).ok_or_else(|| {
        tracing::error!("no signing key is active: the identity assertion cannot be signed");
        GatewayError::UpstreamCredentialUnavailable
    })?;
    let now = now_ms.div_euclid(1000);
    let claims = IdentityClaims {
        iss: issuer,
        aud: audience,
        sub: principal
            .user
            .as_deref()
            .or(principal.client.as_deref())
            .unwrap_or("anonymous"),
        client_id: principal.client.as_deref(),
        preferred_username: username,
        jti: request_id,
        iat: now,
        exp: now + IDENTITY_TTL_SECS,
    };
    let token = jwt::encode(key, Some(IDENTITY_TYP), &claims).map_err(|e| {
        tracing::error!(error = %e, "identity assertion signing failed");
        GatewayError::UpstreamCredentialUnavailable
    })?;
    HeaderValue::try_from(token).map_err(|_| GatewayError::UpstreamCredentialUnavailable)
}
