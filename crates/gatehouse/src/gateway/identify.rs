//! Who is calling: an access token (JWT, perhaps DPoP-bound) or an API key, checked against
//! the snapshot; a refused key is named in the record when its secret matches.

use http::request::Parts;
use std::sync::{Arc, atomic::Ordering};

use crate::{
    context::AppState,
    error::{CredentialProblem, GatewayError},
    gateway::recorded::{self, Record},
    identity::{Credential, Principal, api_keys::KeyRejection},
    snapshot::{ServerEntry, Snapshot},
};

pub(super) async fn identify(
    state: &AppState,
    snapshot: &Snapshot,
    parts: &Parts,
    server: &ServerEntry,
    record: &mut Record,
) -> Result<Principal, GatewayError> {
    let Some(token) = crate::edge::access::credential(&parts.headers, &parts.uri)? else {
        return if server.anonymous_grant.is_some() {
            Ok(Principal::anonymous())
        } else {
            Err(GatewayError::MissingCredential)
        };
    };
    if crate::oauth::tokens::looks_like_jwt(token) {
        let principal = super::bearer::identify(
            state,
            snapshot,
            token,
            server,
            (&parts.method, &parts.headers),
        )
        .await
        .inspect_err(|err| {
            state
                .metrics
                .credential_refused("access_token", err.reason())
        })?;
        state.metrics.hot.access_token_valid.inc();
        record.client = principal.client.as_deref().map(str::to_owned);
        record.user = principal.user.as_deref().map(str::to_owned);
        if let Credential::AccessToken { jti } = &principal.credential {
            record.credential_id = Some(jti.to_string());
        }
        return Ok(principal);
    }
    if crate::edge::access::is_dpop_scheme(&parts.headers) {
        return Err(GatewayError::InvalidDpopProof {
            problem: "the DPoP scheme carries access tokens, not API keys".into(),
        });
    }
    let now = crate::now_ms();
    let (key_id, entry) = match snapshot.keys.check(&state.keyring, token, now) {
        Ok(found) => found,
        Err(rejection) => {
            state.metrics.credential_refused(
                "api_key",
                match rejection {
                    KeyRejection::Malformed => "malformed",
                    KeyRejection::NotRecognised => "not_recognised",
                    KeyRejection::Expired => "expired",
                },
            );
            if rejection != KeyRejection::Malformed {
                recorded::identify_refused_key(state, token, record).await;
            }
            return Err(GatewayError::InvalidCredential(match rejection {
                KeyRejection::Malformed => CredentialProblem::Malformed,
                KeyRejection::NotRecognised => CredentialProblem::NotRecognised,
                KeyRejection::Expired => CredentialProblem::Expired,
            }));
        }
    };
    state.metrics.hot.api_key_valid.inc();
    entry.last_used.fetch_max(now, Ordering::Relaxed);
    record.client = Some(entry.client.to_string());
    record.credential_id = Some(key_id.to_owned());
    Ok(Principal {
        client: Some(entry.client.clone()),
        credential: Credential::ApiKey {
            key_id: Arc::from(key_id),
        },
        narrowing: entry.narrowing.clone(),
        scope: None,
        user: None,
        grant: None,
        subject: None,
    })
}
