//! `GET /admin/api/v1/upstream-health`: each registered server's circuit breaker as the
//! answering replica sees it (the console's overview). Breakers are per replica and in memory
//! (`upstream/breaker.rs`), so another replica may see a server differently.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::ApiError;
use crate::context::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct UpstreamHealth {
    /// Every registered server, by name.
    pub items: Vec<UpstreamCircuit>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UpstreamCircuit {
    pub server: String,
    /// `closed` (requests pass), `open` (refused with `upstream_circuit_open` without
    /// connecting), `half_open` (one probe request decides), or `not_called` (no request
    /// reached it on this replica since it started).
    pub circuit: &'static str,
}

#[utoipa::path(get, path = "/admin/api/v1/upstream-health", tag = "status", operation_id = "getUpstreamHealth",
    responses((status = 200, description = "Each registered server's circuit breaker state on the answering replica", body = UpstreamHealth)))]
pub async fn get(State(state): State<AppState>) -> Result<axum::Json<UpstreamHealth>, ApiError> {
    let circuits = state.breakers.states();
    let items = state
        .store
        .list_servers()
        .await?
        .into_iter()
        .map(|server| {
            let circuit = circuits
                .iter()
                .find(|(name, _)| *name == server.name)
                .map_or("not_called", |(_, state)| *state);
            UpstreamCircuit {
                server: server.name,
                circuit,
            }
        })
        .collect();
    Ok(axum::Json(UpstreamHealth { items }))
}
