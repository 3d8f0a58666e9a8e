//! Clients' OAuth registrations and secrets. Registering a confidential client and rotating
//! its secret answer with a secret (shown once), so both are admin operations.

use axum::{
    Extension,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

use super::{
    AdminOf,
    auth::Caller,
    input::JsonBody,
    problem::{ApiError, Problem},
};
use crate::{admin::oauth::OAuthRegistration, context::AppState};
use gatehouse_model::records::ClientSecretRecord;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterOAuth {
    /// `client_credentials` (default), `authorization_code`, `refresh_token`.
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// `client_secret_basic` (default), `client_secret_post`, `private_key_jwt` or `none`.
    pub auth_method: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// A native app (RFC 8252): loopback redirect URIs may use any port.
    #[serde(default)]
    pub native: bool,
    /// The client's public keys (JWKS), for `private_key_jwt`.
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    /// Every token request must carry a DPoP proof.
    #[serde(default)]
    pub require_dpop: bool,
}

/// A registration: the client's first secret, when it has one, is shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OAuthRegistered {
    pub client_id: String,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub client_secret: Option<String>,
    pub secret_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClientSecret {
    pub id: String,
    pub client: String,
    pub created_at: i64,
    /// The end of its rotation overlap, if rotated away.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl From<&ClientSecretRecord> for ClientSecret {
    fn from(r: &ClientSecretRecord) -> Self {
        ClientSecret {
            id: r.id.clone(),
            client: r.client.clone(),
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClientSecretList {
    pub items: Vec<ClientSecret>,
}

/// A new secret: shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RotatedSecret {
    #[serde(flatten)]
    pub secret: ClientSecret,
    pub client_secret: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the previous secrets keep working, in seconds (default 3600).
    pub overlap_seconds: Option<u64>,
}

#[utoipa::path(post, path = "/admin/api/v1/clients/{name}/oauth", tag = "oauth", operation_id = "registerOAuthClient",
    params(("name" = String, Path, description = "The client's name")),
    request_body = RegisterOAuth,
    responses((status = 201, description = "Registered; a confidential client's first secret is shown this once", body = OAuthRegistered),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such client", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid registration", body = Problem, content_type = "application/problem+json")))]
pub async fn register(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    JsonBody { value, .. }: JsonBody<RegisterOAuth>,
) -> Result<(StatusCode, axum::Json<OAuthRegistered>), ApiError> {
    let registered = state
        .admin()
        .register_oauth_client(
            &caller.operator()?,
            &name,
            OAuthRegistration {
                grant_types: value.grant_types,
                auth_method: value.auth_method,
                redirect_uris: value.redirect_uris,
                native: value.native,
                jwks: value.jwks,
                require_dpop: value.require_dpop,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(OAuthRegistered {
            client_id: registered.client_id,
            metadata: super::to_json(&registered.metadata)?,
            client_secret: registered.client_secret,
            secret_id: registered.secret_id,
        }),
    ))
}

#[utoipa::path(get, path = "/admin/api/v1/clients/{name}/secrets", tag = "oauth", operation_id = "listClientSecrets",
    params(("name" = String, Path, description = "The client's name")),
    responses((status = 200, description = "The client's secrets: ids and validity, never the secrets", body = ClientSecretList),
        (status = 404, description = "No such client", body = Problem, content_type = "application/problem+json")))]
pub async fn list_secrets(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<ClientSecretList>, ApiError> {
    state.store.get_client(&name).await?;
    let secrets = state.store.list_client_secrets(&name).await?;
    Ok(axum::Json(ClientSecretList {
        items: secrets.iter().map(ClientSecret::from).collect(),
    }))
}

#[utoipa::path(post, path = "/admin/api/v1/clients/{name}/secrets/rotate", tag = "oauth", operation_id = "rotateClientSecret",
    params(("name" = String, Path, description = "The client's name")),
    request_body = RotateSecret,
    responses((status = 201, description = "The new secret, shown this once; the previous ones keep working for the overlap", body = RotatedSecret),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such client", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The client has no secret to rotate", body = Problem, content_type = "application/problem+json")))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    JsonBody { value, .. }: JsonBody<RotateSecret>,
) -> Result<(StatusCode, axum::Json<RotatedSecret>), ApiError> {
    let overlap = Duration::from_secs(
        value
            .overlap_seconds
            .unwrap_or(3600)
            .min(super::MAX_SECONDS),
    );
    let (secret, record, _) = state
        .admin()
        .rotate_client_secret(&caller.operator()?, &name, overlap)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(RotatedSecret {
            secret: ClientSecret::from(&record),
            client_secret: secret,
        }),
    ))
}

#[utoipa::path(post, path = "/admin/api/v1/client-secrets/{id}/revoke", tag = "oauth", operation_id = "revokeClientSecret",
    params(("id" = String, Path, description = "The secret's id")),
    responses((status = 204, description = "Revoked, effective on the next request"),
        (status = 404, description = "No such secret", body = Problem, content_type = "application/problem+json")))]
pub async fn revoke_secret(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .admin()
        .revoke_client_secret(&caller.operator()?, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
