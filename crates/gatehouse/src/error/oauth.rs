//! Refusals of the OAuth endpoints (token, revocation, introspection, registration), as RFC
//! 6749 §5.2 error bodies. Like [`super::GatewayError`], one exhaustive match decides status,
//! error code and headers, and descriptions never carry secret material.

use axum::{
    body::Body,
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    /// Client authentication failed. `basic` is whether the client tried HTTP Basic, which
    /// RFC 6749 §5.2 answers with a `WWW-Authenticate: Basic` challenge.
    #[error("client authentication failed")]
    InvalidClient { basic: bool },
    #[error("{0}")]
    InvalidGrant(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("grant type {0:?} is not supported")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    InvalidScope(String),
    /// RFC 8707: the `resource` is not one this server protects or the client may reach.
    #[error("{0}")]
    InvalidTarget(String),
    #[error("{0}")]
    InvalidClientMetadata(String),
    #[error("{0}")]
    InvalidRedirectUri(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Registration is off or needs an initial access token.
    #[error("{0}")]
    RegistrationForbidden(String),
    #[error("the authorization server failed; try again")]
    ServerError,
    #[error("the authorization server is busy; try again")]
    TemporarilyUnavailable,
    #[error("the request body did not arrive within the time allowed")]
    RequestTimeout,
    /// RFC 9449 §5: the token request's DPoP proof is missing (for a client that must send
    /// one), invalid, or replayed.
    #[error("{0}")]
    InvalidDpopProof(String),
    /// RFC 9449 §8: send the proof again with this nonce (the `DPoP-Nonce` header).
    #[error("the DPoP proof needs the nonce in DPoP-Nonce")]
    UseDpopNonce(String),
}

impl OAuthError {
    /// The RFC error code (also the audit reason).
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_)
            | OAuthError::PayloadTooLarge { .. }
            | OAuthError::MethodNotAllowed
            | OAuthError::RequestTimeout => "invalid_request",
            OAuthError::InvalidClient { .. } => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::InvalidTarget(_) => "invalid_target",
            OAuthError::InvalidClientMetadata(_) => "invalid_client_metadata",
            OAuthError::InvalidRedirectUri(_) => "invalid_redirect_uri",
            OAuthError::AccessDenied(_) | OAuthError::RegistrationForbidden(_) => "access_denied",
            OAuthError::ServerError => "server_error",
            OAuthError::TemporarilyUnavailable => "temporarily_unavailable",
            OAuthError::InvalidDpopProof(_) => "invalid_dpop_proof",
            OAuthError::UseDpopNonce(_) => "use_dpop_nonce",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            OAuthError::InvalidClient { .. } => StatusCode::UNAUTHORIZED,
            OAuthError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            OAuthError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            OAuthError::RegistrationForbidden(_) => StatusCode::FORBIDDEN,
            OAuthError::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            OAuthError::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            OAuthError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            OAuthError::InvalidRequest(_)
            | OAuthError::InvalidGrant(_)
            | OAuthError::UnauthorizedClient(_)
            | OAuthError::UnsupportedGrantType(_)
            | OAuthError::InvalidScope(_)
            | OAuthError::InvalidTarget(_)
            | OAuthError::InvalidClientMetadata(_)
            | OAuthError::InvalidRedirectUri(_)
            | OAuthError::AccessDenied(_)
            | OAuthError::InvalidDpopProof(_)
            | OAuthError::UseDpopNonce(_) => StatusCode::BAD_REQUEST,
        }
    }

    pub fn into_response(self) -> Response {
        let status = self.status();
        let body = json!({
            "error": self.code(),
            "error_description": description(&self.to_string()),
        });
        let mut response = Response::new(Body::from(body.to_string()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        match self {
            OAuthError::InvalidClient { basic: true } => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"gatehouse\""),
                );
            }
            OAuthError::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            OAuthError::RequestTimeout => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            OAuthError::UseDpopNonce(nonce) => {
                if let Ok(value) = HeaderValue::try_from(nonce) {
                    headers.insert("dpop-nonce", value);
                }
            }
            _ => {}
        }
        response
    }
}

/// RFC 6749 §5.2 allows only %x20-21 / %x23-5B / %x5D-7E in `error_description`; messages
/// may quote client input, so anything else is replaced rather than echoed.
fn description(message: &str) -> String {
    message
        .chars()
        .take(300)
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

impl axum::response::IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        OAuthError::into_response(self)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn descriptions_stay_in_the_rfc_alphabet() {
        let out = super::description("grant type \"p\u{e4}ss\\\" x");
        assert!(
            out.chars()
                .all(|c| matches!(c, ' '..='!' | '#'..='[' | ']'..='~')),
            "{out}"
        );
    }
}
