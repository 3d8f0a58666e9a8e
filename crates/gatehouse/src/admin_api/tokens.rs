//! Admin tokens through the API (admin role only) and `whoami`.

use axum::{
    Extension,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

use super::{
    AdminOf,
    auth::Caller,
    idempotency,
    input::{JsonBody, PageParams, Params, page},
    problem::{ApiError, Problem},
};
use crate::context::AppState;
use gatehouse_model::records::{AdminRole, AdminTokenRecord};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminToken {
    pub id: String,
    pub name: String,
    /// `admin`, `operator` or `auditor`.
    #[schema(value_type = String)]
    pub role: AdminRole,
    pub created_at: i64,
    pub created_by: String,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl From<&AdminTokenRecord> for AdminToken {
    fn from(r: &AdminTokenRecord) -> Self {
        AdminToken {
            id: r.id.clone(),
            name: r.name.clone(),
            role: r.role,
            created_at: r.created_at,
            created_by: r.created_by.clone(),
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedAdminToken {
    #[serde(flatten)]
    pub admin_token: AdminToken,
    /// The token itself; not stored, not shown again.
    pub token: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminTokenPage {
    pub items: Vec<AdminToken>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAdminToken {
    pub name: String,
    /// `admin`, `operator` or `auditor`.
    #[schema(value_type = String)]
    pub role: AdminRole,
    /// Valid for this many seconds (none: until revoked).
    #[schema(minimum = 1)]
    pub expires_in_seconds: Option<u64>,
}

/// The token making the request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    pub token_id: String,
    pub name: String,
    #[schema(value_type = String)]
    pub role: AdminRole,
}

#[utoipa::path(get, path = "/admin/api/v1/whoami", tag = "admin-tokens", operation_id = "whoAmI",
    responses((status = 200, description = "The calling token and its role", body = WhoAmI)))]
pub async fn whoami(Extension(caller): Extension<Caller>) -> axum::Json<WhoAmI> {
    axum::Json(WhoAmI {
        token_id: caller.token_id,
        name: caller.name,
        role: caller.role,
    })
}

#[utoipa::path(get, path = "/admin/api/v1/admin-tokens", tag = "admin-tokens", operation_id = "listAdminTokens",
    params(PageParams),
    responses((status = 200, description = "A page of admin tokens, by id; never a secret", body = AdminTokenPage),
        (status = 400, description = "Malformed query or cursor", body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    Params(params): Params<PageParams>,
) -> Result<axum::Json<AdminTokenPage>, ApiError> {
    let mut tokens = state.store.list_admin_tokens().await?;
    tokens.sort_by(|a, b| a.id.cmp(&b.id));
    let (items, next_cursor) = page(tokens, &params, |t| t.id.clone())?;
    Ok(axum::Json(AdminTokenPage {
        items: items.iter().map(AdminToken::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(post, path = "/admin/api/v1/admin-tokens", tag = "admin-tokens", operation_id = "createAdminToken",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create: same key and body, same answer")),
    request_body = CreateAdminToken,
    responses((status = 201, description = "Created; the token is shown this once", body = CreatedAdminToken),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The same Idempotency-Key is in progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid values, or an Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: JsonBody<CreateAdminToken>,
) -> Result<Response, ApiError> {
    let JsonBody { value, bytes } = body;
    idempotency::once(
        &state,
        &caller,
        &headers,
        "createAdminToken",
        &bytes,
        async {
            let created = state
                .admin()
                .create_admin_token(
                    &caller.operator()?,
                    &value.name,
                    value.role,
                    value
                        .expires_in_seconds
                        .map(|s| Duration::from_secs(s.min(super::MAX_SECONDS))),
                )
                .await?;
            let answer = CreatedAdminToken {
                admin_token: AdminToken::from(&created.record),
                token: created.token,
            };
            Ok((StatusCode::CREATED, super::to_json(&answer)?))
        },
    )
    .await
}

#[utoipa::path(post, path = "/admin/api/v1/admin-tokens/{id}/revoke", tag = "admin-tokens",
    operation_id = "revokeAdminToken",
    params(("id" = String, Path, description = "The admin token's id")),
    responses((status = 200, description = "Revoked", body = AdminToken),
        (status = 404, description = "No such admin token", body = Problem, content_type = "application/problem+json")))]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<axum::Json<AdminToken>, ApiError> {
    state
        .admin()
        .revoke_admin_token(&caller.operator()?, &id)
        .await?;
    Ok(axum::Json(AdminToken::from(
        &state.store.get_admin_token(&id).await?,
    )))
}
