//! Servers: list, get, create, update, delete, and test-connection.

use axum::{
    Extension,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    AdminOf,
    auth::Caller,
    idempotency,
    input::{JsonBody, PageParams, Params, page},
    probe_outcome::Outcome,
    problem::{ApiError, Problem},
    servers_stdio::{StdioInput, StdioView, new_stdio, require_admin},
    upstream_auth::{UpstreamAuthInput, UpstreamAuthView},
};
use crate::{
    admin::{NewServer, ServerUpdate},
    context::AppState,
};
use gatehouse_model::records::ServerRecord;

/// An upstream MCP server. Its injected credential's value is never shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Server {
    pub name: String,
    pub url: String,
    /// The header Gatehouse injects upstream, if any (its value stays sealed).
    pub credential_header: Option<String>,
    pub allow_anonymous: bool,
    pub allow_unknown_methods: bool,
    /// `block`, `warn` or `off`: what a changed tool definition does.
    pub pin_action: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// How Gatehouse gets tokens for the upstream, if it does (never the secret).
    pub upstream_auth: Option<UpstreamAuthView>,
    /// The header carrying Gatehouse's signed assertion of the caller, if sent.
    pub identity_header: Option<String>,
    /// Set for a local program (`url` is then `stdio://{name}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdio: Option<StdioView>,
    /// Set for a virtual server (`url` is then `virtual://{name}`): the servers it
    /// aggregates, in the order their lists are merged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

impl From<&ServerRecord> for Server {
    fn from(r: &ServerRecord) -> Self {
        Server {
            name: r.name.clone(),
            url: r.url.clone(),
            credential_header: r.credential_header.clone(),
            allow_anonymous: r.allow_anonymous,
            allow_unknown_methods: r.allow_unknown_methods,
            pin_action: r.pin_action.as_str().to_owned(),
            created_at: r.created_at,
            upstream_auth: r.upstream_auth.spec.as_ref().map(UpstreamAuthView::from),
            identity_header: r.upstream_auth.identity_header.clone(),
            stdio: r.stdio.as_ref().map(StdioView::from),
            members: r.members.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServerPage {
    pub items: Vec<Server>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServer {
    #[schema(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub name: String,
    /// `http://` or `https://` URL of the upstream's MCP endpoint (absent for a stdio server).
    #[schema(pattern = r"^https?://[^\s/?#]+")]
    pub url: Option<String>,
    /// `Header-Name: value` injected on every upstream request (write-only).
    pub credential: Option<String>,
    #[serde(default)]
    pub allow_anonymous: bool,
    #[serde(default)]
    pub allow_unknown_methods: bool,
    /// `block` (default), `warn` or `off`.
    pub pin_action: Option<String>,
    /// Tokens Gatehouse fetches for the upstream.
    pub upstream_auth: Option<UpstreamAuthInput>,
    /// Header carrying Gatehouse's signed assertion of the caller, e.g.
    /// `X-Gatehouse-Identity`.
    pub identity_header: Option<String>,
    /// A local program instead of a URL: admin role only.
    pub stdio: Option<StdioInput>,
    /// The servers a virtual server aggregates, instead of a URL or a program (each an
    /// existing server that is not virtual itself).
    #[serde(default)]
    pub members: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateServer {
    pub url: Option<String>,
    /// A new `Header-Name: value` credential (write-only).
    pub credential: Option<String>,
    /// `true` removes the injected credential.
    #[serde(default)]
    pub remove_credential: bool,
    /// New upstream token settings (the secret is write-only).
    pub upstream_auth: Option<UpstreamAuthInput>,
    /// `true` stops fetching tokens for the upstream.
    #[serde(default)]
    pub remove_upstream_auth: bool,
    /// A new identity assertion header.
    pub identity_header: Option<String>,
    /// `true` stops sending the identity assertion.
    #[serde(default)]
    pub remove_identity_header: bool,
    /// Makes the server a local program, or replaces its settings: admin role only.
    pub stdio: Option<StdioInput>,
    /// Makes the server virtual, or replaces its members.
    pub members: Option<Vec<String>>,
}

/// What the upstream lists, before any connection grants it, or why it could not be asked.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConnectionTest {
    pub server: String,
    /// Whether the upstream answered `initialize` and `tools/list` as an MCP server.
    pub reachable: bool,
    /// The tools as the upstream defines them (empty when unreachable).
    pub tools: Vec<serde_json::Value>,
    /// Why the upstream could not be asked, when it could not; for a virtual server, which
    /// members could not.
    pub error: Option<String>,
    /// A virtual server's members, each probed on its own (empty for any other server). The
    /// tools are then the members' under the names the gateway lists them by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberConnection>,
}

/// One member of a virtual server in a connection test.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberConnection {
    pub server: String,
    pub reachable: bool,
    /// Why it could not be asked, when it could not.
    pub error: Option<String>,
}

#[utoipa::path(get, path = "/admin/api/v1/servers", tag = "servers", operation_id = "listServers",
    params(PageParams),
    responses((status = 200, description = "A page of servers, by name", body = ServerPage),
        (status = 400, description = "Malformed query or cursor", body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    Params(params): Params<PageParams>,
) -> Result<axum::Json<ServerPage>, ApiError> {
    let servers = state.store.list_servers().await?;
    let (items, next_cursor) = page(servers, &params, |s| s.name.clone())?;
    Ok(axum::Json(ServerPage {
        items: items.iter().map(Server::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/admin/api/v1/servers/{name}", tag = "servers", operation_id = "getServer",
    params(("name" = String, Path, description = "The server's name")),
    responses((status = 200, description = "The server", body = Server),
        (status = 404, description = "No such server", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<Server>, ApiError> {
    Ok(axum::Json(Server::from(
        &state.store.get_server(&name).await?,
    )))
}

#[utoipa::path(post, path = "/admin/api/v1/servers", tag = "servers", operation_id = "createServer",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create: same key and body, same answer")),
    request_body = CreateServer,
    responses((status = 201, description = "Created", body = Server),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A server with this name exists, or the same Idempotency-Key is in progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid values, or an Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: JsonBody<CreateServer>,
) -> Result<Response, ApiError> {
    let JsonBody { value, bytes } = body;
    if value.stdio.is_some() {
        require_admin(&caller)?;
    }
    idempotency::once(&state, &caller, &headers, "createServer", &bytes, async {
        let name = value.name.clone();
        let (upstream_auth, per_user_discovery) = UpstreamAuthInput::split(value.upstream_auth)?;
        state
            .admin()
            .add_server(
                &caller.operator()?,
                NewServer {
                    name: value.name,
                    url: value.url.unwrap_or_default(),
                    credential: value.credential,
                    allow_anonymous: value.allow_anonymous,
                    allow_unknown_methods: value.allow_unknown_methods,
                    pin_action: value.pin_action,
                    upstream_auth,
                    identity_header: value.identity_header,
                    stdio: value.stdio.map(|s| new_stdio(&state, s)),
                    per_user_discovery,
                    members: value.members,
                },
            )
            .await?;
        let created = Server::from(&state.store.get_server(&name).await?);
        Ok((StatusCode::CREATED, super::to_json(&created)?))
    })
    .await
}

#[utoipa::path(patch, path = "/admin/api/v1/servers/{name}", tag = "servers", operation_id = "updateServer",
    params(("name" = String, Path, description = "The server's name")),
    request_body = UpdateServer,
    responses((status = 200, description = "Updated", body = Server),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such server", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid values", body = Problem, content_type = "application/problem+json")))]
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    JsonBody { value, .. }: JsonBody<UpdateServer>,
) -> Result<axum::Json<Server>, ApiError> {
    // Changing a stdio server, or making one, changes what program runs.
    if value.stdio.is_some() || state.store.get_server(&name).await?.stdio.is_some() {
        require_admin(&caller)?;
    }
    if value.remove_credential && value.credential.is_some() {
        return Err(ApiError::Invalid(
            "give either credential or remove_credential, not both".into(),
        ));
    }
    let credential = match (value.credential, value.remove_credential) {
        (Some(credential), _) => Some(Some(credential)),
        (None, true) => Some(None),
        (None, false) => None,
    };
    let (upstream_auth, per_user_discovery) =
        match (value.upstream_auth, value.remove_upstream_auth) {
            (Some(_), true) => {
                return Err(ApiError::Invalid(
                    "give either upstream_auth or remove_upstream_auth, not both".into(),
                ));
            }
            (Some(given), false) => match UpstreamAuthInput::split(Some(given))? {
                (Some(given), _) => (Some(Some(given)), None),
                (None, discover) => (None, discover),
            },
            (None, true) => (Some(None), None),
            (None, false) => (None, None),
        };
    let identity_header = match (value.identity_header, value.remove_identity_header) {
        (Some(_), true) => {
            return Err(ApiError::Invalid(
                "give either identity_header or remove_identity_header, not both".into(),
            ));
        }
        (Some(header), false) => Some(Some(header)),
        (None, true) => Some(None),
        (None, false) => None,
    };
    state
        .admin()
        .update_server(
            &caller.operator()?,
            &name,
            ServerUpdate {
                url: value.url,
                credential,
                upstream_auth,
                identity_header,
                stdio: value.stdio.map(|s| new_stdio(&state, s)),
                per_user_discovery,
                members: value.members,
            },
        )
        .await?;
    Ok(axum::Json(Server::from(
        &state.store.get_server(&name).await?,
    )))
}

#[utoipa::path(delete, path = "/admin/api/v1/servers/{name}", tag = "servers", operation_id = "deleteServer",
    params(("name" = String, Path, description = "The server's name")),
    responses((status = 204, description = "Deleted, with its connections"),
        (status = 404, description = "No such server", body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .admin()
        .remove_server(&caller.operator()?, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/admin/api/v1/servers/{name}/test-connection", tag = "servers",
    operation_id = "testServerConnection",
    params(("name" = String, Path, description = "The server's name")),
    responses((status = 200, description = "The upstream's tools, or why it could not be asked; nothing is granted or pinned", body = ConnectionTest),
        (status = 404, description = "No such server", body = Problem, content_type = "application/problem+json")))]
pub async fn test_connection(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let server = state.store.get_server(&name).await?;
    let outcome = if server.members.is_empty() {
        super::probe::list_tools(&state, &server).await?
    } else {
        super::probe_virtual::list_tools(&state, &server).await?
    };
    let test = match outcome {
        Outcome::Tools(tools) => ConnectionTest {
            server: name,
            reachable: true,
            tools,
            error: None,
            members: Vec::new(),
        },
        Outcome::Unreachable(why) => ConnectionTest {
            server: name,
            reachable: false,
            tools: Vec::new(),
            error: Some(why),
            members: Vec::new(),
        },
        Outcome::Members { tools, members } => {
            let down: Vec<&str> = members
                .iter()
                .filter(|m| m.error.is_some())
                .map(|m| m.server.as_str())
                .collect();
            ConnectionTest {
                server: name,
                // As the gateway: listed while any member answers, without the others.
                reachable: down.len() < members.len(),
                tools,
                error: (!down.is_empty())
                    .then(|| format!("members not reachable: {}", down.join(", "))),
                members: members
                    .into_iter()
                    .map(|m| MemberConnection {
                        server: m.server,
                        reachable: m.error.is_none(),
                        error: m.error,
                    })
                    .collect(),
            }
        }
    };
    Ok(axum::Json(test).into_response())
}
