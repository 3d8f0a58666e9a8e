//! Verifying the audit trail's chains from the API, as `gatehouse audit verify` does on the
//! host: every chain walked and checked against its checkpoint and the chain registry.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::ApiError;
use crate::{audit::verify, context::AppState};

/// What verification found.
#[derive(Debug, Serialize, ToSchema)]
pub struct Verified {
    /// No problem found in any chain or in the registry.
    pub intact: bool,
    pub rows_checked: u64,
    /// Chains walked.
    pub chains: usize,
    /// Each problem, named with its chain (as `gatehouse audit verify` prints them).
    pub problems: Vec<String>,
}

#[utoipa::path(post, path = "/admin/api/v1/audit/verify", tag = "audit", operation_id = "verifyAudit",
    responses((status = 200, description = "What verification found; a broken chain is an answer, not an error", body = Verified)))]
pub async fn verify(State(state): State<AppState>) -> Result<axum::Json<Verified>, ApiError> {
    let report = verify::verify(&*state.store, &state.keyring).await?;
    Ok(axum::Json(Verified {
        intact: report.is_intact(),
        rows_checked: report.rows_checked,
        chains: report.chains.len(),
        problems: report.problems.iter().map(ToString::to_string).collect(),
    }))
}
