//! The guard in front of every admin operation: throttle, authenticate the admin token, check
//! the role the operation needs ([`super::roles`]), then run the handler and give its error
//! the request's path. Handlers receive the [`Caller`] and never check anything themselves.

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
    http::{HeaderValue, Method, header},
    middleware::Next,
    response::Response,
};
use std::net::{IpAddr, SocketAddr};

use super::{
    problem::{ApiError, Unplaced},
    roles, sign_in,
};
use crate::{
    admin::{AdminResult, Operator},
    context::AppState,
    identity::{
        admin_tokens::{self, AdminTokenRejection},
        login_guard::Refusal,
    },
};
use gatehouse_model::records::AdminRole;

/// `last_used_at` is written at most this often per token (milliseconds).
const TOUCH_EVERY_MS: i64 = 60_000;

/// Who is calling: the token that authenticated the request and where it came from.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: String,
    pub name: String,
    pub role: AdminRole,
    pub ip: IpAddr,
}

impl Caller {
    /// The operator the audit trail names: `admin-token:<name>` (<id>), from the address.
    pub fn operator(&self) -> AdminResult<Operator> {
        Operator::api(
            &format!("admin-token:{} ({})", self.name, self.token_id),
            self.ip,
        )
    }
}

pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let needed = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| roles::required(request.method(), m.as_str()));
    let Some(needed) = needed else {
        return ApiError::NoSuchOperation.at(&path);
    };
    // Served without a peer address only in a test harness; no address is then trusted.
    let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    else {
        return ApiError::Internal.at(&path);
    };
    let ip = peer.ip().to_canonical();
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();
    // A bearer token wins; without one, the session cookie of an operator who signed in.
    let cookie = match authorization {
        Some(_) => None,
        None => sign_in::session_token(&state, request.headers())
            .and_then(|token| HeaderValue::try_from(format!("Bearer {token}")).ok()),
    };
    let by_cookie = cookie.is_some();
    let caller = match authenticate(&state, authorization.or(cookie), ip).await {
        Ok(caller) => caller,
        Err(err) => return err.at(&path),
    };
    // A browser sends the cookie with any request a page makes: a change must also carry the
    // session's CSRF token, which only a page of the admin listener can read.
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if by_cookie && !safe && !sign_in::csrf_ok(&state, &caller.token_id, request.headers()) {
        return ApiError::CsrfFailed.at(&path);
    }
    if caller.role < needed {
        return ApiError::Forbidden { needed }.at(&path);
    }
    request.extensions_mut().insert(caller);
    let response = next.run(request).await;
    match response.extensions().get::<Unplaced>() {
        Some(Unplaced(err)) => err.clone().at(&path),
        None => response,
    }
}

pub(crate) async fn authenticate(
    state: &AppState,
    authorization: Option<HeaderValue>,
    ip: IpAddr,
) -> Result<Caller, ApiError> {
    if let Err(Refusal::Throttled(wait)) = state.logins.admit_address(ip) {
        return Err(ApiError::Throttled { retry_after: wait });
    }
    let presented = authorization
        .as_ref()
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let Some(presented) = presented else {
        return Err(ApiError::Unauthenticated);
    };
    let failed = |err: ApiError| {
        state.logins.failed_address(ip);
        err
    };
    let Some((id, secret)) = admin_tokens::split(presented) else {
        return Err(failed(ApiError::TokenNotRecognised));
    };
    let stored = match state.store.get_admin_token(id).await {
        Ok(token) => Some(token),
        Err(crate::store::StoreError::NotFound { .. }) => None,
        Err(err) => return Err(err.into()),
    };
    let now = crate::now_ms();
    match admin_tokens::check(&state.keyring, id, secret, stored.as_ref(), now) {
        Ok(()) => {}
        Err(AdminTokenRejection::NotRecognised) => {
            return Err(failed(ApiError::TokenNotRecognised));
        }
        Err(AdminTokenRejection::Expired) => return Err(failed(ApiError::TokenExpired)),
    }
    let Some(token) = stored else {
        return Err(failed(ApiError::TokenNotRecognised));
    };
    if token
        .last_used_at
        .is_none_or(|at| now.saturating_sub(at) >= TOUCH_EVERY_MS)
        && let Err(err) = state.store.touch_admin_token(&token.id, now).await
    {
        tracing::warn!(error = %err, "admin API: could not record a token's last use");
    }
    Ok(Caller {
        token_id: token.id,
        name: token.name,
        role: token.role,
        ip,
    })
}
