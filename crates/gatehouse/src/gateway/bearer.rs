//! Access tokens at the gateway: who a JWT names, and what it may do on this server.
//!
//! The signature is checked once per token and process; the cached identity is then checked
//! on every request against what can change while it lives: the audience (this server), the
//! expiry, the revocation list, whether the signing key is still published, and whether the
//! client still exists and is connected. All hash lookups. The token's `iss` (which keys
//! verify it: Gatehouse's or a trusted issuer's) is read only for a token not yet cached.

use http::HeaderMap;
use std::sync::Arc;

use crate::{
    AppState,
    error::{CredentialProblem, GatewayError},
    identity::{Credential, Principal},
    oauth::tokens::{self, TokenIdentity},
    snapshot::{ServerEntry, Snapshot},
    tokens::token_cache::TokenKey,
};

pub async fn identify(
    state: &AppState,
    snapshot: &Snapshot,
    token: &str,
    server: &ServerEntry,
    request: (&http::Method, &HeaderMap),
) -> Result<Principal, GatewayError> {
    let now = crate::now_ms().div_euclid(1000);
    let leeway = i64::try_from(state.config.oauth.clock_skew.as_secs()).unwrap_or(60);
    // The caches come first: a token in either was verified for its issuer already, so only
    // a token seen for the first time needs its `iss` read (a base64 decode and JSON parse)
    // to choose the keys that verify it.
    let key = TokenKey::of(token);
    if let Some(key) = &key {
        if let Some(cached) = state.token_cache.get_keyed_at(key, now) {
            state.metrics.hot.token_cache_hit.inc();
            let principal = admit(snapshot, &cached, server, now, leeway)?;
            proof_of_possession(state, cached.jkt.as_deref(), token, server, request, now).await?;
            return Ok(principal);
        }
        if let Some(external) =
            crate::oauth::external::identify_cached(state, snapshot, key, server, now)
        {
            let (principal, jkt) = external?;
            proof_of_possession(state, jkt.as_deref(), token, server, request, now).await?;
            return Ok(principal);
        }
    }
    state.metrics.hot.token_cache_miss.inc();
    if let Some(iss) = crate::oauth::external::unverified_issuer(token)
        && iss != state.config.public_base()
    {
        let Some(trusted) = crate::oauth::external::trusted_for(state, &iss, &server.name) else {
            return Err(GatewayError::InvalidCredential(
                CredentialProblem::NotRecognised,
            ));
        };
        let (principal, jkt) =
            crate::oauth::external::identify(state, snapshot, token, server, trusted).await?;
        proof_of_possession(state, jkt.as_deref(), token, server, request, now).await?;
        return Ok(principal);
    }
    let identity = Arc::new(tokens::verify(
        token,
        &snapshot.oauth.signing,
        state.config.public_base(),
        &server.resource,
        leeway,
        now,
    )?);
    state.token_cache.insert(token, identity.clone(), now);
    let principal = admit(snapshot, &identity, server, now, leeway)?;
    proof_of_possession(state, identity.jkt.as_deref(), token, server, request, now).await?;
    Ok(principal)
}

/// RFC 9449 §7: a token bound to a key (`cnf.jkt`, Gatehouse's or a trusted issuer's)
/// works only with the DPoP scheme and a fresh proof by that key for this request; the DPoP
/// scheme works only with a bound token. A bearer token sent as such costs one header lookup.
async fn proof_of_possession(
    state: &AppState,
    bound_to: Option<&str>,
    token: &str,
    server: &ServerEntry,
    (method, headers): (&http::Method, &HeaderMap),
    now: i64,
) -> Result<(), GatewayError> {
    let dpop_scheme = crate::edge::access::is_dpop_scheme(headers);
    let Some(bound_to) = bound_to else {
        return if dpop_scheme {
            Err(GatewayError::InvalidDpopProof {
                problem: "the access token is not bound to a key".into(),
            })
        } else {
            Ok(())
        };
    };
    if !dpop_scheme {
        return Err(GatewayError::DpopProofRequired);
    }
    let refused = |problem: String| GatewayError::InvalidDpopProof { problem };
    let proof = crate::oauth::dpop::check_request(
        state,
        headers,
        method.as_str(),
        &server.resource,
        Some(token),
        now,
    )
    .await
    .map_err(|refusal| match refusal {
        crate::oauth::dpop::ProofRefusal::UseNonce(nonce) => GatewayError::UseDpopNonce { nonce },
        crate::oauth::dpop::ProofRefusal::Unavailable => GatewayError::StateUnavailable,
        other => refused(other.to_string()),
    })?
    .ok_or_else(|| refused("the DPoP header is missing".into()))?;
    if proof.jkt != bound_to {
        return Err(refused(
            "the DPoP proof is signed by a key other than the token's".into(),
        ));
    }
    Ok(())
}

/// The checks a verified token passes on every request, cached or not: what can change
/// while it lives.
fn admit(
    snapshot: &Snapshot,
    identity: &TokenIdentity,
    server: &ServerEntry,
    now: i64,
    leeway: i64,
) -> Result<Principal, GatewayError> {
    if identity.exp.saturating_add(leeway) <= now {
        return Err(GatewayError::InvalidCredential(CredentialProblem::Expired));
    }
    if !identity.audiences.contains(&server.resource)
        || snapshot.oauth.revoked.contains(&*identity.jti)
        || identity
            .grant
            .as_deref()
            .is_some_and(|g| snapshot.oauth.revoked_grants.contains(g))
        || snapshot.oauth.signing.verifier(&identity.kid).is_none()
        || !snapshot.clients.contains_key(&*identity.client)
        || identity
            .user()
            .is_some_and(|user| !snapshot.users.contains_key(user))
    {
        return Err(GatewayError::InvalidCredential(
            CredentialProblem::NotRecognised,
        ));
    }
    Ok(Principal {
        client: Some(identity.client.clone()),
        credential: Credential::AccessToken {
            jti: identity.jti.clone(),
        },
        narrowing: None,
        scope: Some(identity.scope_for(&server.name)),
        user: identity.user().map(Arc::from),
        grant: None,
        subject: identity.user().map(Arc::from),
    })
}
