//! Access tokens at the gateway: who a JWT names, and what it may do on this server.
//!
//! The signature is checked once per token and process; the cached identity is then checked
//! on every request against what can change while it lives: the audience (this server), the
//! expiry, the revocation list, whether the signing key is still published, and whether the
//! client still exists and is connected. All hash lookups.

use std::sync::Arc;

use crate::{
    AppState,
    error::{CredentialProblem, GatewayError},
    identity::{Credential, Principal},
    oauth::tokens::{self, TokenIdentity},
    snapshot::{ServerEntry, Snapshot},
};

pub async fn identify(
    state: &AppState,
    snapshot: &Snapshot,
    token: &str,
    server: &ServerEntry,
) -> Result<Principal, GatewayError> {
    if let Some(iss) = crate::oauth::external::unverified_issuer(token)
        && iss != state.config.public_base()
    {
        return match crate::oauth::external::trusted_for(state, &iss, &server.name) {
            Some(trusted) => {
                crate::oauth::external::identify(state, snapshot, token, server, trusted).await
            }
            None => Err(GatewayError::InvalidCredential(
                CredentialProblem::NotRecognised,
            )),
        };
    }
    let now = crate::now_ms().div_euclid(1000);
    let leeway = i64::try_from(state.config.oauth.clock_skew.as_secs()).unwrap_or(60);
    let not_recognised = GatewayError::InvalidCredential(CredentialProblem::NotRecognised);
    let identity: Arc<TokenIdentity> = match state.token_cache.get_at(token, now) {
        Some(cached) => cached,
        None => {
            let identity = Arc::new(tokens::verify(
                token,
                &snapshot.oauth.signing,
                state.config.public_base(),
                &server.resource,
                leeway,
                now,
            )?);
            state.token_cache.insert(token, identity.clone(), now);
            identity
        }
    };
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
        return Err(not_recognised);
    }
    Ok(Principal {
        client: Some(identity.client.clone()),
        credential: Credential::AccessToken {
            jti: identity.jti.clone(),
        },
        narrowing: None,
        scope: Some(Arc::new(identity.scope.for_server(&server.name))),
        user: identity.user().map(Arc::from),
        grant: None,
        subject: identity.user().map(Arc::from),
    })
}
