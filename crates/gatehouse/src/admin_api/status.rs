//! `GET /admin/api/v1/status`: what the store holds and what each running server (replica)
//! applied: `gatehouse status` through the API, and how a remote change waits until every
//! live replica applied it.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::ApiError;
use crate::{context::AppState, replicas::is_live, store::Store};
use gatehouse_model::records::{Generation, ReloadReport, ReplicaHeartbeat};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Status {
    pub data_dir: String,
    /// The store's generation: bumped by every change.
    pub generation: Generation,
    pub server: RunningServer,
    /// Every heartbeat row: the running replicas and those that stopped reporting.
    pub replicas: Vec<Replica>,
    /// What the server's last reload reported (kept after it stops).
    #[schema(value_type = Option<Object>)]
    pub reload: Option<ReloadReport>,
    pub counts: Counts,
}

/// The replicas taken together.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunningServer {
    /// Some replica has a heartbeat newer than three seconds.
    pub running: bool,
    /// The lowest generation the running replicas have applied (none when none runs).
    pub applied_generation: Option<Generation>,
    /// The most recent heartbeat of any replica.
    pub last_heartbeat_ms: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Replica {
    pub replica_id: String,
    /// A heartbeat newer than three seconds; the CLI waits only for these.
    pub live: bool,
    pub applied_generation: Generation,
    pub last_heartbeat_ms: i64,
    pub started_ms: i64,
    pub version: String,
    pub listen: String,
}

impl Replica {
    pub fn from(row: ReplicaHeartbeat, now: i64) -> Self {
        Self {
            live: is_live(&row, now),
            replica_id: row.replica_id,
            applied_generation: row.applied_generation,
            last_heartbeat_ms: row.heartbeat_ms,
            started_ms: row.started_ms,
            version: row.version,
            listen: row.listen,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Counts {
    pub servers: usize,
    pub clients: usize,
    pub active_api_keys: usize,
    pub connections: usize,
    pub policies: usize,
    pub guardrails: usize,
    pub users: usize,
}

/// The status of the deployment on `store`; `data_dir` as the server is configured.
pub async fn build(
    store: &dyn Store,
    data_dir: String,
) -> Result<Status, crate::store::StoreError> {
    let now = crate::now_ms();
    let replicas: Vec<Replica> = store
        .list_replicas()
        .await?
        .into_iter()
        .map(|row| Replica::from(row, now))
        .collect();
    let live = || replicas.iter().filter(|r| r.live);
    let policies = store.list_policies().await?;
    let guardrails = policies
        .iter()
        .filter(|p| p.kind == crate::guardrails::GUARDRAIL_KIND)
        .count();
    Ok(Status {
        data_dir,
        generation: store.generation().await?,
        server: RunningServer {
            running: live().next().is_some(),
            applied_generation: live().map(|r| r.applied_generation).min(),
            last_heartbeat_ms: replicas.iter().map(|r| r.last_heartbeat_ms).max(),
        },
        reload: store.reload_report().await?,
        counts: Counts {
            servers: store.list_servers().await?.len(),
            clients: store.list_clients().await?.len(),
            active_api_keys: store
                .list_api_keys(None)
                .await?
                .iter()
                .filter(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|at| at > now))
                .count(),
            connections: store.list_connections().await?.len(),
            policies: policies.len() - guardrails,
            guardrails,
            users: store.list_users().await?.len(),
        },
        replicas,
    })
}

#[utoipa::path(get, path = "/admin/api/v1/status", tag = "status", operation_id = "getStatus",
    responses((status = 200, description = "The store's generation, each replica's applied generation and liveness, the last reload's report, and counts", body = Status)))]
pub async fn get(State(state): State<AppState>) -> Result<axum::Json<Status>, ApiError> {
    let data_dir = state.config.data_dir.display().to_string();
    Ok(axum::Json(build(&*state.store, data_dir).await?))
}
