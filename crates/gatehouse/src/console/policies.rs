//! Policies and guardrails: every rule with its scope and specification, adding one (kind,
//! scope, tools, JSON specification), editing and deleting one, with the API's refusals shown
//! beside the field they are about.

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
    policy_form::{self, Mode, Refusal},
    session::{Fields, Viewer},
};
use gatehouse_model::records::AdminRole;

const ACTIVE: &str = "/console/policies";

/// `GET /console/policies`.
pub async fn page(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
) -> Response {
    render(&api, &viewer, &Fields::default(), Outcome::Nothing).await
}

/// What the last change did, for the page that follows it.
enum Outcome<'a> {
    Nothing,
    Done(String),
    Refused(&'a Refusal),
}

/// `POST /console/policies`.
pub async fn add(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(fields): Extension<Fields>,
) -> Response {
    match create(&api, &viewer, &fields).await {
        Ok(id) => {
            let done = format!("Added {id}: it applies within a quarter second.");
            render(&api, &viewer, &Fields::default(), Outcome::Done(done)).await
        }
        Err(refused) => render(&api, &viewer, &fields, Outcome::Refused(&refused)).await,
    }
}

/// Adds the policy `fields` describe; its id, or the refusal.
pub async fn create(api: &Api, viewer: &Viewer, fields: &Fields) -> Result<String, Refusal> {
    let mut body = policy_form::body(fields)?;
    body["id"] = json!(fields.get("id").unwrap_or_default());
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
        Ok(text(&added.body, "id").to_owned())
    } else {
        Err(Refusal::from_answer(&added))
    }
}

/// `POST /console/policies/{id}/delete` (the field `back`: a connection's page to return to).
pub async fn delete(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(fields): Extension<Fields>,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/admin/api/v1/policies/{}", segment(&id));
    let deleted = api
        .call(&viewer.token, viewer.peer, Method::DELETE, &path, None)
        .await;
    if !deleted.ok() {
        let refused = Refusal::from_answer(&deleted);
        let refused = Refusal {
            field: None,
            ..refused
        };
        return render(
            &api,
            &viewer,
            &Fields::default(),
            Outcome::Refused(&refused),
        )
        .await;
    }
    if let Some(back) = fields
        .get("back")
        .filter(|b| b.starts_with("/console/connections/"))
    {
        return layout::see_other(back);
    }
    let done = format!("Deleted {id}.");
    render(&api, &viewer, &Fields::default(), Outcome::Done(done)).await
}

/// The table of `policies`, each with its edit link and delete button for an operator;
/// `back` is the page a deletion returns to (none: the policies page).
pub fn table(viewer: &Viewer, policies: &[Value], back: Option<&str>) -> Markup {
    let operator = viewer.may(AdminRole::Operator);
    html! {
        div.table-wrap { table {
            caption.muted { "Rules on top of the grants, in the order the gateway applies them by kind" }
            thead { tr { th scope="col" { "Id" } th scope="col" { "Kind" } th scope="col" { "Client" }
                th scope="col" { "Server" } th scope="col" { "Tools" } th scope="col" { "Specification" }
                @if operator { th scope="col" { "Actions" } } } }
            tbody { @for p in policies {
                @let id = text(p, "id");
                tr {
                    td { code { (id) } }
                    td { (text(p, "kind")) }
                    td { (text(p, "client")) }
                    td { (text(p, "server")) }
                    td { code { (text(p, "tools")) } }
                    td { code { (p.get("spec").map(Value::to_string).unwrap_or_default()) } }
                    @if operator { td {
                        a href={ "/console/policies/" (segment(id)) } { "Edit " (id) }
                        form.inline method="post" action={ "/console/policies/" (segment(id)) "/delete" } {
                            (csrf(viewer))
                            @if let Some(back) = back { input type="hidden" name="back" value=(back); }
                            button.danger type="submit" { "Delete " (id) }
                        }
                    } }
                }
            } }
        } }
    }
}

async fn render(api: &Api, viewer: &Viewer, entered: &Fields, outcome: Outcome<'_>) -> Response {
    let policies = api
        .call(
            &viewer.token,
            viewer.peer,
            Method::GET,
            "/admin/api/v1/policies?limit=500",
            None,
        )
        .await;
    let (status, refusal) = match &outcome {
        Outcome::Refused(refused) => (refused.status, Some(*refused)),
        _ => (StatusCode::OK, None),
    };
    let main = html! {
        @if let Outcome::Done(done) = &outcome { (layout::notice(done)) }
        (policy_form::page_alert(refusal))
        @if !policies.ok() { (layout::alert(&policies.problem())) }
        @if policies.items().is_empty() && policies.ok() { p.muted { "No policy or guardrail yet." } }
        @else { (table(viewer, policies.items(), None)) }
        @if viewer.may(AdminRole::Operator) {
            (policy_form::form(viewer, "/console/policies", Mode::Add, entered, refusal))
        }
    };
    layout::page_with_status(status, viewer, ACTIVE, "Policies and guardrails", main)
}

/// `GET /console/policies/{id}`: the policy, and its edit form.
pub async fn edit_page(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/admin/api/v1/policies/{}", segment(&id));
    let policy = api
        .call(&viewer.token, viewer.peer, Method::GET, &path, None)
        .await;
    if !policy.ok() {
        return layout::page_with_status(
            policy.status,
            &viewer,
            ACTIVE,
            "Policy",
            layout::alert(&policy.problem()),
        );
    }
    edit_render(&viewer, &id, &policy_form::entered_from(&policy.body), None)
}

/// `POST /console/policies/{id}`: replaced, or refused with the field named.
pub async fn save(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(fields): Extension<Fields>,
    Path(id): Path<String>,
) -> Response {
    let body = match policy_form::body(&fields) {
        Ok(body) => body,
        Err(refused) => return edit_render(&viewer, &id, &fields, Some(&refused)),
    };
    let path = format!("/admin/api/v1/policies/{}", segment(&id));
    let saved: Answer = api
        .call(&viewer.token, viewer.peer, Method::PUT, &path, Some(&body))
        .await;
    if !saved.ok() {
        return edit_render(&viewer, &id, &fields, Some(&Refusal::from_answer(&saved)));
    }
    let done = format!("Saved {id}: it applies within a quarter second.");
    render(&api, &viewer, &Fields::default(), Outcome::Done(done)).await
}

fn edit_render(viewer: &Viewer, id: &str, entered: &Fields, refusal: Option<&Refusal>) -> Response {
    let action = format!("/console/policies/{}", segment(id));
    let main = html! {
        (policy_form::page_alert(refusal))
        @if viewer.may(AdminRole::Operator) {
            (policy_form::form(viewer, &action, Mode::Edit(id), entered, refusal))
        } @else {
            pre { (entered.get("spec").unwrap_or_default()) }
        }
        p { a href="/console/policies" { "All policies and guardrails" } }
    };
    let status = refusal.map_or(StatusCode::OK, |r| r.status);
    layout::page_with_status(status, viewer, ACTIVE, &format!("Policy {id}"), main)
}
