//! Connections: who reaches what, as a matrix of clients and groups × servers, and `explain`
//! for a hypothetical call (who, tool, arguments, address, time): the decision and every
//! step, with the rule that decided.

use axum::{
    Extension,
    http::{Method, StatusCode},
    response::Response,
};
use maud::{Markup, html};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

use super::{
    api::{Answer, Api, text},
    layout::{self, csrf, segment},
    session::{Fields, Viewer},
};

const ACTIVE: &str = "/console/connections";

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

async fn get(api: &Api, viewer: &Viewer, path: &str) -> Answer {
    api.call(&viewer.token, viewer.peer, Method::GET, path, None)
        .await
}

/// `GET /console/connections`.
pub async fn page(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
) -> Response {
    render(&api, &viewer, &Fields::default(), None).await
}

/// `POST /console/connections/explain`.
pub async fn explain(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(fields): Extension<Fields>,
) -> Response {
    let mut body = json!({
        "client": fields.get("client").unwrap_or_default(),
        "server": fields.get("server").unwrap_or_default(),
    });
    for name in ["tool", "ip", "at"] {
        if let Some(value) = fields.get(name) {
            body[name] = json!(value);
        }
    }
    if let Some(arguments) = fields.get("arguments") {
        match serde_json::from_str::<Value>(arguments) {
            Ok(value) => body["arguments"] = value,
            Err(err) => {
                let refused = Answer {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    body: json!({"detail": format!("arguments: not JSON ({err})")}),
                };
                return render(&api, &viewer, &fields, Some(refused)).await;
            }
        }
    }
    let answer = api
        .call(
            &viewer.token,
            viewer.peer,
            Method::POST,
            "/admin/api/v1/policy/explain",
            Some(&body),
        )
        .await;
    render(&api, &viewer, &fields, Some(answer)).await
}

async fn render(
    api: &Api,
    viewer: &Viewer,
    entered: &Fields,
    explained: Option<Answer>,
) -> Response {
    let servers = get(api, viewer, "/admin/api/v1/servers?limit=500").await;
    let clients = get(api, viewer, "/admin/api/v1/clients?limit=500").await;
    let connections = get(api, viewer, "/admin/api/v1/connections?limit=500").await;
    let groups = get(api, viewer, "/admin/api/v1/group-connections?limit=500").await;
    let server_names: Vec<&str> = servers.items().iter().map(|s| text(s, "name")).collect();
    // (row label, is a group) → server → tool patterns
    let mut cells: BTreeMap<(bool, String), BTreeMap<String, String>> = BTreeMap::new();
    for client in clients.items() {
        cells
            .entry((false, text(client, "name").to_owned()))
            .or_default();
    }
    for c in connections.items() {
        cells
            .entry((false, text(c, "client").to_owned()))
            .or_default()
            .insert(text(c, "server").to_owned(), patterns(c));
    }
    for g in groups.items() {
        cells
            .entry((true, text(g, "group").to_owned()))
            .or_default()
            .insert(text(g, "server").to_owned(), patterns(g));
    }
    let client_names: BTreeSet<&str> = clients.items().iter().map(|c| text(c, "name")).collect();
    let status = explained
        .as_ref()
        .filter(|a| !a.ok())
        .map_or(StatusCode::OK, |a| a.status);
    let main = html! {
        @for answer in [&servers, &clients, &connections, &groups] {
            @if !answer.ok() { (layout::alert(&answer.problem())) }
        }
        @if cells.is_empty() || server_names.is_empty() {
            p.muted { "No client or server yet." }
        } @else {
            div.table-wrap { table {
                caption.muted { "Tool patterns each client or group is granted on each server; empty: no connection" }
                thead { tr {
                    th scope="col" { "Client or group" }
                    @for server in &server_names {
                        th scope="col" { a href={ "/console/servers/" (segment(server)) } { (server) } }
                    }
                } }
                tbody { @for ((group, name), row) in &cells { tr {
                    th scope="row" {
                        @if *group { "group " (name) }
                        @else { a href={ "/console/clients/" (segment(name)) } { (name) } }
                    }
                    @for server in &server_names {
                        td { @if let Some(tools) = row.get(*server) {
                            @if *group { code { (tools) } }
                            @else { a href={ "/console/connections/" (segment(name)) "/" (segment(server)) }
                                aria-label={ (name) " on " (server) ": " (tools) } { code { (tools) } } }
                        } }
                    }
                } } }
            } }
        }
        h2 #explain { "Explain a call" }
        p.muted { "What Gatehouse would decide for a call, and which rule decides, without making it." }
        form.card method="post" action="/console/connections/explain" aria-labelledby="explain" {
            (csrf(viewer))
            label for="client" { "Client" }
            select #client name="client" required {
                @for name in &client_names {
                    option value=(name) selected[entered.get("client") == Some(*name)] { (name) }
                }
            }
            label for="server" { "Server" }
            select #server name="server" required {
                @for name in &server_names {
                    option value=(name) selected[entered.get("server") == Some(*name)] { (name) }
                }
            }
            label for="tool" { "Tool" }
            input #tool type="text" name="tool" value=(entered.get("tool").unwrap_or_default());
            label for="arguments" { "Arguments (JSON, optional)" }
            textarea #arguments name="arguments" rows="3" { (entered.get("arguments").unwrap_or_default()) }
            label for="ip" { "Caller address (optional, default 127.0.0.1)" }
            input #ip type="text" name="ip" value=(entered.get("ip").unwrap_or_default());
            label for="at" { "When (RFC 3339, optional, default now)" }
            input #at type="text" name="at" placeholder="2026-01-05T09:30:00Z" value=(entered.get("at").unwrap_or_default());
            button type="submit" { "Explain" }
        }
        @if let Some(answer) = &explained { (explanation(answer)) }
    };
    layout::page_with_status(status, viewer, ACTIVE, "Connections", main)
}

fn explanation(answer: &Answer) -> Markup {
    if !answer.ok() {
        return layout::alert(&answer.problem());
    }
    let explained = answer
        .body
        .get("explanation")
        .cloned()
        .unwrap_or(Value::Null);
    let decision = text(&explained, "decision");
    let steps = explained
        .get("steps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    html! {
        section.card aria-labelledby="decision" role="status" {
            h2 #decision { "Decision: " span class={ "badge " (decision) } { (decision) } }
            @if let Some(by) = explained.get("decided_by").and_then(Value::as_str) {
                p { "Decided by " code { (by) } }
            }
            div.table-wrap { table {
                thead { tr { th scope="col" { "Stage" } th scope="col" { "Rule" } th scope="col" { "Outcome" } th scope="col" { "Detail" } } }
                tbody { @for step in &steps { tr {
                    td { (text(step, "stage")) }
                    td { code { (text(step, "rule")) } }
                    td { (text(step, "outcome")) }
                    td { (text(step, "detail")) }
                } } }
            } }
        }
    }
}
