//! OAuth 2.1 authorization server: its endpoints, and the access tokens it issues (RFC 9068).
//! Token formats, key material and their verification are `crate::tokens`.

pub mod assertion;
pub mod authorize;
pub mod cimd;
pub mod clients;
pub mod dpop;
pub mod external;
pub mod form;
pub mod grants;
pub mod id_jag;
pub mod jwt_bearer;
pub mod login;
pub mod metadata;
pub mod pages;
pub mod registration;
pub mod remote;
pub mod revocation;
pub mod session;
pub mod token;
pub mod tokens;
pub mod upstream;
pub mod upstream_connect;
pub mod upstream_grants;
pub mod workload;

use axum::{
    Router,
    routing::{any, get},
};
use http::{HeaderMap, StatusCode};
use std::{net::SocketAddr, time::Instant};

use crate::{AppState, policy::client_ip};
use gatehouse_model::audit::{AuditEvent, Decision};

/// The authorization server's routes (merged into the gateway's router).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(metadata::authorization_server_metadata),
        )
        .route(
            "/.well-known/openid-configuration",
            get(metadata::authorization_server_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/{server}/mcp",
            get(metadata::protected_resource_metadata),
        )
        .route("/oauth/jwks.json", get(metadata::jwks))
        .route("/oauth/authorize", any(authorize::authorize))
        .route("/oauth/login", any(login::login))
        .route("/oauth/register", any(registration::register))
        .route("/oauth/login/{provider}", get(upstream::start))
        .route("/oauth/upstream/callback", any(upstream::callback))
        .route("/oauth/upstream/connect", get(upstream_connect::connect))
        .route(
            "/oauth/upstream/client-metadata.json",
            get(upstream_connect::client_metadata),
        )
        .route("/oauth/upstream/grants", get(upstream_grants::list))
        .route("/oauth/upstream/revoke", any(upstream_grants::revoke))
        .route("/oauth/token", any(token::token))
        .route("/oauth/revoke", any(revocation::revoke))
        .route("/oauth/introspect", any(revocation::introspect))
}

/// The audit event of one authorization-server request.
pub struct OAuthAudit {
    request_id: String,
    ip: std::net::IpAddr,
    pub method: &'static str,
    pub client: Option<String>,
    /// The `jti` issued or revoked, or the API key id revoked.
    pub credential_id: Option<String>,
    pub user: Option<String>,
    /// The OAuth error code of a refusal.
    pub reason: Option<&'static str>,
}

impl OAuthAudit {
    pub fn new(
        state: &AppState,
        peer: SocketAddr,
        headers: &HeaderMap,
        method: &'static str,
    ) -> Self {
        Self {
            request_id: state.next_request_id(),
            ip: client_ip::resolve(peer.ip(), headers, &state.config.policy),
            method,
            client: None,
            credential_id: None,
            user: None,
            reason: None,
        }
    }

    /// The endpoint's answer: `Ok` bodies as `no-store` JSON (`None`: an empty 200), errors
    /// as RFC 6749 bodies; audited either way.
    pub async fn respond(
        mut self,
        state: &AppState,
        started: Instant,
        result: Result<Option<serde_json::Value>, crate::error::OAuthError>,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let response = match result {
            Ok(body) => {
                let mut response = match body {
                    Some(body) => axum::Json(body).into_response(),
                    None => StatusCode::OK.into_response(),
                };
                let headers = response.headers_mut();
                headers.insert(
                    http::header::CACHE_CONTROL,
                    http::HeaderValue::from_static("no-store"),
                );
                headers.insert(
                    http::header::PRAGMA,
                    http::HeaderValue::from_static("no-cache"),
                );
                response
            }
            Err(err) => {
                self.reason = Some(err.code());
                err.into_response()
            }
        };
        self.finish(state, response.status(), started).await;
        response
    }

    /// Records the event; with `audit.durable`, waits until it is committed.
    pub async fn finish(self, state: &AppState, status: StatusCode, started: Instant) {
        let decision = if status.is_success() || status.is_redirection() {
            Decision::Allow
        } else if status.is_server_error() {
            Decision::Error
        } else {
            Decision::Deny
        };
        let event = AuditEvent {
            ts_ms: crate::now_ms(),
            request_id: self.request_id,
            client: self.client,
            credential_id: self.credential_id,
            user: self.user,
            ip: Some(self.ip.to_string()),
            country: None,
            server: None,
            http_method: "POST".into(),
            rpc_method: Some(self.method.to_owned()),
            tool: None,
            decision,
            reason: self.reason.map(str::to_owned),
            status: status.as_u16(),
            upstream_status: None,
            latency_us: i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX),
            outcome: None,
            response_bytes: None,
            batch: Vec::new(),
            operator: None,
            rule: None,
        };
        state.audit.record(event).await;
    }
}
