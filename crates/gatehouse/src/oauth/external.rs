//! Access tokens from external authorization servers (Entra ID, Okta, Keycloak, Auth0) that
//! some servers trust (`oauth.trusted_issuers`).
//!
//! The issuer's keys are fetched from its JWKS (found through discovery unless configured),
//! cached, and fetched again on an unknown `kid` at most every 30 s, so a flood of forged
//! `kid`s cannot turn into a flood of requests to the issuer. A verified token is mapped onto
//! Gatehouse terms: its groups (a user acting through an app) or its application id (an app
//! acting for itself) pick the connection, its scopes become Gatehouse scopes. Nothing
//! unmapped grants anything.

use serde_json::Value;
use std::{sync::Arc, time::Instant};

use crate::{
    AppState,
    config::TrustedIssuerConfig,
    error::{CredentialProblem, GatewayError},
    federation::external_issuers::{ExternalIdentity, IssuerKeys},
    grants::Grant,
    identity::{Credential, Principal},
    oauth::remote,
    snapshot::{ServerEntry, Snapshot, merge_group_grants},
    tokens::{
        jwt::{self, Expectations, JwtError},
        keys::VerifierSet,
        token_cache::TokenKey,
    },
};
use gatehouse_model::scope::{Scope, ScopeItem};

/// The trusted issuer whose `iss` this is, if `server` accepts its tokens.
pub fn trusted_for<'a>(
    state: &'a AppState,
    iss: &str,
    server: &str,
) -> Option<&'a TrustedIssuerConfig> {
    state
        .config
        .oauth
        .trusted_issuers
        .iter()
        .find(|t| t.issuer == iss && t.servers.iter().any(|s| s == server))
}

/// The `iss` of a JWT, unverified (only to choose which keys verify it).
pub fn unverified_issuer(token: &str) -> Option<String> {
    unverified_claim(token, "iss")
}

/// A string claim of a JWT, unverified: only to choose how to verify it.
pub fn unverified_claim(token: &str, name: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get(name)?.as_str().map(str::to_owned)
}

async fn issuer_keys(
    state: &AppState,
    trusted: &TrustedIssuerConfig,
    force: bool,
) -> Result<Arc<IssuerKeys>, String> {
    keys_of(
        state,
        &trusted.name,
        &trusted.issuer,
        trusted.jwks_uri.as_deref(),
        force,
    )
    .await
}

/// The keys of an issuer, cached under `cache_key`: from `jwks_uri`, or the one its discovery
/// document names. Fetched again when an hour old, or when `force` (a token named a `kid`
/// not among them) and the last fetch is at least 30 s old.
pub(crate) async fn keys_of(
    state: &AppState,
    cache_key: &str,
    issuer: &str,
    jwks_uri: Option<&str>,
    force: bool,
) -> Result<Arc<IssuerKeys>, String> {
    if let Some(cached) = state.external_issuers.keys.lock().get(cache_key).cloned()
        && !remote::due(cached.fetched, force)
    {
        return Ok(cached);
    }
    let jwks_uri = match jwks_uri {
        Some(uri) => uri.to_owned(),
        None => {
            let base = issuer.trim_end_matches('/');
            let discovery =
                match remote::get_json(state, &format!("{base}/.well-known/openid-configuration"))
                    .await
                {
                    Ok(doc) => doc,
                    Err(_) => {
                        remote::get_json(
                            state,
                            &format!("{base}/.well-known/oauth-authorization-server"),
                        )
                        .await?
                    }
                };
            discovery
                .get("jwks_uri")
                .and_then(Value::as_str)
                .ok_or("discovery has no jwks_uri")?
                .to_owned()
        }
    };
    let keys = VerifierSet::from_jwks(&remote::get_json(state, &jwks_uri).await?)
        .map_err(|e| e.to_string())?;
    let cached = Arc::new(IssuerKeys {
        keys,
        fetched: Instant::now(),
    });
    state
        .external_issuers
        .keys
        .lock()
        .insert(cache_key.to_owned(), cached.clone());
    Ok(cached)
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(text)) => text.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn map_values(
    values: Vec<String>,
    map: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    if map.is_empty() {
        values
    } else {
        values.iter().filter_map(|v| map.get(v).cloned()).collect()
    }
}

/// A verified external token's principal, and the thumbprint of the DPoP key the token is
/// bound to (`cnf.jkt`), if it is.
pub type Bound = (Principal, Option<Arc<str>>);

/// Verifies and maps a token of `trusted`, for `server`: the principal, and the thumbprint
/// of the DPoP key the token is bound to, if it is (the gateway then wants a proof by it).
pub async fn identify(
    state: &AppState,
    snapshot: &Snapshot,
    token: &str,
    server: &ServerEntry,
    trusted: &TrustedIssuerConfig,
) -> Result<Bound, GatewayError> {
    let now = crate::now_ms().div_euclid(1000);
    let leeway = i64::try_from(state.config.oauth.clock_skew.as_secs()).unwrap_or(60);
    let audience = trusted.audience.as_deref().unwrap_or(&server.resource);
    let not_recognised = || GatewayError::InvalidCredential(CredentialProblem::NotRecognised);
    let identity = match state.external_issuers.cache.get_at(token, now) {
        Some(identity) if identity.issuer == trusted.name => identity,
        Some(_) => return Err(not_recognised()),
        None => {
            let expect = Expectations {
                issuer: trusted.issuer.clone(),
                audience: audience.to_owned(),
                typ: None,
                leeway_secs: leeway,
                single_key_without_kid: false,
            };
            let keys = issuer_keys(state, trusted, false).await.map_err(|e| {
                tracing::warn!(issuer = %trusted.name, error = %e, "external issuer keys unavailable");
                GatewayError::UpstreamUnavailable
            })?;
            let verified = match jwt::verify_at(token, &keys.keys, &expect, now) {
                Err(JwtError::UnknownKid) => {
                    let fresh = issuer_keys(state, trusted, true).await.map_err(|e| {
                        tracing::warn!(issuer = %trusted.name, error = %e, "external issuer keys unavailable");
                        GatewayError::UpstreamUnavailable
                    })?;
                    jwt::verify_at(token, &fresh.keys, &expect, now)
                }
                other => other,
            }
            .map_err(|e| match e {
                JwtError::Expired => GatewayError::InvalidCredential(CredentialProblem::Expired),
                _ => not_recognised(),
            })?;
            let claims = verified.claims();
            let groups = match &trusted.groups_claim {
                Some(claim) => {
                    let mut groups = map_values(strings(claims.get(claim)), &trusted.group_map);
                    groups.retain(|g| gatehouse_model::names::GroupName::parse(g).is_ok());
                    groups
                }
                None => Vec::new(),
            };
            let app = trusted
                .client_claims
                .iter()
                .find_map(|c| claims.get(c).and_then(Value::as_str));
            let client = app.and_then(|id| {
                if trusted.client_map.is_empty() {
                    Some(id.to_owned())
                } else {
                    trusted.client_map.get(id).cloned()
                }
            });
            let scopes = map_values(
                strings(claims.get(&trusted.scope_claim)),
                &trusted.scope_map,
            );
            let scope = Scope::from_items(scopes.iter().filter_map(|s| ScopeItem::parse(s).ok()));
            // A confirmation Gatehouse cannot honour (mTLS `x5t#S256`, or a malformed
            // `jkt`) is refused, never ignored: the token would work without its key.
            let jkt = match claims.get("cnf") {
                None => None,
                Some(cnf) => Some(Arc::<str>::from(
                    cnf.get("jkt")
                        .and_then(Value::as_str)
                        .filter(|j| !j.is_empty())
                        .ok_or_else(not_recognised)?,
                )),
            };
            let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
            let identity = Arc::new(ExternalIdentity {
                issuer: trusted.name.clone(),
                audiences: strings(claims.get("aud")),
                exp: verified.exp(),
                user: (!groups.is_empty()).then(|| format!("{}:{sub}", trusted.name)),
                subject: (!sub.is_empty()).then(|| format!("{}:{sub}", trusted.name)),
                client,
                groups,
                jti: claims
                    .get("jti")
                    .and_then(Value::as_str)
                    .map(|j| format!("{}:{j}", trusted.name))
                    .unwrap_or_default(),
                scope,
                jkt,
            });
            state
                .external_issuers
                .cache
                .insert(token, identity.clone(), now);
            identity
        }
    };
    Ok((
        admit(state, snapshot, &identity, server, trusted, now)?,
        identity.jkt.clone(),
    ))
}

/// The principal for a token found in the cache by `key`, or `None` if it is not there.
/// The trusted issuer it was verified for must still be the one `server` trusts for its
/// `iss`, as on first sight; every other per-request check runs again in [`admit`].
pub fn identify_cached(
    state: &AppState,
    snapshot: &Snapshot,
    key: &TokenKey,
    server: &ServerEntry,
    now: i64,
) -> Option<Result<Bound, GatewayError>> {
    let identity = state.external_issuers.cache.get_keyed_at(key, now)?;
    let trusted = state
        .config
        .oauth
        .trusted_issuers
        .iter()
        .find(|t| t.name == identity.issuer)
        .and_then(|t| trusted_for(state, &t.issuer, &server.name))
        .filter(|t| t.name == identity.issuer);
    Some(match trusted {
        Some(trusted) => admit(state, snapshot, &identity, server, trusted, now)
            .map(|principal| (principal, identity.jkt.clone())),
        None => Err(GatewayError::InvalidCredential(
            CredentialProblem::NotRecognised,
        )),
    })
}

/// The checks a verified token passes on every request, and the principal it maps to.
fn admit(
    state: &AppState,
    snapshot: &Snapshot,
    identity: &ExternalIdentity,
    server: &ServerEntry,
    trusted: &TrustedIssuerConfig,
    now: i64,
) -> Result<Principal, GatewayError> {
    let leeway = i64::try_from(state.config.oauth.clock_skew.as_secs()).unwrap_or(60);
    let audience = trusted.audience.as_deref().unwrap_or(&server.resource);
    if identity.exp.saturating_add(leeway) <= now {
        return Err(GatewayError::InvalidCredential(CredentialProblem::Expired));
    }
    if !identity.audiences.iter().any(|a| a == audience) {
        return Err(GatewayError::InvalidCredential(
            CredentialProblem::NotRecognised,
        ));
    }
    let grant: Arc<Grant> = match (&identity.user, &identity.client) {
        (Some(_), _) => merge_group_grants(&snapshot.groups, &identity.groups, &server.name)
            .ok_or(GatewayError::NoConnection)?,
        (None, Some(client)) => snapshot
            .grant(client, &server.name)
            .cloned()
            .ok_or(GatewayError::NoConnection)?,
        (None, None) => return Err(GatewayError::NoConnection),
    };
    Ok(Principal {
        client: Some(Arc::from(
            identity
                .client
                .clone()
                .unwrap_or_else(|| format!("{}:app", trusted.name)),
        )),
        credential: Credential::AccessToken {
            jti: Arc::from(identity.jti.as_str()),
        },
        narrowing: None,
        scope: Some(Arc::new(identity.scope.for_server(&server.name))),
        user: identity.user.as_deref().map(Arc::from),
        grant: Some(grant),
        subject: identity.subject.as_deref().map(Arc::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_as_lists_and_mapping() {
        let array = serde_json::json!(["a", "b", 3]);
        assert_eq!(strings(Some(&array)), ["a", "b"]);
        let text = serde_json::json!("Files.Read  mcp:x");
        assert_eq!(strings(Some(&text)), ["Files.Read", "mcp:x"]);
        assert!(strings(None).is_empty());
        let map = [("Files.Read".to_owned(), "mcp:files:read".to_owned())]
            .into_iter()
            .collect();
        // With a map, only mapped values count: nothing unmapped grants anything.
        assert_eq!(
            map_values(vec!["Files.Read".into(), "mcp:x".into()], &map),
            ["mcp:files:read"]
        );
        assert_eq!(
            map_values(vec!["mcp:x".into()], &Default::default()),
            ["mcp:x"]
        );
    }

    #[test]
    fn the_issuer_is_read_without_trusting_it() {
        use base64::Engine;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"iss":"https://idp.example","sub":"x"}"#);
        let token = format!("eyJhbGciOiJFUzI1NiJ9.{payload}.c2ln");
        assert_eq!(
            unverified_issuer(&token).as_deref(),
            Some("https://idp.example")
        );
        assert_eq!(unverified_issuer("not.a-token"), None);
    }
}
