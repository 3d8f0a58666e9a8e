//! Operator sign-in on the admin listener through the OpenID provider `[admin.sign_in]`
//! names: `/admin/sign-in` → the provider (code + PKCE, `state` sealed and bound to this
//! browser, `nonce`) → `/admin/callback` → a session cookie carrying the role the person's
//! groups map to. The session is an admin token (ADR 0008, "as built"), so the guard, the
//! role table, expiry, revocation and attribution are the token's; every replica reads it
//! from the store. A cookie-authenticated change needs `X-CSRF-Token` (the value of the
//! CSRF cookie, an HMAC of the session's id under the master key).

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};

use crate::{
    admin::{AdminService, Operator},
    config::{AdminSignInConfig, IdentityProviderConfig},
    context::AppState,
    identity::{admin_tokens, login_guard::Refusal},
    oauth::{form::Form, pages, session, upstream},
    secrets,
};

const STATE_PURPOSE: &str = "admin-sign-in";
const CSRF_PURPOSE: &str = "admin-session";
const SESSION_COOKIE: &str = "gatehouse_admin";
const CSRF_COOKIE: &str = "gatehouse_admin_csrf";
const BINDING_COOKIE: &str = "gatehouse_admin_sign_in";
/// The header a cookie-authenticated change carries.
pub const CSRF_HEADER: &str = "x-csrf-token";

#[derive(Serialize, Deserialize)]
struct Pending {
    verifier: String,
    nonce: String,
    /// SHA-256 of the browser-binding cookie.
    binding: String,
}

struct SignIn<'a> {
    config: &'a AdminSignInConfig,
    provider: &'a IdentityProviderConfig,
    base: String,
}

impl SignIn<'_> {
    fn callback(&self) -> String {
        format!("{}/admin/callback", self.base)
    }
}

fn configured(state: &AppState) -> Option<SignIn<'_>> {
    let config = state.config.admin.sign_in.as_ref()?;
    let provider = state
        .config
        .oauth
        .providers
        .iter()
        .find(|p| p.name == config.provider)?;
    let base = admin_base(state)?;
    Some(SignIn {
        config,
        provider,
        base,
    })
}

/// The admin listener's URL as browsers reach it: `[admin.sign_in] admin_url`, `[admin] url`,
/// or `http://{admin_listen}`.
pub(crate) fn admin_base(state: &AppState) -> Option<String> {
    let configured = state
        .config
        .admin
        .sign_in
        .as_ref()
        .and_then(|s| s.admin_url.as_ref())
        .or(state.config.admin.url.as_ref());
    match configured {
        Some(url) => Some(url.trim_end_matches('/').to_owned()),
        None => state.config.admin_listen.map(|a| format!("http://{a}")),
    }
}

/// Whether browsers reach the admin listener over https, so its cookies are `__Host-`.
pub(crate) fn secure_cookies(state: &AppState) -> bool {
    admin_base(state).is_some_and(|base| base.starts_with("https://"))
}

/// The session cookie's name: `__Host-` prefixed when the admin listener is reached over
/// https (the browser then holds it for that host and path `/` only, and over TLS only).
fn cookie_name(secure: bool, base: &str) -> String {
    if secure {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

/// The admin token a request's session cookie carries (opened by the OpenID sign-in or by
/// the console's admin-token sign-in).
pub(crate) fn session_token<'a>(state: &AppState, headers: &'a HeaderMap) -> Option<&'a str> {
    session::cookie(headers, &cookie_name(secure_cookies(state), SESSION_COOKIE))
}

/// Whether `presented` is the CSRF token of the session whose admin token id is `id`.
pub(crate) fn csrf_matches(state: &AppState, id: &str, presented: &str) -> bool {
    session::csrf_ok(&state.keyring, CSRF_PURPOSE, id, "", presented)
}

/// The `Set-Cookie` values that hand a browser the session `session` (its token in the
/// HttpOnly cookie, its CSRF token in the readable one), for `max_age` seconds.
pub(crate) fn session_cookies(
    state: &AppState,
    session: &crate::admin::CreatedAdminToken,
    max_age: u64,
) -> [String; 2] {
    let secure = secure_cookies(state);
    [
        format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
            cookie_name(secure, SESSION_COOKIE),
            session.token,
            secure_attr(secure)
        ),
        // Readable by a page's script, which sends it back as X-CSRF-Token.
        format!(
            "{}={}; Path=/; SameSite=Strict; Max-Age={max_age}{}",
            cookie_name(secure, CSRF_COOKIE),
            csrf_token(state, &session.record.id),
            secure_attr(secure)
        ),
    ]
}

/// The `Set-Cookie` values that clear a session's cookies.
pub(crate) fn cleared_session_cookies(state: &AppState) -> Vec<String> {
    let secure = secure_cookies(state);
    [SESSION_COOKIE, CSRF_COOKIE]
        .into_iter()
        .map(|name| {
            format!(
                "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
                cookie_name(secure, name),
                secure_attr(secure)
            )
        })
        .collect()
}

/// The CSRF token of the session whose admin token id is `id`.
pub(crate) fn csrf_token(state: &AppState, id: &str) -> String {
    session::csrf_token(&state.keyring, CSRF_PURPOSE, id, "")
}

pub(crate) fn csrf_ok(state: &AppState, id: &str, headers: &HeaderMap) -> bool {
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|presented| session::csrf_ok(&state.keyring, CSRF_PURPOSE, id, "", presented))
}

fn peer(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_canonical())
}

/// The throttle's refusal page, when this address has failed too often.
fn throttled(state: &AppState, ip: IpAddr) -> Option<Response> {
    match state.logins.admit_address(ip) {
        Err(Refusal::Throttled(wait)) => Some(pages::error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "too many failed sign-ins from this address; try again in {} s",
                wait.as_secs().max(1)
            ),
        )),
        _ => None,
    }
}

fn set_cookie(response: &mut Response, cookie: String) {
    if let Ok(value) = HeaderValue::try_from(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn secure_attr(secure: bool) -> &'static str {
    if secure { "; Secure" } else { "" }
}

/// `GET /admin/sign-in`: off to the provider.
pub async fn start(State(state): State<AppState>, request: Request) -> Response {
    let Some(sign_in) = configured(&state) else {
        return pages::error(StatusCode::NOT_FOUND, "operator sign-in is not configured");
    };
    let Some(ip) = peer(&request) else {
        return pages::error(StatusCode::INTERNAL_SERVER_ERROR, "try again");
    };
    if let Some(refused) = throttled(&state, ip) {
        return refused;
    }
    let cached = match upstream::provider_keys(&state, sign_in.provider, false).await {
        Ok(cached) => cached,
        Err(err) => {
            tracing::warn!(error = %err, "operator sign-in: the identity provider failed");
            return pages::error(
                StatusCode::BAD_GATEWAY,
                "the identity provider could not be reached; try again later",
            );
        }
    };
    let (Ok(verifier), Ok(nonce), Ok(binding)) = (
        secrets::random_base62(64),
        secrets::random_base62(32),
        secrets::random_base62(32),
    ) else {
        return pages::error(StatusCode::INTERNAL_SERVER_ERROR, "try again");
    };
    let sealed = session::seal(
        &state.keyring,
        STATE_PURPOSE,
        &Pending {
            verifier: verifier.clone(),
            nonce: nonce.clone(),
            binding: hex::encode(Sha256::digest(binding.as_bytes())),
        },
        crate::now_ms() + 10 * 60 * 1000,
    );
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &sign_in.provider.client_id)
        .append_pair("redirect_uri", &sign_in.callback())
        .append_pair("scope", &sign_in.provider.scopes.join(" "))
        .append_pair("state", &sealed)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let endpoint = &cached.discovery.authorization_endpoint;
    let separator = if endpoint.contains('?') { '&' } else { '?' };
    let mut response = pages::see_other(&format!("{endpoint}{separator}{query}"));
    // Lax: the provider's redirect back is a cross-site top-level navigation.
    set_cookie(
        &mut response,
        format!(
            "{BINDING_COOKIE}={binding}; Path=/admin/callback; HttpOnly; SameSite=Lax; Max-Age=600{}",
            secure_attr(sign_in.base.starts_with("https://"))
        ),
    );
    response
}

/// `GET /admin/callback`: the provider's answer; a session for a person whose groups map to
/// a role, a refusal page (recorded) for anyone else.
pub async fn callback(State(state): State<AppState>, request: Request) -> Response {
    let Some(sign_in) = configured(&state) else {
        return pages::error(StatusCode::NOT_FOUND, "operator sign-in is not configured");
    };
    let Some(ip) = peer(&request) else {
        return pages::error(StatusCode::INTERNAL_SERVER_ERROR, "try again");
    };
    if let Some(refused) = throttled(&state, ip) {
        return refused;
    }
    let failed = |status: StatusCode, message: &str| {
        state.logins.failed_address(ip);
        pages::error(status, message)
    };
    let params =
        Form::parse(request.uri().query().unwrap_or("").as_bytes(), &[]).unwrap_or_default();
    let Some(pending) = params
        .get("state")
        .and_then(|s| session::open::<Pending>(&state.keyring, STATE_PURPOSE, s, crate::now_ms()))
    else {
        return failed(
            StatusCode::BAD_REQUEST,
            "this sign-in has expired or was altered; start again",
        );
    };
    let bound = session::cookie(request.headers(), BINDING_COOKIE)
        .is_some_and(|b| hex::encode(Sha256::digest(b.as_bytes())) == pending.binding);
    if !bound {
        return failed(
            StatusCode::FORBIDDEN,
            "this sign-in was started in another browser",
        );
    }
    if let Some(error) = params.get("error") {
        return failed(
            StatusCode::FORBIDDEN,
            &format!("the identity provider refused the sign-in ({error})"),
        );
    }
    let Some(code) = params.get("code") else {
        return failed(
            StatusCode::BAD_REQUEST,
            "the identity provider sent no code",
        );
    };
    let claims = match upstream::redeem_code(
        &state,
        sign_in.provider,
        code,
        &sign_in.callback(),
        &pending.verifier,
        &pending.nonce,
    )
    .await
    {
        Ok(claims) => claims,
        Err(err) => {
            tracing::warn!(error = %err, "operator sign-in: the code was not redeemed");
            return failed(
                StatusCode::BAD_GATEWAY,
                "the identity provider's answer could not be used; try again",
            );
        }
    };
    let person = Person::from_claims(&sign_in, &claims);
    let by = match Operator::api(&person.actor, ip) {
        Ok(by) => by,
        Err(_) => return failed(StatusCode::FORBIDDEN, "the identity provider named no one"),
    };
    let admin = AdminService::new(
        state.store.clone(),
        state.keyring.clone(),
        state.audit.clone(),
    );
    let Some(role) = sign_in.config.role_for(&person.groups) else {
        if let Err(err) = admin
            .refuse_admin_session(&by, &person.username, &person.groups)
            .await
        {
            tracing::error!(error = %err, "operator sign-in: a refusal was not recorded");
        }
        return failed(
            StatusCode::FORBIDDEN,
            "you are signed in at the identity provider, but none of your groups is given a role here; ask an administrator",
        );
    };
    let session = match admin
        .open_admin_session(&by, &person.username, role, sign_in.config.session_lifetime)
        .await
    {
        Ok(session) => session,
        Err(err) => {
            tracing::error!(error = %err, "operator sign-in: the session was not opened");
            return pages::error(StatusCode::SERVICE_UNAVAILABLE, "try again");
        }
    };
    let mut response = pages::page(
        StatusCode::OK,
        "Signed in",
        &format!(
            "<p>Signed in as {} with the role <b>{}</b>.</p><p><a href=\"/console\">Open the console</a></p>",
            pages::escape(&person.username),
            role
        ),
    );
    let max_age = sign_in.config.session_lifetime.as_secs();
    for cookie in session_cookies(&state, &session, max_age) {
        set_cookie(&mut response, cookie);
    }
    set_cookie(
        &mut response,
        format!("{BINDING_COOKIE}=; Path=/admin/callback; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    response
}

/// Who the provider says signed in.
struct Person {
    username: String,
    groups: Vec<String>,
    /// `oidc:<provider>:<sub>`, as the trail names them.
    actor: String,
}

impl Person {
    fn from_claims(sign_in: &SignIn<'_>, claims: &serde_json::Map<String, Value>) -> Person {
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let username = claims
            .get(&sign_in.provider.username_claim)
            .and_then(Value::as_str)
            .unwrap_or(sub)
            .to_owned();
        let claim = sign_in
            .config
            .groups_claim
            .as_ref()
            .or(sign_in.provider.groups_claim.as_ref());
        let mut groups: Vec<String> = match claim.and_then(|c| claims.get(c)) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(Value::String(text)) => text.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        groups.sort();
        groups.dedup();
        let actor = if sub.is_empty() {
            String::new()
        } else {
            format!("oidc:{}:{sub}", sign_in.provider.name)
        };
        Person {
            username,
            groups,
            actor,
        }
    }
}

/// `POST /admin/sign-out`: ends the cookie's session (with its CSRF token) and clears the
/// cookies.
pub async fn sign_out(State(state): State<AppState>, request: Request) -> Response {
    let Some(ip) = peer(&request) else {
        return pages::error(StatusCode::INTERNAL_SERVER_ERROR, "try again");
    };
    let headers = request.headers();
    let Some((id, secret)) = session_token(&state, headers).and_then(admin_tokens::split) else {
        return pages::error(StatusCode::UNAUTHORIZED, "not signed in");
    };
    let stored = state.store.get_admin_token(id).await.ok();
    let valid = admin_tokens::check(&state.keyring, id, secret, stored.as_ref(), crate::now_ms());
    let (Ok(()), Some(token)) = (valid, stored) else {
        state.logins.failed_address(ip);
        return pages::error(StatusCode::UNAUTHORIZED, "not signed in");
    };
    if !csrf_ok(&state, id, headers) {
        return pages::error(StatusCode::FORBIDDEN, "missing or wrong X-CSRF-Token");
    }
    let admin = AdminService::new(
        state.store.clone(),
        state.keyring.clone(),
        state.audit.clone(),
    );
    let by = Operator::api(&token.created_by, ip).or_else(|_| Operator::api(&token.name, ip));
    let closed = match by {
        Ok(by) => admin.close_admin_session(&by, &token.id).await,
        Err(err) => Err(err),
    };
    if let Err(err) = closed {
        tracing::error!(error = %err, "operator sign-out failed");
        return pages::error(StatusCode::SERVICE_UNAVAILABLE, "try again");
    }
    let mut response = pages::page(StatusCode::OK, "Signed out", "<p>Signed out.</p>");
    for cookie in cleared_session_cookies(&state) {
        set_cookie(&mut response, cookie);
    }
    response
}
