//! Policies and guardrails (a guardrail is a policy of kind `guardrail`): list, get, create,
//! replace, import (several at once, all or none), delete.

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
use crate::{admin::NewPolicy, context::AppState};
use gatehouse_model::records::PolicyRecord;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Policy {
    pub id: String,
    /// `arguments`, `ip`, `country`, `schedule`, `quota`, `rate_limit` or `guardrail`.
    pub kind: String,
    pub client: Option<String>,
    pub server: Option<String>,
    /// Tool pattern the policy is limited to.
    pub tools: Option<String>,
    /// The kind's specification (docs/policies.md, docs/guardrails.md).
    pub spec: serde_json::Value,
    pub created_at: i64,
}

impl From<&PolicyRecord> for Policy {
    fn from(r: &PolicyRecord) -> Self {
        Policy {
            id: r.id.clone(),
            kind: r.kind.clone(),
            client: r.client.clone(),
            server: r.server.clone(),
            tools: r.tools.clone(),
            spec: r.spec.clone(),
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyPage {
    pub items: Vec<Policy>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PolicyFilter {
    /// At most this many items (1-500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub kind: Option<String>,
    pub client: Option<String>,
    pub server: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePolicy {
    pub id: String,
    pub kind: String,
    pub client: Option<String>,
    pub server: Option<String>,
    pub tools: Option<String>,
    pub spec: serde_json::Value,
}

/// A policy's new kind, scope and specification (its id is the path's).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplacePolicy {
    pub kind: String,
    pub client: Option<String>,
    pub server: Option<String>,
    pub tools: Option<String>,
    pub spec: serde_json::Value,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportPolicies {
    /// The policies to add, as `gatehouse policy import` reads them from a file.
    #[schema(value_type = Vec<Object>)]
    pub policies: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportedPolicies {
    /// The policies added, by id.
    pub items: Vec<Policy>,
}

#[utoipa::path(get, path = "/admin/api/v1/policies", tag = "policies", operation_id = "listPolicies",
    params(PolicyFilter),
    responses((status = 200, description = "A page of policies and guardrails, by id", body = PolicyPage),
        (status = 400, description = "Malformed query or cursor", body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    Params(filter): Params<PolicyFilter>,
) -> Result<axum::Json<PolicyPage>, ApiError> {
    let kind = filter.kind.as_ref().map(|k| k.replace('-', "_"));
    let mut policies: Vec<PolicyRecord> = state
        .store
        .list_policies()
        .await?
        .into_iter()
        .filter(|p| kind.as_ref().is_none_or(|k| *k == p.kind))
        .filter(|p| filter.client.is_none() || filter.client == p.client)
        .filter(|p| filter.server.is_none() || filter.server == p.server)
        .collect();
    policies.sort_by(|a, b| a.id.cmp(&b.id));
    let params = PageParams {
        limit: filter.limit,
        cursor: filter.cursor,
    };
    let (items, next_cursor) = page(policies, &params, |p| p.id.clone())?;
    Ok(axum::Json(PolicyPage {
        items: items.iter().map(Policy::from).collect(),
        next_cursor,
    }))
}

async fn find(state: &AppState, id: &str) -> Result<PolicyRecord, ApiError> {
    state
        .store
        .list_policies()
        .await?
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| ApiError::NotFound {
            kind: "policy",
            name: id.to_owned(),
        })
}

#[utoipa::path(get, path = "/admin/api/v1/policies/{id}", tag = "policies", operation_id = "getPolicy",
    params(("id" = String, Path, description = "The policy's id")),
    responses((status = 200, description = "The policy", body = Policy),
        (status = 404, description = "No such policy", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Policy>, ApiError> {
    Ok(axum::Json(Policy::from(&find(&state, &id).await?)))
}

#[utoipa::path(post, path = "/admin/api/v1/policies", tag = "policies", operation_id = "createPolicy",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create: same key and body, same answer")),
    request_body = CreatePolicy,
    responses((status = 201, description = "Created", body = Policy),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such client or server", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A policy with this id exists, or the same Idempotency-Key is in progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid specification, or an Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: JsonBody<CreatePolicy>,
) -> Result<Response, ApiError> {
    let JsonBody { value, bytes } = body;
    idempotency::once(&state, &caller, &headers, "createPolicy", &bytes, async {
        if let Some(client) = &value.client {
            state.store.get_client(client).await?;
        }
        if let Some(server) = &value.server {
            state.store.get_server(server).await?;
        }
        let id = value.id.clone();
        state
            .admin()
            .add_policy(
                &caller.operator()?,
                NewPolicy {
                    id: value.id,
                    kind: value.kind,
                    client: value.client,
                    server: value.server,
                    tools: value.tools,
                    spec: value.spec.to_string(),
                },
                &state.config,
            )
            .await?;
        let created = Policy::from(&find(&state, &id).await?);
        Ok((StatusCode::CREATED, super::to_json(&created)?))
    })
    .await
}

#[utoipa::path(put, path = "/admin/api/v1/policies/{id}", tag = "policies", operation_id = "replacePolicy",
    params(("id" = String, Path, description = "The policy's id")),
    request_body = ReplacePolicy,
    responses((status = 200, description = "Replaced (a quota's counters start again)", body = Policy),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such policy, client or server", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid specification: the policy in force stays", body = Problem, content_type = "application/problem+json")))]
pub async fn replace(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody { value, .. }: JsonBody<ReplacePolicy>,
) -> Result<axum::Json<Policy>, ApiError> {
    find(&state, &id).await?;
    if let Some(client) = &value.client {
        state.store.get_client(client).await?;
    }
    if let Some(server) = &value.server {
        state.store.get_server(server).await?;
    }
    state
        .admin()
        .replace_policy(
            &caller.operator()?,
            NewPolicy {
                id: id.clone(),
                kind: value.kind,
                client: value.client,
                server: value.server,
                tools: value.tools,
                spec: value.spec.to_string(),
            },
            &state.config,
        )
        .await?;
    Ok(axum::Json(Policy::from(&find(&state, &id).await?)))
}

#[utoipa::path(delete, path = "/admin/api/v1/policies/{id}", tag = "policies", operation_id = "deletePolicy",
    params(("id" = String, Path, description = "The policy's id")),
    responses((status = 204, description = "Deleted (a quota's counters with it)"),
        (status = 404, description = "No such policy", body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    find(&state, &id).await?;
    state
        .admin()
        .remove_policy(&caller.operator()?, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/admin/api/v1/policies/import", tag = "policies", operation_id = "importPolicies",
    request_body = ImportPolicies,
    responses((status = 201, description = "Every policy added (nothing is added unless all are valid)", body = ImportedPolicies),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A policy with one of these ids exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid policy (its id named); nothing was added", body = Problem, content_type = "application/problem+json")))]
pub async fn import(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody { value, .. }: JsonBody<ImportPolicies>,
) -> Result<(StatusCode, axum::Json<ImportedPolicies>), ApiError> {
    let before: Vec<String> = state
        .store
        .list_policies()
        .await?
        .into_iter()
        .map(|p| p.id)
        .collect();
    let text = serde_json::Value::Array(value.policies).to_string();
    state
        .admin()
        .import_policies(&caller.operator()?, &text, &state.config)
        .await?;
    let mut added: Vec<Policy> = state
        .store
        .list_policies()
        .await?
        .iter()
        .filter(|p| !before.contains(&p.id))
        .map(Policy::from)
        .collect();
    added.sort_by(|a, b| a.id.cmp(&b.id));
    Ok((
        StatusCode::CREATED,
        axum::Json(ImportedPolicies { items: added }),
    ))
}
