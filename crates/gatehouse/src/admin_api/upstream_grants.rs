//! People's own tokens at upstreams (per-user delegated tokens, ADR 0006 §5): listed without
//! the tokens, and revoked by an operator (the upstream's revocation endpoint is told when one
//! is configured).

use axum::{
    Extension,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    AdminOf,
    auth::Caller,
    problem::{ApiError, Problem},
};
use crate::{context::AppState, snapshot::upstream_auth::UpstreamAuth};
use gatehouse_model::records::UpstreamGrantRecord;

/// A person's grant at an upstream, never its tokens.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UpstreamGrant {
    /// The person's username.
    pub user: String,
    pub server: String,
    pub scope: String,
    /// When the access token expires (ms since the epoch); none when the upstream named no
    /// lifetime.
    pub expires_at: Option<i64>,
    /// Whether Gatehouse can renew it without the person.
    pub refreshable: bool,
    pub created_at: i64,
    pub refreshed_at: Option<i64>,
}

impl UpstreamGrant {
    /// The view of `r`, a grant of the user named `username`.
    pub fn of(username: &str, r: &UpstreamGrantRecord) -> Self {
        UpstreamGrant {
            user: username.to_owned(),
            server: r.server.clone(),
            scope: r.scope.clone(),
            expires_at: r.expires_at,
            refreshable: r.refresh_sealed.is_some(),
            created_at: r.created_at,
            refreshed_at: r.refreshed_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UpstreamGrantList {
    pub items: Vec<UpstreamGrant>,
}

#[utoipa::path(get, path = "/admin/api/v1/users/{username}/upstream-grants", tag = "users",
    operation_id = "listUpstreamGrants",
    params(("username" = String, Path, description = "The user's username")),
    responses((status = 200, description = "The servers the person connected their own account at", body = UpstreamGrantList),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    Path(username): Path<String>,
) -> Result<axum::Json<UpstreamGrantList>, ApiError> {
    let user = state
        .store
        .find_user_by_username(&username)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            kind: "user",
            name: username.clone(),
        })?;
    let grants = state.store.list_upstream_grants(Some(&user.id)).await?;
    Ok(axum::Json(UpstreamGrantList {
        items: grants
            .iter()
            .map(|g| UpstreamGrant::of(&user.username, g))
            .collect(),
    }))
}

#[utoipa::path(delete, path = "/admin/api/v1/users/{username}/upstream-grants/{server}", tag = "users",
    operation_id = "revokeUpstreamGrant",
    params(("username" = String, Path, description = "The user's username"), ("server" = String, Path, description = "The server's name")),
    responses((status = 204, description = "Revoked: the tokens are forgotten and the upstream was told when it has a revocation endpoint"),
        (status = 404, description = "No such user or grant", body = Problem, content_type = "application/problem+json")))]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((username, server)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let grant = state
        .admin()
        .revoke_upstream_grant(&caller.operator()?, &username, &server)
        .await?;
    let snapshot = state.snapshot.current();
    if let Some(entry) = snapshot.servers.get(&server)
        && let UpstreamAuth::PerUser(auth) = &entry.auth
    {
        state
            .upstream_tokens
            .revoke_at_upstream(&state.keyring, auth, &grant)
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}
