//! The web console at `/console` on the admin listener (docs/console.md, ADR 0014): pages
//! rendered on the server (maud), a little progressive script, every read and change made
//! through the admin API in process ([`api`]), so the API's role table decides what an
//! operator may do here too.
//!
//! Every console response carries strict security headers ([`headers`]); every page but
//! sign-in and the assets needs a session ([`session::require`]), and every change a form's
//! CSRF token, checked before any handler runs.

mod api;
mod assets;
mod audit;
mod chart;
mod client_oauth;
mod clients;
mod connection;
mod connections;
mod directory;
mod layout;
mod overview;
mod policies;
mod policy_form;
mod servers;
mod session;
mod sign_in;
mod users;

use axum::{
    Extension, Router,
    extract::Request,
    http::{HeaderValue, header},
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
};

use crate::context::AppState;

/// What every console response may load, run and be framed by: only this origin's files; no
/// inline script or style (charts are SVG with presentation attributes), no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes, for the admin listener's router.
pub fn routes(state: AppState) -> Router<AppState> {
    let pages = Router::new()
        .route("/console", get(overview::page))
        .route("/console/sign-out", post(sign_in::sign_out))
        .route(
            "/console/servers",
            get(servers::list).post(servers::register),
        )
        .route("/console/servers/{name}", get(servers::detail))
        .route("/console/servers/{name}/test", post(servers::test))
        .route(
            "/console/servers/{name}/pins/{verdict}",
            post(servers::decide_pin),
        )
        .route("/console/clients", get(clients::list).post(clients::create))
        .route("/console/clients/{name}", get(clients::detail))
        .route("/console/clients/{name}/keys", post(clients::issue_key))
        .route(
            "/console/clients/{name}/connections",
            post(clients::connect),
        )
        .route(
            "/console/clients/{name}/oauth",
            post(client_oauth::register),
        )
        .route(
            "/console/clients/{name}/secrets/rotate",
            post(client_oauth::rotate),
        )
        .route(
            "/console/client-secrets/{id}/revoke",
            post(client_oauth::revoke),
        )
        .route("/console/keys/{id}/rotate", post(clients::rotate_key))
        .route("/console/keys/{id}/revoke", post(clients::revoke_key))
        .route("/console/connections", get(connections::page))
        .route("/console/connections/explain", post(connections::explain))
        .route(
            "/console/connections/{client}/{server}",
            get(connection::page).post(connection::save),
        )
        .route(
            "/console/connections/{client}/{server}/revoke",
            post(connection::revoke),
        )
        .route(
            "/console/connections/{client}/{server}/policies",
            post(connection::add_policy),
        )
        .route("/console/policies", get(policies::page).post(policies::add))
        .route(
            "/console/policies/{id}",
            get(policies::edit_page).post(policies::save),
        )
        .route("/console/policies/{id}/delete", post(policies::delete))
        .route("/console/users", get(directory::users).post(users::create))
        .route(
            "/console/users/{username}",
            get(users::detail).post(users::save),
        )
        .route(
            "/console/users/{username}/{action}",
            post(users::set_enabled),
        )
        .route("/console/groups", post(users::grant_group))
        .route(
            "/console/groups/{group}/{server}/revoke",
            post(users::revoke_group),
        )
        .route("/console/signing-keys", get(directory::signing_keys))
        .route(
            "/console/signing-keys/rotate",
            post(directory::rotate_signing_key),
        )
        .route("/console/settings", get(directory::settings))
        .route("/console/audit", get(audit::page))
        .route("/console/audit/rows", get(audit::rows))
        .route("/console/audit/verify", post(audit::verify))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            session::require,
        ));
    Router::new()
        .route(
            "/console/sign-in",
            get(sign_in::form).post(sign_in::with_token),
        )
        .route("/console/assets/{file}", get(assets::serve))
        .route("/console/{*rest}", axum::routing::any(not_found))
        .merge(pages)
        .layer(Extension(api::Api::new(state)))
        .layer(middleware::from_fn(headers))
}

async fn not_found() -> Response {
    layout::message(
        axum::http::StatusCode::NOT_FOUND,
        "Not found",
        "there is no such page in the console",
    )
}

/// The headers every console response carries, whatever produced it.
async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
