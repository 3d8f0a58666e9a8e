//! API keys: list, get, create (the secret shown once), rotate with overlap, revoke. The
//! secret is in the answer of create and rotate only, never in a get or a list.

use axum::{
    Extension,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

use super::{
    AdminOf,
    auth::Caller,
    idempotency,
    input::{JsonBody, PageParams, Params, page},
    problem::{ApiError, Problem},
};
use crate::{
    admin::{CreatedKey, NewKey},
    context::AppState,
};
use gatehouse_model::records::ApiKeyRecord;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub client: String,
    pub label: String,
    /// Tool patterns narrowing the connection's grant, if any.
    pub tools: Option<Vec<String>>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The key this one replaced by rotation.
    pub rotated_from: Option<String>,
    pub last_used_at: Option<i64>,
}

impl From<&ApiKeyRecord> for ApiKey {
    fn from(r: &ApiKeyRecord) -> Self {
        ApiKey {
            id: r.id.clone(),
            client: r.client.clone(),
            label: r.label.clone(),
            tools: r.tools.clone(),
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            rotated_from: r.rotated_from.clone(),
            last_used_at: r.last_used_at,
        }
    }
}

/// A key just created or rotated in: `token` is shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The key itself (`gth_…`); not stored, not shown again.
    pub token: String,
}

impl From<&CreatedKey> for CreatedApiKey {
    fn from(created: &CreatedKey) -> Self {
        CreatedApiKey {
            key: ApiKey::from(&created.record),
            token: created.token.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyPage {
    pub items: Vec<ApiKey>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct KeyFilter {
    /// At most this many items (1-500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only this client's keys.
    pub client: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub client: String,
    #[serde(default)]
    pub label: String,
    /// Valid for this many seconds (none: until revoked).
    #[schema(minimum = 1)]
    pub expires_in_seconds: Option<u64>,
    /// Comma-separated tool patterns narrowing the connection's grant.
    pub tools: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateApiKey {
    /// How long the old key keeps working, in seconds (default 0: it stops at once).
    #[serde(default)]
    pub overlap_seconds: u64,
}

#[utoipa::path(get, path = "/admin/api/v1/keys", tag = "keys", operation_id = "listKeys",
    params(KeyFilter),
    responses((status = 200, description = "A page of keys, by id; never a secret", body = ApiKeyPage),
        (status = 400, description = "Malformed query or cursor", body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    Params(filter): Params<KeyFilter>,
) -> Result<axum::Json<ApiKeyPage>, ApiError> {
    let mut keys = state.store.list_api_keys(filter.client.as_deref()).await?;
    keys.sort_by(|a, b| a.id.cmp(&b.id));
    let params = PageParams {
        limit: filter.limit,
        cursor: filter.cursor,
    };
    let (items, next_cursor) = page(keys, &params, |k| k.id.clone())?;
    Ok(axum::Json(ApiKeyPage {
        items: items.iter().map(ApiKey::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/admin/api/v1/keys/{id}", tag = "keys", operation_id = "getKey",
    params(("id" = String, Path, description = "The key's id")),
    responses((status = 200, description = "The key; never its secret", body = ApiKey),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<ApiKey>, ApiError> {
    Ok(axum::Json(ApiKey::from(
        &state.store.get_api_key(&id).await?,
    )))
}

#[utoipa::path(post, path = "/admin/api/v1/keys", tag = "keys", operation_id = "createKey",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create: same key and body, same answer")),
    request_body = CreateApiKey,
    responses((status = 201, description = "Created; the token is shown this once", body = CreatedApiKey),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such client", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The same Idempotency-Key is in progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid values, or an Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: JsonBody<CreateApiKey>,
) -> Result<Response, ApiError> {
    let JsonBody { value, bytes } = body;
    idempotency::once(&state, &caller, &headers, "createKey", &bytes, async {
        // The store would refuse an unknown client only as a constraint; name it here.
        state.store.get_client(&value.client).await?;
        let created = state
            .admin()
            .create_key(
                &caller.operator()?,
                NewKey {
                    client: value.client,
                    label: value.label,
                    expires_in: value
                        .expires_in_seconds
                        .map(|s| Duration::from_secs(s.min(super::MAX_SECONDS))),
                    tools: value.tools,
                },
            )
            .await?;
        Ok((
            StatusCode::CREATED,
            super::to_json(&CreatedApiKey::from(&created))?,
        ))
    })
    .await
}

#[utoipa::path(post, path = "/admin/api/v1/keys/{id}/rotate", tag = "keys", operation_id = "rotateKey",
    params(("id" = String, Path, description = "The key's id")),
    request_body = RotateApiKey,
    responses((status = 201, description = "The successor; its token is shown this once", body = CreatedApiKey),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The key is revoked or expired", body = Problem, content_type = "application/problem+json")))]
pub async fn rotate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody { value, .. }: JsonBody<RotateApiKey>,
) -> Result<(StatusCode, axum::Json<CreatedApiKey>), ApiError> {
    let created = state
        .admin()
        .rotate_key(
            &caller.operator()?,
            &id,
            Duration::from_secs(value.overlap_seconds.min(super::MAX_SECONDS)),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedApiKey::from(&created)),
    ))
}

#[utoipa::path(post, path = "/admin/api/v1/keys/{id}/revoke", tag = "keys", operation_id = "revokeKey",
    params(("id" = String, Path, description = "The key's id")),
    responses((status = 200, description = "Revoked", body = ApiKey),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json")))]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<axum::Json<ApiKey>, ApiError> {
    state.admin().revoke_key(&caller.operator()?, &id).await?;
    Ok(axum::Json(ApiKey::from(
        &state.store.get_api_key(&id).await?,
    )))
}
