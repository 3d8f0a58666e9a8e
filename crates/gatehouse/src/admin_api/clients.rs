//! Clients: list, get, create, disable, enable and delete.

use axum::{
    Extension,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    AdminOf,
    auth::Caller,
    idempotency,
    input::{JsonBody, PageParams, Params, page},
    problem::{ApiError, Problem},
};
use crate::context::AppState;
use gatehouse_model::records::ClientRecord;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Client {
    pub name: String,
    pub description: String,
    /// When it was disabled (milliseconds since the Unix epoch); absent while enabled.
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    /// Whether it may use the OAuth authorization server.
    pub oauth: bool,
}

impl From<&ClientRecord> for Client {
    fn from(r: &ClientRecord) -> Self {
        Client {
            name: r.name.clone(),
            description: r.description.clone(),
            disabled_at: r.disabled_at,
            created_at: r.created_at,
            oauth: r.oauth.is_some(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClientPage {
    pub items: Vec<Client>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ClientFilter {
    /// At most this many items (1-500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only disabled (`true`) or only enabled (`false`) clients.
    pub disabled: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    #[schema(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[utoipa::path(get, path = "/admin/api/v1/clients", tag = "clients", operation_id = "listClients",
    params(ClientFilter),
    responses((status = 200, description = "A page of clients, by name", body = ClientPage),
        (status = 400, description = "Malformed query or cursor", body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    Params(filter): Params<ClientFilter>,
) -> Result<axum::Json<ClientPage>, ApiError> {
    let clients: Vec<ClientRecord> = state
        .store
        .list_clients()
        .await?
        .into_iter()
        .filter(|c| filter.disabled.is_none_or(|d| d == c.disabled_at.is_some()))
        .collect();
    let params = PageParams {
        limit: filter.limit,
        cursor: filter.cursor,
    };
    let (items, next_cursor) = page(clients, &params, |c| c.name.clone())?;
    Ok(axum::Json(ClientPage {
        items: items.iter().map(Client::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/admin/api/v1/clients/{name}", tag = "clients", operation_id = "getClient",
    params(("name" = String, Path, description = "The client's name")),
    responses((status = 200, description = "The client", body = Client),
        (status = 404, description = "No such client", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<Client>, ApiError> {
    Ok(axum::Json(Client::from(
        &state.store.get_client(&name).await?,
    )))
}

#[utoipa::path(post, path = "/admin/api/v1/clients", tag = "clients", operation_id = "createClient",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create: same key and body, same answer")),
    request_body = CreateClient,
    responses((status = 201, description = "Created", body = Client),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A client with this name exists, or the same Idempotency-Key is in progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid values, or an Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: JsonBody<CreateClient>,
) -> Result<Response, ApiError> {
    let JsonBody { value, bytes } = body;
    idempotency::once(&state, &caller, &headers, "createClient", &bytes, async {
        state
            .admin()
            .create_client(&caller.operator()?, &value.name, &value.description)
            .await?;
        let created = Client::from(&state.store.get_client(&value.name).await?);
        Ok((StatusCode::CREATED, super::to_json(&created)?))
    })
    .await
}

async fn set_enabled(
    state: &AppState,
    caller: &Caller,
    name: &str,
    enabled: bool,
) -> Result<axum::Json<Client>, ApiError> {
    state
        .admin()
        .set_client_enabled(&caller.operator()?, name, enabled)
        .await?;
    Ok(axum::Json(Client::from(
        &state.store.get_client(name).await?,
    )))
}

#[utoipa::path(post, path = "/admin/api/v1/clients/{name}/disable", tag = "clients", operation_id = "disableClient",
    params(("name" = String, Path, description = "The client's name")),
    responses((status = 200, description = "Disabled: its keys and tokens stop working", body = Client),
        (status = 404, description = "No such client", body = Problem, content_type = "application/problem+json")))]
pub async fn disable(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<axum::Json<Client>, ApiError> {
    set_enabled(&state, &caller, &name, false).await
}

#[utoipa::path(post, path = "/admin/api/v1/clients/{name}/enable", tag = "clients", operation_id = "enableClient",
    params(("name" = String, Path, description = "The client's name")),
    responses((status = 200, description = "Enabled again", body = Client),
        (status = 404, description = "No such client", body = Problem, content_type = "application/problem+json")))]
pub async fn enable(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<axum::Json<Client>, ApiError> {
    set_enabled(&state, &caller, &name, true).await
}

#[utoipa::path(delete, path = "/admin/api/v1/clients/{name}", tag = "clients", operation_id = "deleteClient",
    params(("name" = String, Path, description = "The client's name")),
    responses((status = 204, description = "Deleted, with its keys, connections and OAuth secrets"),
        (status = 404, description = "No such client", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Policies are scoped to the client: remove them first", body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .admin()
        .delete_client(&caller.operator()?, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
