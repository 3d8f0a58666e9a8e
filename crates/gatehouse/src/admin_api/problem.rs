//! Every refusal of the admin API as one RFC 9457 problem document
//! (`application/problem+json`): `type`, `title`, `status`, `detail`, `instance`, and a
//! stable `code` clients branch on. [`ApiError::parts`] is the only mapping to status codes
//! and codes; it is an exhaustive match, so a new refusal cannot ship without one.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

use crate::{admin::AdminError, store::StoreError};
use gatehouse_model::records::AdminRole;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("an admin token is required (Authorization: Bearer <token>)")]
    Unauthenticated,
    /// Malformed, unknown, wrong secret or revoked: one answer, so ids are not revealed.
    #[error("the admin token is not recognised")]
    TokenNotRecognised,
    #[error("the admin token has expired")]
    TokenExpired,
    #[error("too many failed authentications from this address; retry later")]
    Throttled { retry_after: Duration },
    #[error("this operation needs the {needed} role")]
    Forbidden { needed: AdminRole },
    /// A change authenticated by the session cookie without its `X-CSRF-Token`.
    #[error("a change made with the session cookie needs the session's X-CSRF-Token header")]
    CsrfFailed,
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("no such operation")]
    NoSuchOperation,
    #[error("{kind} {name:?} already exists")]
    Conflict { kind: &'static str, name: String },
    /// The request is well-formed but its values are refused (the CLI's message).
    #[error("{0}")]
    Invalid(String),
    /// The body, query or path could not be read as the operation's input.
    #[error("{0}")]
    Malformed(String),
    #[error("the cursor is not one this API issued")]
    BadCursor,
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being processed")]
    IdempotencyInProgress,
    /// The database could not be reached; retrying later may succeed.
    #[error("the store is unavailable; retry later")]
    Unavailable,
    /// The change was applied but its audit event could not be recorded.
    #[error("{0}")]
    Unrecorded(String),
    /// A declared state names a secret reference no value was sent for.
    #[error("{0}")]
    UnresolvedReference(String),
    /// Applying a declared state stopped midway (the changes before stand, recorded).
    #[error("{0}")]
    ApplyIncomplete(String),
    /// A per-user upstream's authorization server could not be found, was not usable, or
    /// refused Gatehouse's registration; nothing was stored.
    #[error("{0}")]
    UpstreamAuthorizationServer(String),
    /// Details are logged, never sent.
    #[error("internal error")]
    Internal,
}

/// The problem document's shape (for the OpenAPI description; the body is built in
/// [`ApiError::into_response`]).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// `urn:gatehouse:admin-api:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request path.
    pub instance: String,
    /// Stable machine-readable reason (docs/admin-api.md lists them).
    pub code: String,
}

impl ApiError {
    /// Status, stable code and title: the one mapping.
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
            ),
            ApiError::TokenNotRecognised => (
                StatusCode::UNAUTHORIZED,
                "token_not_recognised",
                "Admin token not recognised",
            ),
            ApiError::TokenExpired => (
                StatusCode::UNAUTHORIZED,
                "token_expired",
                "Admin token expired",
            ),
            ApiError::Throttled { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "Too many failed authentications",
            ),
            ApiError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden", "Role too low"),
            ApiError::CsrfFailed => (
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "CSRF token missing or wrong",
            ),
            ApiError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found", "Not found"),
            ApiError::NoSuchOperation => (
                StatusCode::NOT_FOUND,
                "no_such_operation",
                "No such operation",
            ),
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, "conflict", "Already exists"),
            ApiError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid", "Invalid value"),
            ApiError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed", "Malformed request"),
            ApiError::BadCursor => (StatusCode::BAD_REQUEST, "bad_cursor", "Invalid cursor"),
            ApiError::IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "Idempotency-Key reused",
            ),
            ApiError::IdempotencyInProgress => (
                StatusCode::CONFLICT,
                "idempotency_in_progress",
                "Request in progress",
            ),
            ApiError::UnresolvedReference(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "unresolved_reference",
                "Secret reference without a value",
            ),
            ApiError::ApplyIncomplete(_) => {
                (StatusCode::CONFLICT, "apply_incomplete", "Applied in part")
            }
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Temporarily unavailable",
            ),
            ApiError::Unrecorded(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "unrecorded",
                "Applied but not recorded",
            ),
            ApiError::UpstreamAuthorizationServer(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream_authorization_server",
                "Upstream authorization server unusable",
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }

    /// The response, with `instance` set to the request's path.
    pub fn at(self, instance: &str) -> Response {
        let (status, code, title) = self.parts();
        let body = serde_json::json!({
            "type": format!("urn:gatehouse:admin-api:{code}"),
            "title": title,
            "status": status.as_u16(),
            "detail": self.to_string(),
            "instance": instance,
            "code": code,
        });
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match &self {
            ApiError::Unauthenticated | ApiError::TokenNotRecognised | ApiError::TokenExpired => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"gatehouse-admin\""),
                );
            }
            ApiError::Throttled { retry_after } => {
                let secs = retry_after.as_secs().max(1);
                if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                    headers.insert(header::RETRY_AFTER, value);
                }
            }
            _ => {}
        }
        response
    }
}

/// Handlers return `ApiError`; [`super::auth::guard`], which sees the request, renders it
/// again with the request's path as `instance`.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.clone().at("");
        response.extensions_mut().insert(Unplaced(self));
        response
    }
}

/// An error response whose `instance` is not yet set.
#[derive(Debug, Clone)]
pub(super) struct Unplaced(pub ApiError);

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        if err.is_unreachable() {
            return ApiError::Unavailable;
        }
        match err {
            StoreError::NotFound { kind, name } => ApiError::NotFound { kind, name },
            StoreError::Conflict { kind, name } => ApiError::Conflict { kind, name },
            other => {
                tracing::error!(error = %other, "admin API: store error");
                ApiError::Internal
            }
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(err: AdminError) -> Self {
        match err {
            AdminError::Invalid(message) => ApiError::Invalid(message),
            AdminError::Pattern(pattern) => ApiError::Invalid(pattern.to_string()),
            AdminError::Store(store) => store.into(),
            AdminError::UpstreamAuthorizationServer(why) => {
                ApiError::UpstreamAuthorizationServer(why)
            }
            AdminError::Secret(secret) => {
                tracing::error!(error = %secret, "admin API: secret error");
                ApiError::Internal
            }
            unrecorded @ AdminError::Unrecorded { .. } => {
                tracing::error!(error = %unrecorded, "admin API: change not recorded");
                ApiError::Unrecorded(unrecorded.to_string())
            }
        }
    }
}
