//! One connection (a client × a server): the tools, resources and prompts it grants, edited or
//! revoked; the policies and guardrails that apply to it (scoped to the client, the server,
//! both or neither), edited, deleted, or added for it.

use axum::{
    Extension,
    extract::Path,
    http::{Method, StatusCode},
    response::Response,
};
use maud::{Markup, html};
use serde_json::{Value, json};

use super::api::{list, text};
use super::{
    api::Api,
    layout::{self, csrf, segment},
    policies,
    policy_form::{self, Mode, Refusal},
    session::{Fields, Viewer},
};
use gatehouse_model::records::AdminRole;

const ACTIVE: &str = "/console/connections";

fn page_path(client: &str, server: &str) -> String {
    format!(
        "/console/connections/{}/{}",
        segment(client),
        segment(server)
    )
}

fn api_path(client: &str, server: &str) -> String {
    format!(
        "/admin/api/v1/connections/{}/{}",
        segment(client),
        segment(server)
    )
}

/// What the last change did, and which form a refusal belongs to.
enum Outcome<'a> {
    Nothing,
    Done(&'a str),
    GrantRefused(&'a Refusal),
    PolicyRefused(&'a Refusal),
}

/// `GET /console/connections/{client}/{server}`.
pub async fn page(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Path((client, server)): Path<(String, String)>,
) -> Response {
    render(
        &api,
        &viewer,
        &client,
        &server,
        &Fields::default(),
        Outcome::Nothing,
    )
    .await
}

/// `POST /console/connections/{client}/{server}`: the grant replaced (tools, resources,
/// prompts).
pub async fn save(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(fields): Extension<Fields>,
    Path((client, server)): Path<(String, String)>,
) -> Response {
    let body = json!({
        "tools": fields.get("tools").unwrap_or_default(),
        "resources": fields.checked("resources"),
        "prompts": fields.checked("prompts"),
    });
    let path = api_path(&client, &server);
    let saved = api
        .call(&viewer.token, viewer.peer, Method::PUT, &path, Some(&body))
        .await;
    if !saved.ok() {
        let mut refused = Refusal::from_answer(&saved);
        // The grant form has one field a value can be wrong in.
        refused.field = refused.field.map(|_| "tools");
        return render(
            &api,
            &viewer,
            &client,
            &server,
            &fields,
            Outcome::GrantRefused(&refused),
        )
        .await;
    }
    let done = "Saved: the grant applies within a quarter second.";
    render(
        &api,
        &viewer,
        &client,
        &server,
        &Fields::default(),
        Outcome::Done(done),
    )
    .await
}

/// `POST /console/connections/{client}/{server}/revoke`.
pub async fn revoke(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Path((client, server)): Path<(String, String)>,
) -> Response {
    let path = api_path(&client, &server);
    let revoked = api
        .call(&viewer.token, viewer.peer, Method::DELETE, &path, None)
        .await;
    if !revoked.ok() {
        let refused = Refusal {
            field: None,
            ..Refusal::from_answer(&revoked)
        };
        return render(
            &api,
            &viewer,
            &client,
            &server,
            &Fields::default(),
            Outcome::GrantRefused(&refused),
        )
        .await;
    }
    let done = "Revoked: the client no longer reaches this server.";
    render(
        &api,
        &viewer,
        &client,
        &server,
        &Fields::default(),
        Outcome::Done(done),
    )
    .await
}

/// `POST /console/connections/{client}/{server}/policies`: a policy added for the connection.
pub async fn add_policy(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(fields): Extension<Fields>,
    Path((client, server)): Path<(String, String)>,
) -> Response {
    match policies::create(&api, &viewer, &fields).await {
        Ok(_) => {
            let done = "Added: it applies within a quarter second.";
            render(
                &api,
                &viewer,
                &client,
                &server,
                &Fields::default(),
                Outcome::Done(done),
            )
            .await
        }
        Err(refused) => {
            render(
                &api,
                &viewer,
                &client,
                &server,
                &fields,
                Outcome::PolicyRefused(&refused),
            )
            .await
        }
    }
}

/// Whether `policy` applies to calls of `client` to `server` (a scope left empty is any).
fn applies(policy: &Value, client: &str, server: &str) -> bool {
    let scope = |key: &str, name: &str| match policy.get(key).and_then(Value::as_str) {
        Some(scoped) => scoped == name,
        None => true,
    };
    scope("client", client) && scope("server", server)
}

async fn render(
    api: &Api,
    viewer: &Viewer,
    client: &str,
    server: &str,
    entered: &Fields,
    outcome: Outcome<'_>,
) -> Response {
    let get = |path: String| async move {
        api.call(&viewer.token, viewer.peer, Method::GET, &path, None)
            .await
    };
    let connections = get(format!(
        "/admin/api/v1/connections?client={}&server={}",
        segment(client),
        segment(server)
    ))
    .await;
    let all = get("/admin/api/v1/policies?limit=500".to_owned()).await;
    let (policies, guardrails): (Vec<Value>, Vec<Value>) = all
        .items()
        .iter()
        .filter(|p| applies(p, client, server))
        .cloned()
        .partition(|p| text(p, "kind") != "guardrail");
    let connection = connections.items().first();
    let back = page_path(client, server);
    let status = match &outcome {
        Outcome::GrantRefused(r) | Outcome::PolicyRefused(r) => r.status,
        _ => StatusCode::OK,
    };
    let (grant_refusal, policy_refusal) = match &outcome {
        Outcome::GrantRefused(r) => (Some(*r), None),
        Outcome::PolicyRefused(r) => (None, Some(*r)),
        _ => (None, None),
    };
    let policy_entered = if policy_refusal.is_some() {
        entered.clone()
    } else {
        Fields(vec![
            ("client".to_owned(), client.to_owned()),
            ("server".to_owned(), server.to_owned()),
        ])
    };
    let operator = viewer.may(AdminRole::Operator);
    let main = html! {
        @if let Outcome::Done(done) = &outcome { (layout::notice(done)) }
        (policy_form::page_alert(grant_refusal))
        (policy_form::page_alert(policy_refusal))
        @for answer in [&connections, &all] { @if !answer.ok() { (layout::alert(&answer.problem())) } }
        p { "Client " a href={ "/console/clients/" (segment(client)) } { (client) }
            " on server " a href={ "/console/servers/" (segment(server)) } { (server) } "." }
        h2 #grant { "Tools, resources and prompts" }
        @match connection {
            None => p.muted { "Not granted: the client does not reach this server." },
            Some(c) => (granted(c)),
        }
        @if operator {
            (grant_form(viewer, &back, connection, entered, grant_refusal))
        }
        h2 { "Policies" }
        @if policies.is_empty() { p.muted { "No policy applies to this connection." } }
        @else { (policies::table(viewer, &policies, Some(&back))) }
        h2 { "Guardrails" }
        @if guardrails.is_empty() { p.muted { "No guardrail applies to this connection." } }
        @else { (policies::table(viewer, &guardrails, Some(&back))) }
        @if operator {
            (policy_form::form(viewer, &format!("{back}/policies"), Mode::Add, &policy_entered, policy_refusal))
        }
    };
    let title = format!("Connection {client} → {server}");
    layout::page_with_status(status, viewer, ACTIVE, &title, main)
}

fn granted(connection: &Value) -> Markup {
    let yes = |key: &str| connection.get(key).and_then(Value::as_bool) == Some(true);
    html! {
        dl {
            dt { "Tools" } dd { code { (list(connection, "tools")) } }
            dt { "Resources" } dd { @if yes("resources") { "yes" } @else { "no" } }
            dt { "Prompts" } dd { @if yes("prompts") { "yes" } @else { "no" } }
        }
    }
}

fn grant_form(
    viewer: &Viewer,
    back: &str,
    connection: Option<&Value>,
    entered: &Fields,
    refusal: Option<&Refusal>,
) -> Markup {
    let stored = connection.map(|c| list(c, "tools")).unwrap_or_default();
    let tools = if refusal.is_some() {
        entered.get("tools").unwrap_or_default().to_owned()
    } else {
        stored
    };
    let checked = |key: &str| {
        if refusal.is_some() {
            entered.checked(key)
        } else {
            connection.and_then(|c| c.get(key)).and_then(Value::as_bool) == Some(true)
        }
    };
    let invalid = refusal.is_some_and(|r| r.field.is_some());
    html! {
        form.card method="post" action=(back) aria-labelledby="grant" {
            (csrf(viewer))
            label for="grant-tools" { "Tools (comma-separated patterns)" }
            input #grant-tools type="text" name="tools" required value=(tools)
                aria-invalid=[invalid.then_some("true")]
                aria-describedby={ "grant-tools-help" @if invalid { " grant-tools-error" } };
            @if let Some(r) = refusal.filter(|r| r.field.is_some()) {
                p.field-error #grant-tools-error role="alert" { (r.message) }
            }
            p #grant-tools-help .muted { code { "*" } " grants every tool; " code { "search_*" } " the ones whose names start so." }
            label.check { input type="checkbox" name="resources" value="on" checked[checked("resources")]; " Resources" }
            label.check { input type="checkbox" name="prompts" value="on" checked[checked("prompts")]; " Prompts" }
            button type="submit" { @if connection.is_some() { "Save the grant" } @else { "Grant" } }
        }
        @if connection.is_some() {
            form.inline method="post" action={ (back) "/revoke" } {
                (csrf(viewer))
                button.danger type="submit" { "Revoke the connection" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_applies_to_the_connections_its_scope_names_or_leaves_open() {
        let open = json!({"id": "a"});
        let client_only = json!({"id": "b", "client": "shop"});
        let both = json!({"id": "c", "client": "shop", "server": "demo"});
        let other = json!({"id": "d", "server": "other"});
        assert!(applies(&open, "shop", "demo"));
        assert!(applies(&client_only, "shop", "demo"));
        assert!(applies(&both, "shop", "demo"));
        assert!(!applies(&other, "shop", "demo"));
        assert!(!applies(&client_only, "bank", "demo"));
    }

    #[test]
    fn an_answers_reason_names_the_field_it_is_about() {
        let field = |reason| policy_form::field_of(reason);
        assert_eq!(field("spec: not JSON (expected value)"), "spec");
        assert_eq!(field("unknown policy kind \"burst\" (one of …)"), "kind");
        assert_eq!(field("client \"ghost\" not found"), "client");
        assert_eq!(field("server \"ghost\" not found"), "server");
        assert_eq!(field("policy \"p1\" already exists"), "id");
    }
}
