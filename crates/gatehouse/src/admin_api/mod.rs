//! The admin REST API (`/admin/api/v1`), served on the admin listener beside `/metrics`:
//! what operators do with the CLI, over HTTP, for remote tools and the console
//! (docs/admin-api.md, docs/adr/0008-admin-api.md).
//!
//! Every operation goes through [`auth::guard`] (throttle, admin token, the role
//! [`roles::OPERATIONS`] names) before its handler; every change goes through
//! [`AdminService`], so it is validated as the CLI's and recorded as an operator event naming
//! the token and the caller's address. Refusals are problem documents ([`problem`]).

mod audit;
mod audit_verify;
pub mod auth;
mod clients;
mod connections;
mod explain;
mod idempotency;
pub mod input;
mod keys;
mod oauth;
pub mod openapi;
mod policies;
mod probe;
mod probe_outcome;
mod probe_stdio;
mod probe_virtual;
pub mod problem;
pub mod roles;
mod servers;
mod servers_stdio;
mod settings;
pub mod sign_in;
mod state;
pub mod status;
mod tokens;
mod tool_pins;
mod upstream_auth;
mod upstream_grants;
mod upstream_health;
mod users;

use axum::{
    Router,
    extract::Request,
    middleware,
    routing::{delete, get, post, put},
};

use crate::{admin::AdminService, context::AppState};
use problem::ApiError;

/// The shapes the API answers with, for clients written in Rust: `gatehouse` prints these
/// in both of its modes (local database and `--server`), so its JSON is the same either way.
pub mod views {
    pub use super::clients::Client;
    pub use super::connections::Connection;
    pub use super::keys::{ApiKey, CreatedApiKey};
    pub use super::oauth::{ClientSecret, OAuthRegistered, RotatedSecret};
    pub use super::policies::ImportedPolicies;
    pub use super::policies::Policy;
    pub use super::problem::Problem;
    pub use super::servers::Server;
    pub use super::status::{Counts, Replica, RunningServer, Status};
    pub use super::tokens::{AdminToken, CreatedAdminToken, WhoAmI};
    pub use super::tool_pins::{Approved, Rejected, ToolPin};
    pub use super::upstream_grants::{UpstreamGrant, UpstreamGrantList};
    pub use super::users::{GroupConnection, SigningKey, User};
}

/// The longest lifetime or overlap accepted, in seconds (about a hundred years).
const MAX_SECONDS: u64 = 100 * 365 * 24 * 60 * 60;

/// The service a handler changes things through.
trait AdminOf {
    fn admin(&self) -> AdminService;
}

impl AdminOf for AppState {
    fn admin(&self) -> AdminService {
        AdminService::new(self.store.clone(), self.keyring.clone(), self.audit.clone())
            .with_registrar(self.upstream_registrar.clone())
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(value).map_err(|_| ApiError::Internal)
}

/// The admin API's routes, for the admin listener's router.
pub fn routes(state: AppState) -> Router<AppState> {
    let v1 = Router::new()
        .route("/admin/api/v1/whoami", get(tokens::whoami))
        .route("/admin/api/v1/status", get(status::get))
        .route("/admin/api/v1/settings", get(settings::get))
        .route("/admin/api/v1/upstream-health", get(upstream_health::get))
        .route(
            "/admin/api/v1/servers",
            get(servers::list).post(servers::create),
        )
        .route(
            "/admin/api/v1/servers/{name}",
            get(servers::get)
                .patch(servers::update)
                .delete(servers::delete),
        )
        .route(
            "/admin/api/v1/servers/{name}/test-connection",
            post(servers::test_connection),
        )
        .route(
            "/admin/api/v1/servers/{name}/tool-pins/approve",
            post(tool_pins::approve),
        )
        .route(
            "/admin/api/v1/servers/{name}/tool-pins/reject",
            post(tool_pins::reject),
        )
        .route(
            "/admin/api/v1/clients",
            get(clients::list).post(clients::create),
        )
        .route(
            "/admin/api/v1/clients/{name}",
            get(clients::get).delete(clients::delete),
        )
        .route(
            "/admin/api/v1/clients/{name}/disable",
            post(clients::disable),
        )
        .route("/admin/api/v1/clients/{name}/enable", post(clients::enable))
        .route("/admin/api/v1/keys", get(keys::list).post(keys::create))
        .route("/admin/api/v1/keys/{id}", get(keys::get))
        .route("/admin/api/v1/keys/{id}/rotate", post(keys::rotate))
        .route("/admin/api/v1/keys/{id}/revoke", post(keys::revoke))
        .route("/admin/api/v1/connections", get(connections::list))
        .route(
            "/admin/api/v1/connections/{client}/{server}",
            put(connections::grant).delete(connections::revoke),
        )
        .route(
            "/admin/api/v1/policies",
            get(policies::list).post(policies::create),
        )
        .route("/admin/api/v1/policies/import", post(policies::import))
        .route(
            "/admin/api/v1/policies/{id}",
            get(policies::get)
                .put(policies::replace)
                .delete(policies::delete),
        )
        .route("/admin/api/v1/tool-pins", get(tool_pins::list))
        .route(
            "/admin/api/v1/admin-tokens",
            get(tokens::list).post(tokens::create),
        )
        .route(
            "/admin/api/v1/admin-tokens/{id}/revoke",
            post(tokens::revoke),
        )
        .route("/admin/api/v1/users", get(users::list).post(users::create))
        .route(
            "/admin/api/v1/users/{username}",
            get(users::get).patch(users::update),
        )
        .route(
            "/admin/api/v1/users/{username}/password",
            put(users::set_password),
        )
        .route(
            "/admin/api/v1/users/{username}/groups",
            put(users::set_groups),
        )
        .route(
            "/admin/api/v1/users/{username}/disable",
            post(users::disable),
        )
        .route("/admin/api/v1/users/{username}/enable", post(users::enable))
        .route(
            "/admin/api/v1/users/{username}/upstream-grants",
            get(upstream_grants::list),
        )
        .route(
            "/admin/api/v1/users/{username}/upstream-grants/{server}",
            delete(upstream_grants::revoke),
        )
        .route("/admin/api/v1/group-connections", get(users::list_groups))
        .route(
            "/admin/api/v1/group-connections/{group}/{server}",
            put(users::grant_group).delete(users::revoke_group),
        )
        .route("/admin/api/v1/signing-keys", get(users::list_signing_keys))
        .route(
            "/admin/api/v1/signing-keys/rotate",
            post(users::rotate_signing_key),
        )
        .route("/admin/api/v1/policy/explain", post(explain::explain))
        .route("/admin/api/v1/clients/{name}/oauth", post(oauth::register))
        .route(
            "/admin/api/v1/clients/{name}/secrets",
            get(oauth::list_secrets),
        )
        .route(
            "/admin/api/v1/clients/{name}/secrets/rotate",
            post(oauth::rotate_secret),
        )
        .route(
            "/admin/api/v1/client-secrets/{id}/revoke",
            post(oauth::revoke_secret),
        )
        .route("/admin/api/v1/audit/events", get(audit::search))
        .route("/admin/api/v1/audit/export", get(audit::export))
        .route("/admin/api/v1/audit/verify", post(audit_verify::verify))
        .route("/admin/api/v1/state", get(state::export))
        .route("/admin/api/v1/state/apply", post(state::apply))
        // Only matched routes reach the guard (so it sees their template); the rest fall
        // through to `not_found`, a problem document too.
        .route_layer(middleware::from_fn_with_state(state, auth::guard));
    Router::new()
        .route("/admin/api/openapi.json", get(openapi::serve))
        .route("/admin/sign-in", get(sign_in::start))
        .route("/admin/callback", get(sign_in::callback))
        .route("/admin/sign-out", post(sign_in::sign_out))
        .merge(v1)
}

/// The admin listener's fallback: a problem document for anything under `/admin/api/` that
/// is not an operation, a plain 404 elsewhere.
pub async fn not_found(request: Request) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = request.uri().path();
    if path.starts_with("/admin/api/") {
        ApiError::NoSuchOperation.at(path)
    } else {
        axum::http::StatusCode::NOT_FOUND.into_response()
    }
}
