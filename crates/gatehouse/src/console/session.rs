//! Who is looking at a page: the session cookie's admin token, checked as the API checks a
//! bearer token (same throttle, expiry, revocation), and for every change the form's CSRF
//! token. Handlers receive the [`Viewer`] and the parsed [`Fields`] and check nothing.

use axum::{
    body::{Body, to_bytes},
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, Method, StatusCode},
    middleware::Next,
    response::Response,
};
use std::net::SocketAddr;

use super::layout;
use crate::{
    admin_api::{auth, problem::ApiError, sign_in},
    context::AppState,
};
use gatehouse_model::records::AdminRole;

/// The largest form the console accepts.
const MAX_FORM_BYTES: usize = 256 * 1024;

/// The signed-in operator a page is rendered for.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The session's admin token, the bearer of the console's API calls.
    pub token: String,
    pub name: String,
    pub role: AdminRole,
    /// The session as the API's guard sees it (the operator its changes are recorded as).
    pub caller: auth::Caller,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    pub peer: SocketAddr,
}

impl Viewer {
    pub fn may(&self, role: AdminRole) -> bool {
        self.role >= role
    }
}

/// A posted form's fields, in order; the first of a repeated name wins.
#[derive(Debug, Clone, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn parse(bytes: &[u8]) -> Fields {
        Fields(form_urlencoded::parse(bytes).into_owned().collect())
    }

    /// The field's value, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

pub fn sign_in_redirect() -> Response {
    layout::see_other("/console/sign-in")
}

/// In front of every page but sign-in: a session, and for a change its CSRF token.
pub async fn require(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    else {
        return layout::message(StatusCode::INTERNAL_SERVER_ERROR, "Error", "try again");
    };
    let Some(token) = sign_in::session_token(&state, request.headers()).map(str::to_owned) else {
        return sign_in_redirect();
    };
    let bearer = HeaderValue::try_from(format!("Bearer {token}")).ok();
    let caller = match auth::authenticate(&state, bearer, peer.ip().to_canonical()).await {
        Ok(caller) => caller,
        Err(ApiError::Throttled { .. }) => {
            return layout::message(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                "too many failed sign-ins from this address; try again later",
            );
        }
        // Expired, revoked or unknown: sign in again.
        Err(_) => return sign_in_redirect(),
    };
    let viewer = Viewer {
        csrf: sign_in::csrf_token(&state, &caller.token_id),
        token,
        // A session is named for whoever opened it.
        name: caller
            .name
            .strip_prefix("session:")
            .unwrap_or(&caller.name)
            .to_owned(),
        role: caller.role,
        caller,
        peer,
    };
    let (mut parts, body) = request.into_parts();
    let mut fields = Fields::default();
    if parts.method != Method::GET && parts.method != Method::HEAD {
        let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
            return layout::message(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Form too large",
                "the form is larger than the console accepts",
            );
        };
        fields = Fields::parse(&bytes);
        // A page of another site can make the browser post here with the cookie; it cannot
        // read the token a console page carries.
        let presented = fields.get("csrf").unwrap_or_default();
        if !sign_in::csrf_matches(&state, &viewer.caller.token_id, presented) {
            return layout::message(
                StatusCode::FORBIDDEN,
                "Form expired",
                "the form's security token is missing or wrong; reload the page and try again",
            );
        }
        parts.extensions.insert(fields.clone());
        let request = Request::from_parts(parts, Body::empty());
        return run(request, next, viewer).await;
    }
    parts.extensions.insert(fields);
    run(Request::from_parts(parts, body), next, viewer).await
}

async fn run(mut request: Request, next: Next, viewer: Viewer) -> Response {
    request.extensions_mut().insert(viewer);
    next.run(request).await
}
