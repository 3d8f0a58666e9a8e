//! The OpenAPI 3.1 description, generated from the handlers and their types and served at
//! `/admin/api/openapi.json`. The committed copy (`docs/admin-api.openapi.json`) is checked
//! against it by `tests/it/admin_api_openapi.rs`.
//!
//! What every operation shares is added here, from the same tables the guard reads, so the
//! document cannot disagree with what is enforced: the bearer security requirement, the
//! role (`x-gatehouse-role`) and the refusals any operation can answer.

use axum::{http::header, response::IntoResponse};
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::{
    audit, audit_verify, clients, connections, explain, keys, oauth, policies, problem, roles,
    servers, settings, state, status, tokens, tool_pins, upstream_grants, upstream_health, users,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse admin API",
        description = "Operators' API of Gatehouse: servers, clients, keys, connections, policies, tool pins and admin tokens. See docs/admin-api.md.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        tokens::whoami,
        status::get,
        settings::get,
        upstream_health::get,
        servers::list,
        servers::create,
        servers::get,
        servers::update,
        servers::delete,
        servers::test_connection,
        clients::list,
        clients::create,
        clients::get,
        clients::disable,
        clients::enable,
        clients::delete,
        keys::list,
        keys::create,
        keys::get,
        keys::rotate,
        keys::revoke,
        connections::list,
        connections::grant,
        connections::revoke,
        policies::list,
        policies::create,
        policies::get,
        policies::replace,
        policies::delete,
        policies::import,
        tool_pins::list,
        tool_pins::approve,
        tool_pins::reject,
        tokens::list,
        tokens::create,
        tokens::revoke,
        users::list,
        users::create,
        users::get,
        users::update,
        users::set_password,
        users::set_groups,
        users::disable,
        users::enable,
        upstream_grants::list,
        upstream_grants::revoke,
        users::list_groups,
        users::grant_group,
        users::revoke_group,
        users::list_signing_keys,
        users::rotate_signing_key,
        explain::explain,
        oauth::register,
        oauth::list_secrets,
        oauth::rotate_secret,
        oauth::revoke_secret,
        audit::search,
        audit::export,
        audit_verify::verify,
        state::export,
        state::apply,
    ),
    components(schemas(problem::Problem))
)]
struct ApiDoc;

/// The document, as served and committed.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    // The crate's version would make every release a drift; the API has its own.
    doc["info"]["version"] = json!("1");
    doc["components"]["securitySchemes"] = json!({
        "admin_token": {
            "type": "http",
            "scheme": "bearer",
            "description": "An admin token (`gatehouse admin-tokens create`)."
        }
    });
    let problem = |description: &str| {
        json!({
            "description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        })
    };
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for (path, item) in paths.iter_mut() {
            let Value::Object(methods) = item else {
                continue;
            };
            for (method, operation) in methods.iter_mut() {
                let role = axum::http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                    .ok()
                    .and_then(|m| roles::required(&m, path));
                operation["security"] = json!([{"admin_token": []}]);
                operation["x-gatehouse-role"] =
                    role.map_or(Value::Null, |r| Value::String(r.as_str().to_owned()));
                let responses = &mut operation["responses"];
                responses["401"] = problem("No admin token, or one not recognised or expired");
                responses["403"] = problem("The token's role is too low for this operation");
                responses["429"] = problem("Too many failed authentications from this address");
                responses["500"] = problem("Internal error, or a change applied but not recorded");
                responses["503"] = problem("The store is unavailable");
            }
        }
    }
    doc
}

/// The document as bytes: pretty-printed with a final newline, as committed.
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

pub async fn serve() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_text(),
    )
}
