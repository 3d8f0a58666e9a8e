//! RFC 7009 revocation and RFC 7662 introspection.
//!
//! Revocation takes access tokens (their `jti` goes on the revocation list until they expire)
//! and, for uniformity, Gatehouse API keys. A token that is unknown, already invalid or not
//! the caller's is answered 200 like a revoked one (RFC 7009 §2.2), so the endpoint cannot be
//! used to probe. The snapshot is reloaded before answering, so the revoked credential is
//! refused by this process's next request (other replicas within one poll interval).

use axum::{
    extract::{ConnectInfo, Request, State},
    response::Response,
};
use http::Method;
use serde_json::{Value, json};
use std::{net::SocketAddr, time::Instant};

use crate::{
    AppState,
    error::OAuthError,
    oauth::{OAuthAudit, clients::OAuthClient, form::Form, tokens},
    snapshot::Snapshot,
    tokens::api_key,
};
use gatehouse_model::records::RevokedToken;

const HINTS: [&str; 3] = ["access_token", "refresh_token", "api_key"];

async fn authenticated(
    state: &AppState,
    request: Request,
    audit: &mut OAuthAudit,
) -> Result<(Form, std::sync::Arc<OAuthClient>), OAuthError> {
    let (parts, body) = request.into_parts();
    if parts.method != Method::POST {
        return Err(OAuthError::MethodNotAllowed);
    }
    let form = Form::read(&parts.headers, body, &[]).await?;
    let snapshot = state.snapshot.current();
    let client =
        super::assertion::authenticate(state, &snapshot, &parts.headers, &form, crate::now_ms())
            .await?;
    audit.client = Some(client.name.to_string());
    Ok((form, client))
}

pub async fn revoke(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let mut audit = OAuthAudit::new(&state, peer, request.headers(), "oauth/revoke");
    let result = async {
        let (form, client) = authenticated(&state, request, &mut audit).await?;
        let token = form.require("token")?;
        // RFC 7009 §2.1: an unknown hint is ignored, not an error; the token is looked up
        // by its shape anyway.
        let _hint = form.get("token_type_hint").filter(|h| HINTS.contains(h));
        revoke_token(&state, &client, token, &mut audit).await
    }
    .await;
    audit.respond(&state, started, result.map(|()| None)).await
}

async fn revoke_token(
    state: &AppState,
    client: &OAuthClient,
    token: &str,
    audit: &mut OAuthAudit,
) -> Result<(), OAuthError> {
    let snapshot = state.snapshot.current();
    let now = crate::now_ms();
    let revoked = if api_key::is_gatehouse_key(token) {
        match snapshot.keys.check(&state.keyring, token, now) {
            Ok((key_id, entry)) if *entry.client == *client.name => {
                audit.credential_id = Some(key_id.to_owned());
                state
                    .store
                    .revoke_api_key(key_id, now)
                    .await
                    .map_err(|_| OAuthError::ServerError)?;
                true
            }
            _ => false,
        }
    } else if token.starts_with(super::grants::REFRESH_PREFIX) {
        let hash = super::grants::refresh_hash(state, token);
        match state.store.find_refresh_token_to_revoke(&hash).await {
            Ok(Some(record)) if record.client == *client.name => {
                audit.credential_id = Some(format!("grant:{}", record.family));
                super::grants::revoke_grant(state, &record.family, now).await?;
            }
            Ok(_) => {}
            Err(_) => return Err(OAuthError::ServerError),
        }
        // `revoke_grant` reloaded the snapshot already.
        false
    } else if tokens::looks_like_jwt(token) {
        match own_token(state, &snapshot, token) {
            Some(identity) if *identity.client == *client.name => {
                audit.credential_id = Some(identity.jti.to_string());
                state
                    .store
                    .revoke_access_token(
                        &RevokedToken {
                            jti: identity.jti.to_string(),
                            expires_at: identity.exp.saturating_mul(1000),
                        },
                        now,
                    )
                    .await
                    .map_err(|_| OAuthError::ServerError)?;
                true
            }
            _ => false,
        }
    } else {
        false
    };
    if revoked && let Err(err) = state.snapshot.reload().await {
        // Stored: the regular poll will pick it up. Tell the operator, not the client.
        tracing::error!(error = %err, "snapshot reload after revocation failed");
    }
    Ok(())
}

fn own_token(state: &AppState, snapshot: &Snapshot, token: &str) -> Option<tokens::TokenIdentity> {
    tokens::verify_any_audience(
        token,
        &snapshot.oauth.signing,
        state.config.public_base(),
        leeway(state),
        crate::now_ms().div_euclid(1000),
    )
    .ok()
}

fn leeway(state: &AppState) -> i64 {
    i64::try_from(state.config.oauth.clock_skew.as_secs()).unwrap_or(60)
}

pub async fn introspect(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let mut audit = OAuthAudit::new(&state, peer, request.headers(), "oauth/introspect");
    let result = async {
        let (form, client) = authenticated(&state, request, &mut audit).await?;
        if client.is_public() {
            return Err(OAuthError::InvalidClient { basic: false });
        }
        let token = form.require("token")?;
        Ok(describe(&state, token))
    }
    .await;
    audit.respond(&state, started, result.map(Some)).await
}

/// RFC 7662 §2.2: `active` and, when active, what the token is.
fn describe(state: &AppState, token: &str) -> Value {
    let snapshot = state.snapshot.current();
    let inactive = json!({ "active": false });
    if api_key::is_gatehouse_key(token) {
        return match snapshot.keys.check(&state.keyring, token, crate::now_ms()) {
            Ok((_, entry)) => {
                let mut body = json!({
                    "active": true,
                    "token_type": "api_key",
                    "client_id": &*entry.client,
                    "sub": &*entry.client,
                });
                if let Some(exp) = entry.expires_at {
                    body["exp"] = json!(exp.div_euclid(1000));
                }
                body
            }
            Err(_) => inactive,
        };
    }
    if !tokens::looks_like_jwt(token) {
        return inactive;
    }
    match own_token(state, &snapshot, token) {
        Some(identity)
            if !snapshot.oauth.revoked.contains(&*identity.jti)
                && !identity
                    .grant
                    .as_deref()
                    .is_some_and(|g| snapshot.oauth.revoked_grants.contains(g))
                && snapshot.oauth.clients.get(&identity.client).is_some() =>
        {
            let mut body = json!({
                "active": true,
                "token_type": if identity.jkt.is_some() { "DPoP" } else { "Bearer" },
                "iss": state.config.public_base(),
                "client_id": &*identity.client,
                "sub": &*identity.subject,
                "aud": identity.audiences,
                "scope": identity.scope.to_string(),
                "exp": identity.exp,
                "jti": &*identity.jti,
            });
            // RFC 9449 §6.2: a resource server that introspects needs the key binding.
            if let Some(jkt) = &identity.jkt {
                body["cnf"] = json!({ "jkt": &**jkt });
            }
            body
        }
        _ => inactive,
    }
}
