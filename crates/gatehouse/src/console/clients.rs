//! Clients: the list, creating one, and per client its API keys (issued and rotated keys
//! shown once, with a copy button; rotation with an overlap; revocation) and the servers it
//! can reach.

use axum::{
    Extension,
    extract::Path,
    http::{Method, StatusCode},
    response::Response,
};
use maud::{Markup, html};
use serde_json::{Value, json};

use super::{
    api::{Answer, Api, text},
    layout::{self, csrf, segment},
    session::{Fields, Viewer},
};
use gatehouse_model::records::AdminRole;

const ACTIVE: &str = "/console/clients";

fn millis(value: &Value, key: &str) -> Option<i64> {
    value.get(key).and_then(Value::as_i64)
}

async fn call(
    api: &Api,
    viewer: &Viewer,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    api.call(&viewer.token, viewer.peer, method, path, body)
        .await
}

/// `GET /console/clients`.
pub async fn list(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
) -> Response {
    list_page(&api, &viewer, None).await
}

async fn list_page(api: &Api, viewer: &Viewer, refused: Option<(&Answer, &Fields)>) -> Response {
    let clients = call(
        api,
        viewer,
        Method::GET,
        "/admin/api/v1/clients?limit=500",
        None,
    )
    .await;
    let entered = refused.map(|(_, f)| f);
    let main = html! {
        @if let Some((answer, _)) = refused { (layout::alert(&answer.problem())) }
        @if !clients.ok() { (layout::alert(&clients.problem())) }
        @if clients.items().is_empty() && clients.ok() {
            p { "No client yet." }
        } @else {
            div.table-wrap { table {
                caption.muted { "Applications that call MCP servers through Gatehouse" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Description" }
                    th scope="col" { "State" } th scope="col" { "Created" } } }
                tbody { @for client in clients.items() {
                    @let name = text(client, "name");
                    tr {
                        td { a href={ "/console/clients/" (segment(name)) } { (name) } }
                        td { (text(client, "description")) }
                        td { @if millis(client, "disabled_at").is_some() { "disabled" } @else { "enabled" } }
                        td { (layout::time(millis(client, "created_at").unwrap_or(0))) }
                    }
                } }
            } }
        }
        @if viewer.may(AdminRole::Operator) {
            h2 #create { "Create a client" }
            form.card method="post" action="/console/clients" aria-labelledby="create" {
                (csrf(viewer))
                label for="name" { "Name" }
                input #name type="text" name="name" required pattern="[a-z0-9][a-z0-9_-]{0,63}"
                    value=(entered.and_then(|f| f.get("name")).unwrap_or_default());
                label for="description" { "Description (optional)" }
                input #description type="text" name="description"
                    value=(entered.and_then(|f| f.get("description")).unwrap_or_default());
                button type="submit" { "Create client" }
            }
        }
    };
    let status = refused.map_or(StatusCode::OK, |(a, _)| a.status);
    layout::page_with_status(status, viewer, ACTIVE, "Clients", main)
}

/// `POST /console/clients`.
pub async fn create(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(fields): Extension<Fields>,
) -> Response {
    let body = json!({
        "name": fields.get("name").unwrap_or_default(),
        "description": fields.get("description").unwrap_or_default(),
    });
    let created = call(
        &api,
        &viewer,
        Method::POST,
        "/admin/api/v1/clients",
        Some(&body),
    )
    .await;
    if !created.ok() {
        return list_page(&api, &viewer, Some((&created, &fields))).await;
    }
    layout::see_other(&format!(
        "/console/clients/{}",
        segment(text(&created.body, "name"))
    ))
}

/// `GET /console/clients/{name}`.
pub async fn detail(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Path(name): Path<String>,
) -> Response {
    detail_page(&api, &viewer, &name, Shown::Nothing).await
}

/// What a detail page shows above its content after a change.
pub(super) enum Shown<'a> {
    Nothing,
    Notice(&'a str),
    Refused(&'a Answer),
    /// A key just issued or rotated in: its secret, this once.
    Secret(&'a Answer),
    /// An OAuth client secret just made: shown this once.
    OAuthSecret(&'a Answer),
    /// The OAuth registration form refused: what was typed, and why.
    OAuthRefused(&'a Fields, &'a super::users::Refused),
}

pub(super) async fn detail_page(
    api: &Api,
    viewer: &Viewer,
    name: &str,
    shown: Shown<'_>,
) -> Response {
    let path = segment(name);
    let client = call(
        api,
        viewer,
        Method::GET,
        &format!("/admin/api/v1/clients/{path}"),
        None,
    )
    .await;
    if !client.ok() {
        return layout::page_with_status(
            client.status,
            viewer,
            ACTIVE,
            "Client",
            layout::alert(&client.problem()),
        );
    }
    let keys = call(
        api,
        viewer,
        Method::GET,
        &format!("/admin/api/v1/keys?client={path}&limit=500"),
        None,
    )
    .await;
    let connections = call(
        api,
        viewer,
        Method::GET,
        &format!("/admin/api/v1/connections?client={path}&limit=500"),
        None,
    )
    .await;
    let servers = call(
        api,
        viewer,
        Method::GET,
        "/admin/api/v1/servers?limit=500",
        None,
    )
    .await;
    let secrets = call(
        api,
        viewer,
        Method::GET,
        &format!("/admin/api/v1/clients/{path}/secrets"),
        None,
    )
    .await;
    let status = match shown {
        Shown::Refused(answer) => answer.status,
        Shown::OAuthRefused(_, refused) => refused.status,
        _ => StatusCode::OK,
    };
    let action = format!("/console/clients/{path}");
    let main = html! {
        @match shown {
            Shown::Nothing => {},
            Shown::Notice(text) => (layout::notice(text)),
            Shown::Refused(answer) => (layout::alert(&answer.problem())),
            Shown::Secret(answer) => (secret(answer)),
            Shown::OAuthSecret(answer) => (super::client_oauth::secret(answer)),
            Shown::OAuthRefused(..) => {},
        }
        @if !text(&client.body, "description").is_empty() { p { (text(&client.body, "description")) } }
        h2 { "What it can reach" }
        @if connections.items().is_empty() {
            p.muted { "No server yet: grant one below." }
        } @else {
            div.table-wrap { table {
                thead { tr { th scope="col" { "Server" } th scope="col" { "Tools" } th scope="col" { "Resources" } th scope="col" { "Prompts" } th scope="col" { "Connection" } } }
                tbody { @for c in connections.items() { tr {
                    td { a href={ "/console/servers/" (segment(text(c, "server"))) } { (text(c, "server")) } }
                    td { code { (patterns(c)) } }
                    td { (yes_no(c, "resources")) }
                    td { (yes_no(c, "prompts")) }
                    td { a href={ "/console/connections/" (segment(name)) "/" (segment(text(c, "server"))) } {
                        "Tools, policies and guardrails on " (text(c, "server")) } }
                } } }
            } }
        }
        @if viewer.may(AdminRole::Operator) { (grant_form(viewer, &action, &servers)) }
        h2 { "API keys" }
        (keys_table(viewer, &keys))
        @if viewer.may(AdminRole::Admin) { (issue_form(viewer, &action)) }
        (super::client_oauth::section(viewer, &client.body, name, &secrets, match &shown {
            Shown::OAuthRefused(fields, refused) => Some((*fields, *refused)),
            _ => None,
        }))
    };
    layout::page_with_status(status, viewer, ACTIVE, &format!("Client {name}"), main)
}

fn patterns(connection: &Value) -> String {
    connection
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn yes_no(value: &Value, key: &str) -> &'static str {
    if value.get(key).and_then(Value::as_bool) == Some(true) {
        "yes"
    } else {
        "no"
    }
}

fn secret(answer: &Answer) -> Markup {
    html! {
        section.card aria-labelledby="secret-title" {
            h2 #secret-title { "New API key " code { (text(&answer.body, "id")) } }
            p { strong { "Copy it now: it is not stored and will not be shown again." } }
            p.secret #secret { (text(&answer.body, "token")) }
            button.secondary type="button" data-copy="secret" hidden { "Copy key" }
        }
    }
}

fn grant_form(viewer: &Viewer, action: &str, servers: &Answer) -> Markup {
    html! {
        form.card method="post" action={ (action) "/connections" } aria-label="Grant a server" {
            (csrf(viewer))
            label for="server" { "Server" }
            select #server name="server" required {
                @for s in servers.items() { option value=(text(s, "name")) { (text(s, "name")) } }
            }
            label for="tools" { "Tools (comma-separated patterns)" }
            input #tools type="text" name="tools" value="*" required aria-describedby="tools-help";
            p #tools-help .muted { code { "*" } " grants every tool; " code { "search_*" } " the ones whose names start so." }
            label.check { input type="checkbox" name="resources" value="on"; " Resources" }
            label.check { input type="checkbox" name="prompts" value="on"; " Prompts" }
            button type="submit" { "Grant" }
        }
    }
}

fn keys_table(viewer: &Viewer, keys: &Answer) -> Markup {
    html! {
        @if !keys.ok() { (layout::alert(&keys.problem())) }
        @if keys.items().is_empty() && keys.ok() { p.muted { "No key yet." } }
        @else {
            div.table-wrap { table {
                thead { tr { th scope="col" { "Id" } th scope="col" { "Label" } th scope="col" { "Created" }
                    th scope="col" { "Expires" } th scope="col" { "Last used" } th scope="col" { "State" } th scope="col" { "Actions" } } }
                tbody { @for key in keys.items() {
                    @let id = text(key, "id");
                    @let revoked = millis(key, "revoked_at").is_some();
                    tr {
                        td { code { (id) } }
                        td { (text(key, "label")) }
                        td { (layout::time(millis(key, "created_at").unwrap_or(0))) }
                        td { @if let Some(at) = millis(key, "expires_at") { (layout::time(at)) } @else { "never" } }
                        td { @if let Some(at) = millis(key, "last_used_at") { (layout::time(at)) } @else { "never" } }
                        td { @if revoked { span.badge.deny { "revoked" } } @else { span.badge.allow { "active" } } }
                        td { @if !revoked {
                            @if viewer.may(AdminRole::Admin) {
                                form.inline method="post" action={ "/console/keys/" (segment(id)) "/rotate" } {
                                    (csrf(viewer))
                                    label.check for={ "overlap-" (id) } { "Old key works for (seconds)" }
                                    input id={ "overlap-" (id) } type="number" name="overlap_seconds" min="0" value="3600";
                                    button.secondary type="submit" { "Rotate " (id) }
                                }
                            }
                            @if viewer.may(AdminRole::Operator) {
                                form.inline method="post" action={ "/console/keys/" (segment(id)) "/revoke" } {
                                    (csrf(viewer))
                                    button.danger type="submit" { "Revoke " (id) }
                                }
                            }
                        } }
                    }
                } }
            } }
        }
    }
}

fn issue_form(viewer: &Viewer, action: &str) -> Markup {
    html! {
        form.card method="post" action={ (action) "/keys" } aria-label="Issue an API key" {
            (csrf(viewer))
            label for="label" { "Label (optional)" }
            input #label type="text" name="label";
            label for="key-tools" { "Narrow to tools (optional, comma-separated patterns)" }
            input #key-tools type="text" name="tools";
            label for="expires" { "Expires in (seconds, optional)" }
            input #expires type="number" name="expires_in_seconds" min="1";
            button type="submit" { "Issue API key" }
        }
    }
}

/// `POST /console/clients/{name}/keys`: the new key's secret is on the answer page only.
pub async fn issue_key(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(fields): Extension<Fields>,
    Path(name): Path<String>,
) -> Response {
    let mut body = json!({ "client": name, "label": fields.get("label").unwrap_or_default() });
    if let Some(tools) = fields.get("tools") {
        body["tools"] = json!(tools);
    }
    if let Some(expires) = fields.get("expires_in_seconds") {
        match expires.parse::<u64>() {
            Ok(seconds) => body["expires_in_seconds"] = json!(seconds),
            Err(_) => {
                let refused = Answer {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    body: json!({"detail": "expires_in_seconds: give a whole number of seconds"}),
                };
                return detail_page(&api, &viewer, &name, Shown::Refused(&refused)).await;
            }
        }
    }
    let created = call(
        &api,
        &viewer,
        Method::POST,
        "/admin/api/v1/keys",
        Some(&body),
    )
    .await;
    let shown = if created.ok() {
        Shown::Secret(&created)
    } else {
        Shown::Refused(&created)
    };
    detail_page(&api, &viewer, &name, shown).await
}

/// `POST /console/clients/{name}/connections`.
pub async fn connect(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(fields): Extension<Fields>,
    Path(name): Path<String>,
) -> Response {
    let server = fields.get("server").unwrap_or_default();
    let body = json!({
        "tools": fields.get("tools").unwrap_or_default(),
        "resources": fields.checked("resources"),
        "prompts": fields.checked("prompts"),
    });
    let path = format!(
        "/admin/api/v1/connections/{}/{}",
        segment(&name),
        segment(server)
    );
    let granted = call(&api, &viewer, Method::PUT, &path, Some(&body)).await;
    if !granted.ok() {
        return detail_page(&api, &viewer, &name, Shown::Refused(&granted)).await;
    }
    detail_page(&api, &viewer, &name, Shown::Notice("Granted.")).await
}

/// The client a key belongs to, for the page a key action returns to.
async fn client_of(api: &Api, viewer: &Viewer, id: &str) -> Result<String, Answer> {
    let key = call(
        api,
        viewer,
        Method::GET,
        &format!("/admin/api/v1/keys/{}", segment(id)),
        None,
    )
    .await;
    if key.ok() {
        Ok(text(&key.body, "client").to_owned())
    } else {
        Err(key)
    }
}

/// `POST /console/keys/{id}/rotate` with `overlap_seconds`: the new key shown once.
pub async fn rotate_key(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(fields): Extension<Fields>,
    Path(id): Path<String>,
) -> Response {
    let client = match client_of(&api, &viewer, &id).await {
        Ok(client) => client,
        Err(refused) => {
            return layout::page_with_status(
                refused.status,
                &viewer,
                ACTIVE,
                "API key",
                layout::alert(&refused.problem()),
            );
        }
    };
    let Ok(overlap) = fields.get("overlap_seconds").unwrap_or("0").parse::<u64>() else {
        let refused = Answer {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({"detail": "overlap_seconds: give a whole number of seconds"}),
        };
        return detail_page(&api, &viewer, &client, Shown::Refused(&refused)).await;
    };
    let body = json!({ "overlap_seconds": overlap });
    let path = format!("/admin/api/v1/keys/{}/rotate", segment(&id));
    let rotated = call(&api, &viewer, Method::POST, &path, Some(&body)).await;
    let shown = if rotated.ok() {
        Shown::Secret(&rotated)
    } else {
        Shown::Refused(&rotated)
    };
    detail_page(&api, &viewer, &client, shown).await
}

/// `POST /console/keys/{id}/revoke`.
pub async fn revoke_key(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Path(id): Path<String>,
) -> Response {
    let client = match client_of(&api, &viewer, &id).await {
        Ok(client) => client,
        Err(refused) => {
            return layout::page_with_status(
                refused.status,
                &viewer,
                ACTIVE,
                "API key",
                layout::alert(&refused.problem()),
            );
        }
    };
    let path = format!("/admin/api/v1/keys/{}/revoke", segment(&id));
    let revoked = call(&api, &viewer, Method::POST, &path, Some(&json!({}))).await;
    let shown = if revoked.ok() {
        Shown::Notice("Revoked: the key stops working on every replica.")
    } else {
        Shown::Refused(&revoked)
    };
    detail_page(&api, &viewer, &client, shown).await
}
