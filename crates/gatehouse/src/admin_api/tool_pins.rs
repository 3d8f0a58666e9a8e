//! Tool pins: the definitions each server's tools were approved with, and changed ones
//! waiting for approval, with what changed.

use axum::{
    Extension,
    extract::{Path, State},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    AdminOf,
    auth::Caller,
    input::{JsonBody, PageParams, Params, page},
    problem::{ApiError, Problem},
};
use crate::context::AppState;
use gatehouse_model::records::ToolPin as PinRecord;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ToolPin {
    pub server: String,
    pub tool: String,
    /// Hash of the approved definition (absent before the first approval).
    pub approved_hash: Option<String>,
    /// The approved definition, to review a held change against; absent when it was not
    /// recorded (approved before Gatehouse kept definitions, or over 64 KiB).
    pub approved_definition: Option<serde_json::Value>,
    /// Hash of a changed definition waiting for approval.
    pub pending_hash: Option<String>,
    /// The changed definition itself, as the upstream sent it.
    pub pending_definition: Option<serde_json::Value>,
    /// Why it is held (a changed definition, or prompt-injection markers).
    pub pending_reason: Option<String>,
    pub first_seen: i64,
    pub updated_at: i64,
}

impl From<&PinRecord> for ToolPin {
    fn from(r: &PinRecord) -> Self {
        ToolPin {
            server: r.server.clone(),
            tool: r.tool.clone(),
            approved_hash: r.approved_hash.clone(),
            approved_definition: r.approved_definition.as_deref().map(definition),
            pending_hash: r.pending_hash.clone(),
            pending_definition: r.pending_definition.as_deref().map(definition),
            pending_reason: r.pending_reason.clone(),
            first_seen: r.first_seen,
            updated_at: r.updated_at,
        }
    }
}

/// A stored definition as JSON; text that is not JSON stays text.
fn definition(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::String(text.to_owned()))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ToolPinPage {
    pub items: Vec<ToolPin>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PinFilter {
    /// At most this many items (1-500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub server: Option<String>,
    /// Only pins waiting for approval (`true`) or only settled ones (`false`).
    pub pending: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveTools {
    /// The tools to approve; empty or absent: every pending tool of the server.
    #[serde(default)]
    pub tools: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Approved {
    pub server: String,
    pub approved: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Rejected {
    pub server: String,
    /// How many pending definitions were discarded.
    pub rejected: u64,
}

#[utoipa::path(get, path = "/admin/api/v1/tool-pins", tag = "tool-pins", operation_id = "listToolPins",
    params(PinFilter),
    responses((status = 200, description = "A page of pins, by server then tool", body = ToolPinPage),
        (status = 400, description = "Malformed query or cursor", body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    Params(filter): Params<PinFilter>,
) -> Result<axum::Json<ToolPinPage>, ApiError> {
    let mut pins: Vec<PinRecord> = state
        .store
        .list_tool_pins()
        .await?
        .into_iter()
        .filter(|p| filter.server.as_ref().is_none_or(|s| *s == p.server))
        .filter(|p| {
            filter
                .pending
                .is_none_or(|want| want == p.pending_hash.is_some())
        })
        .collect();
    pins.sort_by(|a, b| (&a.server, &a.tool).cmp(&(&b.server, &b.tool)));
    let params = PageParams {
        limit: filter.limit,
        cursor: filter.cursor,
    };
    // A NUL cannot occur in a server name, so it separates server from tool in the cursor.
    let (items, next_cursor) = page(pins, &params, |p| format!("{}\u{0}{}", p.server, p.tool))?;
    Ok(axum::Json(ToolPinPage {
        items: items.iter().map(ToolPin::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(post, path = "/admin/api/v1/servers/{name}/tool-pins/approve", tag = "tool-pins",
    operation_id = "approveToolPins",
    params(("name" = String, Path, description = "The server's name")),
    request_body = ApproveTools,
    responses((status = 200, description = "How many pending definitions were approved", body = Approved),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such server", body = Problem, content_type = "application/problem+json")))]
pub async fn approve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    JsonBody { value, .. }: JsonBody<ApproveTools>,
) -> Result<axum::Json<Approved>, ApiError> {
    state.store.get_server(&name).await?;
    let (_, approved) = state
        .admin()
        .approve_tools(&caller.operator()?, &name, &value.tools)
        .await?;
    Ok(axum::Json(Approved {
        server: name,
        approved,
    }))
}

#[utoipa::path(post, path = "/admin/api/v1/servers/{name}/tool-pins/reject", tag = "tool-pins",
    operation_id = "rejectToolPins",
    params(("name" = String, Path, description = "The server's name")),
    request_body = ApproveTools,
    responses((status = 200, description = "How many pending definitions were discarded; each tool keeps its approved definition and stays held while the upstream serves another", body = Rejected),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such server, or a named tool has nothing pending", body = Problem, content_type = "application/problem+json")))]
pub async fn reject(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    JsonBody { value, .. }: JsonBody<ApproveTools>,
) -> Result<axum::Json<Rejected>, ApiError> {
    state.store.get_server(&name).await?;
    let (_, rejected) = state
        .admin()
        .reject_tools(&caller.operator()?, &name, &value.tools)
        .await?;
    Ok(axum::Json(Rejected {
        server: name,
        rejected,
    }))
}
