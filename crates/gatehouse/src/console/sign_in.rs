//! Signing in to the console: with an admin token posted once (a single machine), or
//! through `[admin.sign_in]`'s OpenID provider. Either way the browser ends up holding the
//! same session cookie: a short-lived admin token of the signer's role (ADR 0014).

use axum::{
    Extension,
    body::to_bytes,
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use maud::html;
use std::{net::SocketAddr, time::Duration};

use super::{
    layout,
    session::{Fields, Viewer},
};
use crate::{
    admin::AdminService,
    admin_api::{auth, problem::ApiError, sign_in},
    context::AppState,
    oauth::session,
    secrets,
};

const LOGIN_COOKIE: &str = "gatehouse_console_sign_in";
const LOGIN_PURPOSE: &str = "console-sign-in";
/// A session's lifetime without `[admin.sign_in]`.
const DEFAULT_SESSION: Duration = Duration::from_secs(8 * 60 * 60);

fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::try_from(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn form_page(state: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    let Ok(binding) = secrets::random_base62(32) else {
        return layout::message(StatusCode::INTERNAL_SERVER_ERROR, "Error", "try again");
    };
    let csrf = session::csrf_token(&state.keyring, LOGIN_PURPOSE, &binding, "");
    let openid = state.config.admin.sign_in.is_some();
    let mut response = layout::bare(
        status,
        "Sign in",
        html! {
            @if let Some(error) = error { (layout::alert(error)) }
            @if openid {
                p { a.button href="/admin/sign-in" { "Sign in with your identity provider" } }
                p.muted { "Or, on a single machine, with an admin token:" }
            }
            form.card method="post" action="/console/sign-in" {
                input type="hidden" name="csrf" value=(csrf);
                label for="token" { "Admin token" }
                input #token type="password" name="token" autocomplete="off" required
                    aria-describedby="token-help";
                p #token-help .muted {
                    "Made with " code { "gatehouse admin-tokens create" }
                    ". It is exchanged for a session of its role and not kept in the browser."
                }
                button type="submit" { "Sign in" }
            }
        },
    );
    set_cookie(
        &mut response,
        &format!(
            "{LOGIN_COOKIE}={binding}; Path=/console/sign-in; HttpOnly; SameSite=Strict; Max-Age=600{}",
            if sign_in::secure_cookies(state) {
                "; Secure"
            } else {
                ""
            }
        ),
    );
    response
}

/// `GET /console/sign-in`.
pub async fn form(State(state): State<AppState>) -> Response {
    form_page(&state, StatusCode::OK, None)
}

/// `POST /console/sign-in`: an admin token, exchanged for a session.
pub async fn with_token(State(state): State<AppState>, request: Request) -> Response {
    let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    else {
        return layout::message(StatusCode::INTERNAL_SERVER_ERROR, "Error", "try again");
    };
    let binding = session::cookie(request.headers(), LOGIN_COOKIE).map(str::to_owned);
    let Ok(bytes) = to_bytes(request.into_body(), 64 * 1024).await else {
        return form_page(
            &state,
            StatusCode::BAD_REQUEST,
            Some("the form is too large"),
        );
    };
    let fields = Fields::parse(&bytes);
    let bound = binding.is_some_and(|binding| {
        session::csrf_ok(
            &state.keyring,
            LOGIN_PURPOSE,
            &binding,
            "",
            fields.get("csrf").unwrap_or_default(),
        )
    });
    if !bound {
        return form_page(
            &state,
            StatusCode::FORBIDDEN,
            Some("this form has expired; sign in again"),
        );
    }
    let bearer = fields
        .get("token")
        .and_then(|token| HeaderValue::try_from(format!("Bearer {token}")).ok());
    let ip = peer.ip().to_canonical();
    let caller = match auth::authenticate(&state, bearer, ip).await {
        Ok(caller) => caller,
        Err(ApiError::Throttled { .. }) => {
            return form_page(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                Some("too many failed sign-ins from this address; try again later"),
            );
        }
        Err(ApiError::Unavailable | ApiError::Internal) => {
            return form_page(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                Some("the store could not be read; try again"),
            );
        }
        Err(_) => {
            return form_page(
                &state,
                StatusCode::UNAUTHORIZED,
                Some("that admin token is not valid (unknown, expired or revoked)"),
            );
        }
    };
    let now = crate::now_ms();
    let mut lifetime = state
        .config
        .admin
        .sign_in
        .as_ref()
        .map_or(DEFAULT_SESSION, |s| s.session_lifetime);
    // A session never outlives the token that opened it.
    if let Ok(token) = state.store.get_admin_token(&caller.token_id).await
        && let Some(expires) = token.expires_at
    {
        let left = u64::try_from(expires.saturating_sub(now)).unwrap_or(0);
        lifetime = lifetime.min(Duration::from_millis(left));
    }
    let (Ok(by), true) = (caller.operator(), lifetime.as_secs() > 0) else {
        return form_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("that admin token expires too soon to open a session"),
        );
    };
    let admin = AdminService::new(
        state.store.clone(),
        state.keyring.clone(),
        state.audit.clone(),
    );
    let opened = admin
        .open_admin_session(&by, &caller.name, caller.role, lifetime)
        .await;
    let Ok(opened) = opened else {
        return form_page(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            Some("the session could not be opened; try again"),
        );
    };
    let mut response = layout::see_other("/console");
    for cookie in sign_in::session_cookies(&state, &opened, lifetime.as_secs()) {
        set_cookie(&mut response, &cookie);
    }
    set_cookie(
        &mut response,
        &format!("{LOGIN_COOKIE}=; Path=/console/sign-in; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// `POST /console/sign-out`: the session is revoked, its cookies cleared.
pub async fn sign_out(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Extension(_fields): Extension<Fields>,
) -> Response {
    let admin = AdminService::new(
        state.store.clone(),
        state.keyring.clone(),
        state.audit.clone(),
    );
    let closed = match viewer.caller.operator() {
        Ok(by) => admin
            .close_admin_session(&by, &viewer.caller.token_id)
            .await
            .is_ok(),
        Err(_) => false,
    };
    if !closed {
        return layout::message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not signed out",
            "the session could not be ended; try again",
        );
    }
    let mut response = layout::see_other("/console/sign-in");
    for cookie in sign_in::cleared_session_cookies(&state) {
        set_cookie(&mut response, &cookie);
    }
    response
}
