//! Declarative configuration over HTTP: the whole state as one document (YAML or JSON by
//! `Accept`), and applying one (docs/gitops.md). Secret references in an applied document
//! are resolved only from the values sent with it: the server reads none of its own
//! environment variables or files for a caller.

use axum::{
    Extension,
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

use super::{
    AdminOf,
    auth::Caller,
    input::{JsonBody, Params},
    problem::{ApiError, Problem},
};
use crate::{
    admin::declarative::{
        self, ApplyError, Options, SuppliedResolver, apply::Incomplete, plan::Change,
    },
    context::AppState,
};
use gatehouse_model::records::AdminRole;

pub const YAML: &str = "application/yaml";

#[utoipa::path(get, path = "/admin/api/v1/state", tag = "state", operation_id = "exportState",
    responses((status = 200, description = "The deployment as a state document (docs/gitops.md): JSON, or YAML when `Accept` names application/yaml. Secrets are references, never values; admin tokens (names and roles) are listed for the admin role only",
            content((declarative::State = "application/json"), (String = "application/yaml")))))]
pub async fn export(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut document = declarative::export(&*state.store, crate::now_ms()).await?;
    // Listing admin tokens is the admin role's (roles.rs); below it the section is left
    // out, which a later apply reads as "not managed by this file".
    if caller.role < AdminRole::Admin {
        document.admin_tokens = None;
    }
    if wants_yaml(&headers) {
        let text = declarative::to_yaml(&document).map_err(|err| {
            tracing::error!(error = %err, "admin API: state not renderable as YAML");
            ApiError::Internal
        })?;
        return Ok((
            [(header::CONTENT_TYPE, HeaderValue::from_static(YAML))],
            text,
        )
            .into_response());
    }
    Ok(axum::Json(document).into_response())
}

fn wants_yaml(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .any(|v| v.eq_ignore_ascii_case(YAML) || v.eq_ignore_ascii_case("text/yaml"))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ApplyQuery {
    /// Plan only: nothing is changed.
    pub dry_run: Option<bool>,
    /// Delete what the document's sections no longer name (clients and users are disabled).
    pub prune: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyState {
    /// The state document (`apiVersion: gatehouse/v1`, `kind: State`).
    pub state: declarative::State,
    /// The values of the document's secret references, by reference (`"env:GH_TOKEN":
    /// "…"`), read by the caller where it runs. Never stored as sent: credentials are
    /// sealed and client secrets hashed, as any other change does.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Applied {
    /// True when nothing was changed on purpose (`dry_run`).
    pub dry_run: bool,
    /// The changes planned, in the order they are made, with each field's before and after.
    pub changes: Vec<Change>,
    /// What the document names that apply cannot make (an admin token).
    pub notices: Vec<String>,
    /// How many changes were made.
    pub applied: usize,
    /// The store's generation after the last change (absent when none was made).
    pub generation: Option<i64>,
}

#[utoipa::path(post, path = "/admin/api/v1/state/apply", tag = "state", operation_id = "applyState",
    params(ApplyQuery),
    request_body = ApplyState,
    responses((status = 200, description = "The plan, and how much of it was applied (none for a dry run or when nothing differs)", body = Applied),
        (status = 400, description = "Malformed body or query", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The document is invalid (each problem names its entity and field), or a secret reference has no value; nothing was changed", body = Problem, content_type = "application/problem+json")))]
pub async fn apply(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Params(query): Params<ApplyQuery>,
    body: JsonBody<ApplyState>,
) -> Result<axum::Json<Applied>, ApiError> {
    let ApplyState {
        state: document,
        secrets,
    } = body.value;
    if document.api_version != declarative::document::API_VERSION
        || document.kind != declarative::document::KIND
    {
        return Err(ApiError::Malformed(format!(
            "state: apiVersion must be {:?} and kind {:?}",
            declarative::document::API_VERSION,
            declarative::document::KIND
        )));
    }
    let options = Options {
        dry_run: query.dry_run.unwrap_or(false),
        prune: query.prune.unwrap_or(false),
        programs: caller.role >= AdminRole::Admin,
    };
    let resolver = SuppliedResolver::new(secrets);
    let outcome = declarative::apply(
        &state.admin(),
        &caller.operator()?,
        &state.config,
        document,
        &resolver,
        options,
    )
    .await
    .map_err(|err| match err {
        ApplyError::Invalid(_) => ApiError::Invalid(err.to_string()),
        ApplyError::Unresolved(_) => ApiError::UnresolvedReference(err.to_string()),
        ApplyError::NeedsAdmin(_) => ApiError::Forbidden {
            needed: AdminRole::Admin,
        },
        ApplyError::Before(admin) => admin.into(),
        ApplyError::Incomplete(incomplete) => incomplete_error(*incomplete),
    })?;
    Ok(axum::Json(Applied {
        dry_run: options.dry_run,
        changes: outcome.plan.changes,
        notices: outcome.plan.notices,
        applied: outcome.applied,
        generation: outcome.generation,
    }))
}

/// A change failed midway: the store being unreachable stays a 503 (retrying the same
/// document makes the rest); anything else says how far the apply got.
fn incomplete_error(incomplete: Incomplete) -> ApiError {
    let detail = incomplete.to_string();
    match ApiError::from(incomplete.source) {
        ApiError::Unavailable => ApiError::Unavailable,
        ApiError::Unrecorded(_) => ApiError::Unrecorded(detail),
        _ => ApiError::ApplyIncomplete(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{admin::AdminError, store::StoreError};

    fn incomplete(source: AdminError) -> Incomplete {
        Incomplete {
            applied: 2,
            total: 5,
            kind: "policy",
            name: "slow".into(),
            source,
            generation: Some(9),
        }
    }

    #[test]
    fn a_failure_midway_says_how_far_it_got_unless_the_store_went_away() {
        let conflict = StoreError::Conflict {
            kind: "policy",
            name: "slow".into(),
        };
        let err = incomplete_error(incomplete(AdminError::Store(conflict)));
        let ApiError::ApplyIncomplete(detail) = &err else {
            panic!("expected apply_incomplete, got {err:?}");
        };
        assert!(
            detail.starts_with("2 of 5 change(s) were applied; then policy \"slow\" failed"),
            "{detail}"
        );
        assert_eq!(err.parts().1, "apply_incomplete");
        let gone = incomplete(AdminError::Store(StoreError::Unreachable {
            url: "postgres://db".into(),
            reason: "lost".into(),
        }));
        assert_eq!(incomplete_error(gone), ApiError::Unavailable);
    }
}
