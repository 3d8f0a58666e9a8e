//! Sign-in through an upstream OpenID Connect provider: authorization code + PKCE to the
//! provider, ID-token validation (signature against its JWKS, `iss`, `aud`, expiry, `nonce`),
//! then the user is found or created by `(provider, sub)` with groups mapped from a claim.
//!
//! The `state` sent to the provider is sealed (it carries our pending authorization request,
//! the PKCE verifier and the nonce) and bound to a browser cookie, so a callback URL made by
//! someone else cannot sign this browser into their account.

use axum::{
    extract::{Path, Request, State},
    response::Response,
};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::Full;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::Instant;

use crate::{
    AppState,
    config::IdentityProviderConfig,
    federation::identity_providers::{Cached, Discovery},
    oauth::{form::Form, login, pages, remote, session},
    secrets,
    tokens::{
        jwt::{self, Expectations},
        keys::VerifierSet,
    },
};
use gatehouse_model::records::UserRecord;

const STATE_PURPOSE: &str = "upstream-state";
const BINDING_COOKIE: &str = "gatehouse_upstream";

#[derive(Serialize, Deserialize)]
struct UpstreamState {
    provider: String,
    request: String,
    verifier: String,
    nonce: String,
    /// SHA-256 of the browser-binding cookie.
    binding: String,
}

pub(crate) async fn provider_keys(
    state: &AppState,
    provider: &IdentityProviderConfig,
    force: bool,
) -> Result<std::sync::Arc<Cached>, String> {
    if let Some(cached) = state
        .identity_providers
        .cache
        .lock()
        .get(&provider.name)
        .cloned()
        && !remote::due(cached.fetched, force)
    {
        return Ok(cached);
    }
    let issuer = provider.issuer.trim_end_matches('/');
    let document =
        remote::get_json(state, &format!("{issuer}/.well-known/openid-configuration")).await?;
    let discovery: Discovery = serde_json::from_value(document).map_err(|e| e.to_string())?;
    if discovery.issuer.trim_end_matches('/') != issuer {
        return Err(format!("discovery names issuer {}", discovery.issuer));
    }
    let jwks = remote::get_json(state, &discovery.jwks_uri).await?;
    let keys = VerifierSet::from_jwks(&jwks).map_err(|e| e.to_string())?;
    let cached = std::sync::Arc::new(Cached {
        discovery,
        keys,
        fetched: Instant::now(),
    });
    state
        .identity_providers
        .cache
        .lock()
        .insert(provider.name.clone(), cached.clone());
    Ok(cached)
}

fn provider<'a>(state: &'a AppState, name: &str) -> Option<&'a IdentityProviderConfig> {
    state.config.oauth.providers.iter().find(|p| p.name == name)
}

fn redirect_uri(state: &AppState) -> String {
    format!("{}/oauth/upstream/callback", state.config.public_base())
}

fn unavailable(err: &str) -> Response {
    tracing::warn!(error = %err, "upstream identity provider failed");
    pages::error(
        StatusCode::BAD_GATEWAY,
        "the identity provider could not be reached or answered wrongly; try again later",
    )
}

/// `GET /oauth/login/{provider}?req=…`: off to the provider.
pub async fn start(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let Some(provider) = provider(&state, &name) else {
        return pages::error(StatusCode::NOT_FOUND, "unknown identity provider");
    };
    let params =
        Form::parse(request.uri().query().unwrap_or("").as_bytes(), &[]).unwrap_or_default();
    let Some(sealed) = params.get("req") else {
        return pages::error(StatusCode::BAD_REQUEST, "start from the application");
    };
    let cached = match provider_keys(&state, provider, false).await {
        Ok(cached) => cached,
        Err(err) => return unavailable(&err),
    };
    let (Ok(verifier), Ok(nonce), Ok(binding)) = (
        secrets::random_base62(64),
        secrets::random_base62(32),
        secrets::random_base62(32),
    ) else {
        return pages::error(StatusCode::INTERNAL_SERVER_ERROR, "try again");
    };
    let sealed_state = session::seal(
        &state.keyring,
        STATE_PURPOSE,
        &UpstreamState {
            provider: name.clone(),
            request: sealed.to_owned(),
            verifier: verifier.clone(),
            nonce: nonce.clone(),
            binding: hex::encode(Sha256::digest(binding.as_bytes())),
        },
        crate::now_ms() + 10 * 60 * 1000,
    );
    use base64::Engine;
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &provider.client_id)
        .append_pair("redirect_uri", &redirect_uri(&state))
        .append_pair("scope", &provider.scopes.join(" "))
        .append_pair("state", &sealed_state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let endpoint = &cached.discovery.authorization_endpoint;
    let separator = if endpoint.contains('?') { '&' } else { '?' };
    let mut response = pages::see_other(&format!("{endpoint}{separator}{query}"));
    let cookie = format!(
        "{BINDING_COOKIE}={binding}; Path=/oauth/upstream; HttpOnly; SameSite=Lax; Max-Age=600"
    );
    if let Ok(value) = HeaderValue::try_from(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /oauth/upstream/callback`: the provider's answer.
pub async fn callback(State(state): State<AppState>, request: Request) -> Response {
    if request.method() != Method::GET {
        return pages::error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    // The same redirect URI serves a person connecting their account at an upstream server.
    if let Some(response) =
        super::upstream_connect::callback(&state, request.uri(), request.headers()).await
    {
        return response;
    }
    let params =
        Form::parse(request.uri().query().unwrap_or("").as_bytes(), &[]).unwrap_or_default();
    let now = crate::now_ms();
    let Some(upstream) = params
        .get("state")
        .and_then(|s| session::open::<UpstreamState>(&state.keyring, STATE_PURPOSE, s, now))
    else {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "this sign-in has expired or was altered; start again",
        );
    };
    let bound = session::cookie(request.headers(), BINDING_COOKIE)
        .is_some_and(|b| hex::encode(Sha256::digest(b.as_bytes())) == upstream.binding);
    if !bound {
        return pages::error(
            StatusCode::FORBIDDEN,
            "this sign-in was started in another browser",
        );
    }
    if let Some(error) = params.get("error") {
        return pages::error(
            StatusCode::FORBIDDEN,
            &format!("the identity provider refused the sign-in ({error})"),
        );
    }
    let Some(code) = params.get("code") else {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "the identity provider sent no code",
        );
    };
    let Some(provider) = provider(&state, &upstream.provider) else {
        return pages::error(StatusCode::NOT_FOUND, "unknown identity provider");
    };
    let claims = match exchange(&state, provider, code, &upstream).await {
        Ok(claims) => claims,
        Err(err) => return unavailable(&err),
    };
    match link_user(&state, provider, &claims).await {
        Ok(user) if user.disabled_at.is_none() => {
            if let Err(err) = state.store.record_login(&user.id, now).await {
                tracing::warn!(error = %err, "recording the sign-in time failed");
            }
            login::signed_in(&state, &user.id, &upstream.request)
        }
        Ok(_) => pages::error(StatusCode::FORBIDDEN, "your account is disabled here"),
        Err(err) => {
            tracing::error!(error = %err, "linking a federated user failed");
            pages::error(StatusCode::INTERNAL_SERVER_ERROR, "try again")
        }
    }
}

/// Redeems the code and validates the ID token; returns its claims.
async fn exchange(
    state: &AppState,
    provider: &IdentityProviderConfig,
    code: &str,
    upstream: &UpstreamState,
) -> Result<serde_json::Map<String, Value>, String> {
    let redirect = redirect_uri(state);
    redeem_code(
        state,
        provider,
        code,
        &redirect,
        &upstream.verifier,
        &upstream.nonce,
    )
    .await
}

/// Redeems an authorization code sent to `redirect_uri` (PKCE `verifier`) at the provider's
/// token endpoint and validates its ID token (signature, `iss`, `aud`, expiry, `nonce`).
pub(crate) async fn redeem_code(
    state: &AppState,
    provider: &IdentityProviderConfig,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
    nonce: &str,
) -> Result<serde_json::Map<String, Value>, String> {
    let cached = provider_keys(state, provider, false).await?;
    let secret = std::env::var(&provider.client_secret_env).map_err(|_| {
        format!(
            "environment variable {} is not set",
            provider.client_secret_env
        )
    })?;
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("code_verifier", verifier)
        .finish();
    use base64::Engine;
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        encode(&provider.client_id),
        encode(&secret)
    ));
    let request = http::Request::post(&cached.discovery.token_endpoint)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .header(header::AUTHORIZATION, format!("Basic {basic}"))
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let tokens = remote::json(state, request).await?;
    let id_token = tokens
        .get("id_token")
        .and_then(Value::as_str)
        .ok_or("no id_token in the token response")?;
    let expect = Expectations {
        issuer: cached.discovery.issuer.clone(),
        audience: provider.client_id.clone(),
        typ: None,
        leeway_secs: i64::try_from(state.config.oauth.clock_skew.as_secs()).unwrap_or(60),
        single_key_without_kid: false,
    };
    let verified = match jwt::verify(id_token, &cached.keys, &expect) {
        Err(jwt::JwtError::UnknownKid) => {
            // The provider rotated its keys: fetch them again (rate-limited) and retry once.
            let fresh = provider_keys(state, provider, true).await?;
            jwt::verify(id_token, &fresh.keys, &expect)
        }
        other => other,
    }
    .map_err(|e| format!("ID token: {e}"))?;
    if verified.get("nonce").and_then(Value::as_str) != Some(nonce) {
        return Err("ID token nonce does not match".into());
    }
    Ok(verified.into_claims())
}

pub(super) fn claim_groups(
    provider: &IdentityProviderConfig,
    claims: &serde_json::Map<String, Value>,
) -> Vec<String> {
    let Some(claim) = &provider.groups_claim else {
        return Vec::new();
    };
    let values: Vec<String> = match claims.get(claim) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(text)) => text.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    let mut groups: Vec<String> = if provider.group_map.is_empty() {
        values
            .into_iter()
            .filter(|g| gatehouse_model::names::GroupName::parse(g).is_ok())
            .collect()
    } else {
        values
            .iter()
            .filter_map(|v| provider.group_map.get(v).cloned())
            .collect()
    };
    groups.sort();
    groups.dedup();
    groups
}

/// Finds the user by `(provider, sub)`, creating them at first sign-in; groups and display
/// name follow the provider at every sign-in.
pub(super) async fn link_user(
    state: &AppState,
    provider: &IdentityProviderConfig,
    claims: &serde_json::Map<String, Value>,
) -> Result<UserRecord, crate::store::StoreError> {
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let groups = claim_groups(provider, claims);
    let display = claims
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(user) = state.store.find_user_by_idp(&provider.name, sub).await? {
        if user.groups != groups || user.display_name != display {
            state
                .store
                .update_user_profile(&user.id, &display, &groups)
                .await?;
        }
        return state.store.get_user(&user.id).await;
    }
    let preferred = claims
        .get(&provider.username_claim)
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .filter(|u| gatehouse_model::names::Username::parse(u).is_ok());
    let username = match preferred {
        Some(name) if state.store.find_user_by_username(&name).await?.is_none() => name,
        _ => format!("{}/{sub}", provider.name),
    };
    let record = UserRecord {
        id: format!(
            "usr_{}",
            secrets::random_id(16).map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))?
        ),
        username,
        display_name: display,
        password_hash: None,
        idp: Some(provider.name.clone()),
        idp_subject: Some(sub.to_owned()),
        groups,
        created_at: crate::now_ms(),
        disabled_at: None,
        last_login_at: None,
    };
    state.store.insert_user(&record).await?;
    // The new user must be in this replica's snapshot before the consent page looks.
    if let Err(err) = state.snapshot.reload().await {
        tracing::error!(error = %err, "snapshot reload after a first sign-in failed");
    }
    Ok(record)
}
