//! Policies and guardrails: every rule with its scope and specification, and adding one
//! (kind, scope, tools, JSON specification) with the API's validation, which names the field.

use axum::{
    Extension,
    http::{Method, StatusCode},
    response::Response,
};
use maud::html;
use serde_json::{Value, json};

use super::{
    api::{Answer, Api},
    layout::{self, csrf},
    session::{Fields, Viewer},
};
use gatehouse_model::records::AdminRole;

const ACTIVE: &str = "/console/policies";
const KINDS: &[&str] = &[
    "rate_limit",
    "quota",
    "arguments",
    "ip",
    "country",
    "schedule",
    "guardrail",
];

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// `GET /console/policies`.
pub async fn page(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
) -> Response {
    render(&api, &viewer, &Fields::default(), None).await
}

/// `POST /console/policies`.
pub async fn add(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(fields): Extension<Fields>,
) -> Response {
    let spec = match serde_json::from_str::<Value>(fields.get("spec").unwrap_or("{}")) {
        Ok(spec) => spec,
        Err(err) => {
            let refused = Answer {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                body: json!({"detail": format!("spec: not JSON ({err})")}),
            };
            return render(&api, &viewer, &fields, Some(refused)).await;
        }
    };
    let mut body = json!({
        "id": fields.get("id").unwrap_or_default(),
        "kind": fields.get("kind").unwrap_or_default(),
        "spec": spec,
    });
    for name in ["client", "server", "tools"] {
        if let Some(value) = fields.get(name) {
            body[name] = json!(value);
        }
    }
    let added = api
        .call(
            &viewer.token,
            viewer.peer,
            Method::POST,
            "/admin/api/v1/policies",
            Some(&body),
        )
        .await;
    if added.ok() {
        return render(&api, &viewer, &Fields::default(), Some(added)).await;
    }
    render(&api, &viewer, &fields, Some(added)).await
}

async fn render(api: &Api, viewer: &Viewer, entered: &Fields, added: Option<Answer>) -> Response {
    let policies = api
        .call(
            &viewer.token,
            viewer.peer,
            Method::GET,
            "/admin/api/v1/policies?limit=500",
            None,
        )
        .await;
    let status = added
        .as_ref()
        .filter(|a| !a.ok())
        .map_or(StatusCode::OK, |a| a.status);
    let kind = entered.get("kind").unwrap_or("rate_limit");
    let main = html! {
        @if let Some(answer) = &added {
            @if answer.ok() { (layout::notice(&format!("Added {}: it applies within a quarter second.", text(&answer.body, "id")))) }
            @else { (layout::alert(&answer.problem())) }
        }
        @if !policies.ok() { (layout::alert(&policies.problem())) }
        @if policies.items().is_empty() && policies.ok() { p.muted { "No policy or guardrail yet." } }
        @else {
            div.table-wrap { table {
                caption.muted { "Rules on top of the grants, in the order the gateway applies them by kind" }
                thead { tr { th scope="col" { "Id" } th scope="col" { "Kind" } th scope="col" { "Client" }
                    th scope="col" { "Server" } th scope="col" { "Tools" } th scope="col" { "Specification" } } }
                tbody { @for p in policies.items() { tr {
                    td { code { (text(p, "id")) } }
                    td { (text(p, "kind")) }
                    td { (text(p, "client")) }
                    td { (text(p, "server")) }
                    td { code { (text(p, "tools")) } }
                    td { code { (p.get("spec").map(Value::to_string).unwrap_or_default()) } }
                } } }
            } }
        }
        @if viewer.may(AdminRole::Operator) {
            h2 #add { "Add a policy or guardrail" }
            form.card method="post" action="/console/policies" aria-labelledby="add" {
                (csrf(viewer))
                label for="id" { "Id" }
                input #id type="text" name="id" required value=(entered.get("id").unwrap_or_default());
                label for="kind" { "Kind" }
                select #kind name="kind" {
                    @for k in KINDS { option value=(k) selected[*k == kind] { (k) } }
                }
                label for="client" { "Client (optional)" }
                input #client type="text" name="client" value=(entered.get("client").unwrap_or_default());
                label for="server" { "Server (optional)" }
                input #server type="text" name="server" value=(entered.get("server").unwrap_or_default());
                label for="tools" { "Tools (optional pattern)" }
                input #tools type="text" name="tools" value=(entered.get("tools").unwrap_or_default());
                label for="spec" { "Specification (JSON)" }
                textarea #spec name="spec" rows="4" required aria-describedby="spec-help" {
                    (entered.get("spec").unwrap_or(r#"{"requests": 60, "period": "1m"}"#))
                }
                p #spec-help .muted { "Each kind's fields are in docs/policies.md and docs/guardrails.md." }
                button type="submit" { "Add" }
            }
        }
    };
    layout::page_with_status(status, viewer, ACTIVE, "Policies and guardrails", main)
}
