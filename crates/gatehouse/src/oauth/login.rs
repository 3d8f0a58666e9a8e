//! Signing in for the authorization endpoint: local users (argon2id passwords) here; upstream
//! OpenID Connect providers in `upstream.rs`. A successful sign-in sets the session cookie and
//! returns the browser to the pending authorization request.
//!
//! Login CSRF is stopped with a double-submit nonce: a random cookie set with the form and a
//! field derived from it, which another site can neither read nor set.

use axum::{
    extract::{ConnectInfo, Request, State},
    response::Response,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use std::net::{IpAddr, SocketAddr};

use crate::{
    AppState,
    identity::login_guard::Refusal,
    oauth::{
        authorize::{self, AuthRequest, REQUEST_PURPOSE, SESSION_PURPOSE},
        form::Form,
        pages, session,
    },
    policy::client_ip,
    secrets,
};

const NONCE_COOKIE: &str = "gatehouse_login";
/// Sign-in sessions last a working day; consent is still asked for each authorization.
const SESSION_TTL_SECS: u64 = 8 * 3600;

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let ip = client_ip::resolve(peer.ip(), &parts.headers, &state.config.policy);
    match parts.method {
        Method::GET => {
            let params =
                Form::parse(parts.uri.query().unwrap_or("").as_bytes(), &[]).unwrap_or_default();
            form_page(&state, params.get("req").unwrap_or(""), None)
        }
        Method::POST => match Form::read(&parts.headers, body, &[]).await {
            Ok(form) => submit(&state, &parts.headers, &form, ip).await,
            Err(err) => pages::error(err.status(), &err.to_string()),
        },
        _ => pages::error(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST"),
    }
}

fn client_label(state: &AppState, sealed: &str) -> Option<String> {
    let request: AuthRequest =
        session::open(&state.keyring, REQUEST_PURPOSE, sealed, crate::now_ms())?;
    let snapshot = state.snapshot.current();
    let client = snapshot.oauth.clients.get(&request.client_id)?;
    Some(
        client
            .metadata
            .client_name
            .clone()
            .unwrap_or(request.client_id),
    )
}

fn form_page(state: &AppState, sealed: &str, error: Option<&str>) -> Response {
    let Some(client) = client_label(state, sealed) else {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "this sign-in request has expired or was altered; start again from the application",
        );
    };
    let Ok(nonce) = secrets::random_base62(32) else {
        return pages::error(StatusCode::INTERNAL_SERVER_ERROR, "try again");
    };
    let csrf = session::csrf_token(&state.keyring, "login", &nonce, sealed);
    let providers: Vec<(String, String)> = state
        .config
        .oauth
        .providers
        .iter()
        .map(|p| {
            let display = p.display_name.clone().unwrap_or_else(|| p.name.clone());
            (p.name.clone(), display)
        })
        .collect();
    let mut response = pages::login(&pages::LoginPage {
        request: sealed,
        csrf: &csrf,
        client: &client,
        error,
        local_users: true,
        providers: &providers,
    });
    let cookie =
        format!("{NONCE_COOKIE}={nonce}; Path=/oauth; HttpOnly; SameSite=Strict; Max-Age=900");
    if let Ok(value) = HeaderValue::try_from(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

async fn submit(state: &AppState, headers: &HeaderMap, form: &Form, ip: IpAddr) -> Response {
    let sealed = form.get("req").unwrap_or("");
    let nonce = session::cookie(headers, NONCE_COOKIE).unwrap_or("");
    if nonce.is_empty()
        || !session::csrf_ok(
            &state.keyring,
            "login",
            nonce,
            sealed,
            form.get("csrf").unwrap_or(""),
        )
    {
        return pages::error(
            StatusCode::FORBIDDEN,
            "the sign-in form is not from this browser; start again",
        );
    }
    let username = form.get("username").unwrap_or("").to_owned();
    let password = form.get("password").unwrap_or("").to_owned();
    if let Err(refusal) = state.logins.admit(ip, &username) {
        return refused(refusal);
    }
    let user = match state.store.find_user_by_username(&username).await {
        Ok(user) => user.filter(|u| u.disabled_at.is_none()),
        Err(err) => {
            tracing::error!(error = %err, "user lookup failed");
            return pages::error(StatusCode::SERVICE_UNAVAILABLE, "try again");
        }
    };
    let phc = user.as_ref().and_then(|u| u.password_hash.clone());
    let ok = match state.logins.verify(phc, password).await {
        Ok(ok) => ok,
        Err(refusal) => return refused(refusal),
    };
    let Some(user) = user.filter(|_| ok) else {
        state.logins.failed(ip, &username);
        return form_page(state, sealed, Some("Unknown username or wrong password."));
    };
    state.logins.succeeded(&username);
    if let Err(err) = state.store.record_login(&user.id, crate::now_ms()).await {
        tracing::warn!(error = %err, "recording the sign-in time failed");
    }
    signed_in(state, &user.id, sealed)
}

/// Too many failures (429) or no free password checker (503), with `Retry-After`.
fn refused(refusal: Refusal) -> Response {
    let (status, message, wait) = match refusal {
        Refusal::Throttled(wait) => (
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed sign-ins; wait before trying again",
            wait,
        ),
        Refusal::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            "sign-in is busy; try again in a moment",
            std::time::Duration::from_secs(1),
        ),
    };
    let mut response = pages::error(status, message);
    // Whole seconds, rounded up: never invite a retry that would be refused.
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// Sets the session cookie and returns to the authorization request.
pub fn signed_in(state: &AppState, user_id: &str, sealed_request: &str) -> Response {
    let ttl_ms = i64::try_from(SESSION_TTL_SECS * 1000).unwrap_or(i64::MAX);
    let value = session::seal(
        &state.keyring,
        SESSION_PURPOSE,
        &user_id,
        crate::now_ms() + ttl_ms,
    );
    let mut response = pages::see_other(&format!("/oauth/authorize?req={sealed_request}"));
    if let Ok(cookie) =
        HeaderValue::try_from(authorize::session_cookie(state, &value, SESSION_TTL_SECS))
    {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}
