//! `policy explain`: the decision a request would get from the running configuration, step by
//! step, without calling anything or charging any counter.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use utoipa::ToSchema;

use super::{
    input::JsonBody,
    problem::{ApiError, Problem},
};
use crate::{
    admin::explain::{AsKey, Explanation, Question, explain_as},
    context::AppState,
};
use gatehouse_model::tool_pattern::ToolPattern;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    /// The client asking (or give `key`).
    pub client: Option<String>,
    /// An API key's id: its client, narrowing and per-key counters apply.
    pub key: Option<String>,
    pub server: String,
    pub tool: Option<String>,
    /// The caller's address (default 127.0.0.1).
    #[schema(value_type = Option<String>)]
    pub ip: Option<IpAddr>,
    /// When (RFC 3339; default now), for schedules.
    pub at: Option<String>,
    /// The call's arguments, for argument policies and guardrails.
    pub arguments: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExplainAnswer {
    /// `allow` or `deny`, the step that decided, and every step.
    #[schema(value_type = Object)]
    pub explanation: Explanation,
}

#[utoipa::path(post, path = "/admin/api/v1/policy/explain", tag = "policies", operation_id = "explainPolicy",
    request_body = ExplainRequest,
    responses((status = 200, description = "The decision and its steps", body = ExplainAnswer),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Neither client nor key, a key of another client, or a bad time", body = Problem, content_type = "application/problem+json")))]
pub async fn explain(
    State(state): State<AppState>,
    JsonBody { value, .. }: JsonBody<ExplainRequest>,
) -> Result<axum::Json<ExplainAnswer>, ApiError> {
    let key = match &value.key {
        Some(id) => Some(state.store.get_api_key(id).await?),
        None => None,
    };
    if let Some(record) = &key {
        if record.revoked_at.is_some() {
            return Err(ApiError::Invalid(format!("key {} is revoked", record.id)));
        }
        if value.client.as_ref().is_some_and(|c| *c != record.client) {
            return Err(ApiError::Invalid(format!(
                "key {} belongs to client {}",
                record.id, record.client
            )));
        }
    }
    let client = match (&key, &value.client) {
        (Some(record), _) => record.client.clone(),
        (None, Some(client)) => client.clone(),
        (None, None) => return Err(ApiError::Invalid("give client or key".into())),
    };
    let narrowing = match key.as_ref().and_then(|k| k.tools.as_ref()) {
        Some(tools) => Some(
            tools
                .iter()
                .map(|t| ToolPattern::parse(t))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ApiError::Invalid(e.to_string()))?,
        ),
        None => None,
    };
    let at = match &value.at {
        Some(text) => text
            .parse::<jiff::Timestamp>()
            .map_err(|e| ApiError::Invalid(format!("at {text:?}: {e}")))?,
        None => jiff::Timestamp::now(),
    };
    let question = Question {
        client: &client,
        server: &value.server,
        tool: value.tool.as_deref(),
        ip: value.ip.unwrap_or(IpAddr::from([127, 0, 0, 1])),
        at,
        arguments: value.arguments.as_ref(),
    };
    let as_key = key.as_ref().map(|k| AsKey {
        id: &k.id,
        narrowing: narrowing.as_deref(),
    });
    let snapshot = state.snapshot.current();
    Ok(axum::Json(ExplainAnswer {
        explanation: explain_as(&snapshot, &question, as_key),
    }))
}
