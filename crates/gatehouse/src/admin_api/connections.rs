//! Connections: which tools (and resource and prompt families) a client may use on a server.

use axum::{
    Extension,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    AdminOf,
    auth::Caller,
    input::{JsonBody, PageParams, Params, page},
    problem::{ApiError, Problem},
};
use crate::{admin::NewConnection, context::AppState};
use gatehouse_model::records::ConnectionRecord;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Connection {
    pub client: String,
    pub server: String,
    /// Tool patterns granted (`*`, `search_*`, …).
    pub tools: Vec<String>,
    pub resources: bool,
    pub prompts: bool,
    pub created_at: i64,
}

impl From<&ConnectionRecord> for Connection {
    fn from(r: &ConnectionRecord) -> Self {
        Connection {
            client: r.client.clone(),
            server: r.server.clone(),
            tools: r.tools.clone(),
            resources: r.resources,
            prompts: r.prompts,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConnectionPage {
    pub items: Vec<Connection>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConnectionFilter {
    /// At most this many items (1-500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub client: Option<String>,
    pub server: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantConnection {
    /// Comma-separated tool patterns (`*` for every tool).
    pub tools: String,
    #[serde(default)]
    pub resources: bool,
    #[serde(default)]
    pub prompts: bool,
}

#[utoipa::path(get, path = "/admin/api/v1/connections", tag = "connections", operation_id = "listConnections",
    params(ConnectionFilter),
    responses((status = 200, description = "A page of connections, by client then server", body = ConnectionPage),
        (status = 400, description = "Malformed query or cursor", body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    Params(filter): Params<ConnectionFilter>,
) -> Result<axum::Json<ConnectionPage>, ApiError> {
    let mut connections: Vec<ConnectionRecord> = state
        .store
        .list_connections()
        .await?
        .into_iter()
        .filter(|c| filter.client.as_ref().is_none_or(|x| *x == c.client))
        .filter(|c| filter.server.as_ref().is_none_or(|x| *x == c.server))
        .collect();
    // Names hold no '/', so `client/server` orders as the pair does.
    connections.sort_by(|a, b| (&a.client, &a.server).cmp(&(&b.client, &b.server)));
    let params = PageParams {
        limit: filter.limit,
        cursor: filter.cursor,
    };
    let (items, next_cursor) = page(connections, &params, |c| {
        format!("{}/{}", c.client, c.server)
    })?;
    Ok(axum::Json(ConnectionPage {
        items: items.iter().map(Connection::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(put, path = "/admin/api/v1/connections/{client}/{server}", tag = "connections",
    operation_id = "grantConnection",
    params(("client" = String, Path, description = "The client's name"),
        ("server" = String, Path, description = "The server's name")),
    request_body = GrantConnection,
    responses((status = 200, description = "Granted (created or replaced)", body = Connection),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such client or server", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid tool patterns", body = Problem, content_type = "application/problem+json")))]
pub async fn grant(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((client, server)): Path<(String, String)>,
    JsonBody { value, .. }: JsonBody<GrantConnection>,
) -> Result<axum::Json<Connection>, ApiError> {
    state.store.get_client(&client).await?;
    state.store.get_server(&server).await?;
    state
        .admin()
        .grant_connection(
            &caller.operator()?,
            NewConnection {
                client: client.clone(),
                server: server.clone(),
                tools: value.tools,
                resources: value.resources,
                prompts: value.prompts,
            },
        )
        .await?;
    let granted = state
        .store
        .list_connections()
        .await?
        .into_iter()
        .find(|c| c.client == client && c.server == server)
        .ok_or(ApiError::Internal)?;
    Ok(axum::Json(Connection::from(&granted)))
}

#[utoipa::path(delete, path = "/admin/api/v1/connections/{client}/{server}", tag = "connections",
    operation_id = "revokeConnection",
    params(("client" = String, Path, description = "The client's name"),
        ("server" = String, Path, description = "The server's name")),
    responses((status = 204, description = "Revoked"),
        (status = 404, description = "No such connection", body = Problem, content_type = "application/problem+json")))]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((client, server)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .admin()
        .revoke_connection(&caller.operator()?, &client, &server)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
