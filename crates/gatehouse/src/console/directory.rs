//! Users and their groups (with what each group reaches), and the signing keys of the
//! authorization server (rotate: admin).

use axum::{
    Extension,
    http::{Method, StatusCode},
    response::Response,
};
use maud::html;
use serde_json::{Value, json};

use super::{
    api::{Answer, Api, list, text},
    layout::{self, csrf, segment},
    session::{Fields, Viewer},
};
use gatehouse_model::records::AdminRole;

fn millis(value: &Value, key: &str) -> Option<i64> {
    value.get(key).and_then(Value::as_i64)
}

async fn get(api: &Api, viewer: &Viewer, path: &str) -> Answer {
    api.call(&viewer.token, viewer.peer, Method::GET, path, None)
        .await
}

/// `GET /console/users`.
pub async fn users(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
) -> Response {
    users_page(&api, &viewer, &Fields::default(), None, None).await
}

/// The users page, with what a form refused (which form, and why) or what a change did.
pub async fn users_page(
    api: &Api,
    viewer: &Viewer,
    entered: &Fields,
    refused: Option<(&str, &super::users::Refused)>,
    done: Option<&str>,
) -> Response {
    let users = get(api, viewer, "/admin/api/v1/users?limit=500").await;
    let groups = get(api, viewer, "/admin/api/v1/group-connections?limit=500").await;
    let servers = get(api, viewer, "/admin/api/v1/servers?limit=500").await;
    let operator = viewer.may(AdminRole::Operator);
    let main = html! {
        @if let Some(done) = done { (layout::notice(done)) }
        @if !users.ok() { (layout::alert(&users.problem())) }
        @if users.items().is_empty() && users.ok() { p { "No user yet." } }
        @else {
            div.table-wrap { table {
                caption.muted { "People who sign in to Gatehouse's authorization server" }
                thead { tr { th scope="col" { "Username" } th scope="col" { "Name" } th scope="col" { "Signs in" }
                    th scope="col" { "Groups" } th scope="col" { "Last sign-in" } th scope="col" { "State" } } }
                tbody { @for user in users.items() { tr {
                    td { a href={ "/console/users/" (segment(text(user, "username"))) } { (text(user, "username")) } }
                    td { (text(user, "display_name")) }
                    td { @if user.get("local").and_then(Value::as_bool) == Some(true) { "with a password" }
                         @else { "through " (text(user, "idp")) } }
                    td { (list(user, "groups")) }
                    td { @if let Some(at) = millis(user, "last_login_at") { (layout::time(at)) } @else { "never" } }
                    td { @if millis(user, "disabled_at").is_some() { "disabled" } @else { "enabled" } }
                } } }
            } }
        }
        h2 { "What groups reach" }
        @if groups.items().is_empty() { p.muted { "No group connection." } }
        @else {
            div.table-wrap { table {
                thead { tr { th scope="col" { "Group" } th scope="col" { "Server" } th scope="col" { "Tools" }
                    @if operator { th scope="col" { "Actions" } } } }
                tbody { @for g in groups.items() { tr {
                    td { (text(g, "group")) } td { (text(g, "server")) } td { code { (list(g, "tools")) } }
                    @if operator { td {
                        form.inline method="post" action={ "/console/groups/" (segment(text(g, "group"))) "/" (segment(text(g, "server"))) "/revoke" } {
                            (csrf(viewer))
                            button.danger type="submit" { "Revoke group " (text(g, "group")) " on " (text(g, "server")) }
                        }
                    } }
                } } }
            } }
        }
        (super::users::forms(viewer, &servers, entered, refused))
    };
    let status = refused.map_or(StatusCode::OK, |(_, r)| r.status);
    layout::page_with_status(status, viewer, "/console/users", "Users and groups", main)
}

/// `GET /console/signing-keys`.
pub async fn signing_keys(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
) -> Response {
    signing_keys_page(&api, &viewer, None).await
}

/// `POST /console/signing-keys/rotate`.
pub async fn rotate_signing_key(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(fields): Extension<Fields>,
) -> Response {
    let body = json!({ "alg": fields.get("alg").unwrap_or("EdDSA") });
    let answer = api
        .call(
            &viewer.token,
            viewer.peer,
            Method::POST,
            "/admin/api/v1/signing-keys/rotate",
            Some(&body),
        )
        .await;
    signing_keys_page(&api, &viewer, Some(answer)).await
}

async fn signing_keys_page(api: &Api, viewer: &Viewer, rotated: Option<Answer>) -> Response {
    let keys = get(api, viewer, "/admin/api/v1/signing-keys?limit=500").await;
    let status = rotated
        .as_ref()
        .filter(|a| !a.ok())
        .map_or(StatusCode::OK, |a| a.status);
    let main = html! {
        @if let Some(answer) = &rotated {
            @if answer.ok() {
                (layout::notice(&format!("Rotated: key {} is published now and signs once its lead has passed.", text(&answer.body, "kid"))))
            } @else { (layout::alert(&answer.problem())) }
        }
        @if !keys.ok() { (layout::alert(&keys.problem())) }
        div.table-wrap { table {
            caption.muted { "Keys the authorization server signs tokens with; their public parts are at /oauth/jwks.json" }
            thead { tr { th scope="col" { "Key id" } th scope="col" { "Algorithm" } th scope="col" { "Created" }
                th scope="col" { "Signs from" } th scope="col" { "Retired" } } }
            tbody { @for key in keys.items() { tr {
                td { code { (text(key, "kid")) } }
                td { (text(key, "alg")) }
                td { (layout::time(millis(key, "created_at").unwrap_or(0))) }
                td { (layout::time(millis(key, "active_at").unwrap_or(0))) }
                td { @if let Some(at) = millis(key, "retired_at") { (layout::time(at)) } @else { "—" } }
            } } }
        } }
        @if viewer.may(AdminRole::Admin) {
            form.card method="post" action="/console/signing-keys/rotate" aria-label="Rotate the signing key" {
                (csrf(viewer))
                label for="alg" { "Algorithm" }
                select #alg name="alg" {
                    option value="EdDSA" { "EdDSA" }
                    option value="ES256" { "ES256" }
                    option value="RS256" { "RS256" }
                }
                button type="submit" { "Rotate the signing key" }
            }
        }
    };
    layout::page_with_status(
        status,
        viewer,
        "/console/signing-keys",
        "Signing keys",
        main,
    )
}

/// `GET /console/settings`: the answering process's effective configuration, read-only, with
/// secrets masked by the API.
pub async fn settings(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
) -> Response {
    let answer = get(&api, &viewer, "/admin/api/v1/settings").await;
    let mut rows = Vec::new();
    flatten(
        "",
        answer.body.get("config").unwrap_or(&Value::Null),
        &mut rows,
    );
    let status = if answer.ok() {
        StatusCode::OK
    } else {
        answer.status
    };
    let main = html! {
        @if !answer.ok() { (layout::alert(&answer.problem())) }
        p.muted { "As this process runs with it (gatehouse.toml and GATEHOUSE_* variables). Change it there; secrets are shown as (masked)." }
        div.table-wrap { table {
            caption.muted { "Effective configuration" }
            thead { tr { th scope="col" { "Key" } th scope="col" { "Value" } } }
            tbody { @for (key, value) in &rows { tr { td { code { (key) } } td { code { (value) } } } } }
        } }
    };
    layout::page_with_status(status, &viewer, "/console/settings", "Settings", main)
}

/// `value` as dotted keys and their values, in document order.
fn flatten(prefix: &str, value: &Value, rows: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, value) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&name, value, rows);
            }
        }
        Value::Array(items) if items.iter().any(|i| i.is_object()) => {
            for (i, value) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), value, rows);
            }
        }
        Value::Null => rows.push((prefix.to_owned(), "(unset)".to_owned())),
        Value::String(text) => rows.push((prefix.to_owned(), text.clone())),
        other => rows.push((prefix.to_owned(), other.to_string())),
    }
}
