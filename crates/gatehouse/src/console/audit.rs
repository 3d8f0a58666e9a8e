//! The audit trail: newest first, with filters, each event's detail (the decision, the rule
//! that decided, the chain position) in a disclosure, and a live view that re-reads the rows
//! every few seconds when the script runs.

use axum::{
    Extension,
    extract::RawQuery,
    http::{Method, StatusCode},
    response::Response,
};
use maud::{Markup, html};
use serde_json::Value;

use super::{
    api::{Answer, Api, text},
    layout::{self, csrf},
    session::{Fields, Viewer},
};

const ACTIVE: &str = "/console/audit";
/// The filters the page passes on to the API's search.
const FILTERS: &[(&str, &str)] = &[
    ("client", "Client"),
    ("server", "Server"),
    ("tool", "Tool"),
    ("reason", "Reason"),
    ("rule", "Rule"),
];
const ROWS: u32 = 100;

/// The API query for the page's filters: known names only, blank ones dropped.
fn query(raw: Option<&str>) -> (String, Vec<(String, String)>) {
    let given: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .filter(|(k, v)| {
            !v.trim().is_empty()
                && (FILTERS.iter().any(|(name, _)| name == k) || k == "decision" || k == "kind")
        })
        .collect();
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &given {
        out.append_pair(k, v.trim());
    }
    (out.finish(), given)
}

async fn search(api: &Api, viewer: &Viewer, encoded: &str) -> Answer {
    let path = format!("/admin/api/v1/audit/events?limit={ROWS}&{encoded}");
    api.call(&viewer.token, viewer.peer, Method::GET, &path, None)
        .await
}

/// `GET /console/audit`.
pub async fn page(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    RawQuery(raw): RawQuery,
) -> Response {
    render(&api, &viewer, raw.as_deref(), None).await
}

/// `POST /console/audit/verify`: every chain checked; the answer above the events.
pub async fn verify(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(_fields): Extension<Fields>,
) -> Response {
    let verified = api
        .call(
            &viewer.token,
            viewer.peer,
            Method::POST,
            "/admin/api/v1/audit/verify",
            None,
        )
        .await;
    api.remember_verification(&verified);
    render(&api, &viewer, None, Some(verified)).await
}

fn verification(answer: &Answer) -> Markup {
    if !answer.ok() {
        return layout::alert(&answer.problem());
    }
    let rows = answer
        .body
        .get("rows_checked")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let chains = answer
        .body
        .get("chains")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let problems: Vec<&str> = answer
        .body
        .get("problems")
        .and_then(Value::as_array)
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if answer.body.get("intact").and_then(Value::as_bool) == Some(true) {
        layout::notice(&format!(
            "The audit trail is intact: {rows} rows in {chains} chain(s) checked."
        ))
    } else {
        html! {
            div.error role="alert" {
                p { strong { "The audit trail has been altered" } " (" (rows) " rows in " (chains) " chain(s) checked):" }
                ul { @for problem in &problems { li { (problem) } } }
            }
        }
    }
}

async fn render(
    api: &Api,
    viewer: &Viewer,
    raw: Option<&str>,
    verified: Option<Answer>,
) -> Response {
    let (encoded, given) = query(raw);
    let value = |name: &str| {
        given
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let events = search(api, viewer, &encoded).await;
    let decision = value("decision");
    let kind = value("kind");
    let main = html! {
        @if let Some(verified) = &verified { (verification(verified)) }
        form.filters.card method="get" action="/console/audit" aria-label="Filter events" {
            @for (name, label) in FILTERS {
                div { label for=(name) { (label) } input id=(name) type="text" name=(name) value=(value(name)); }
            }
            div { label for="decision" { "Decision" }
                select #decision name="decision" {
                    option value="" { "any" }
                    @for d in ["allow", "deny", "error"] { option value=(d) selected[decision == d] { (d) } }
                } }
            div { label for="kind" { "Kind" }
                select #kind name="kind" {
                    option value="" { "any" }
                    @for k in ["request", "operator"] { option value=(k) selected[kind == k] { (k) } }
                } }
            div { button type="submit" { "Filter" } }
        }
        p {
            a href={ "/admin/api/v1/audit/export?" (encoded) } { "Export these events (JSON lines)" }
            " "
            button.secondary #live type="button" aria-pressed="false" hidden { "Pause live view" }
            span #live-status .muted role="status" aria-live="polite" {}
        }
        form.inline method="post" action="/console/audit/verify" {
            (csrf(viewer))
            button.secondary type="submit" { "Verify the chains" }
        }
        @if !events.ok() { (layout::alert(&events.problem())) }
        div.table-wrap { table {
            caption.muted { "Newest first; open an event for its decision chain" }
            thead { tr { th scope="col" { "Time" } th scope="col" { "Who" } th scope="col" { "Server / tool" }
                th scope="col" { "Decision" } th scope="col" { "Why" } } }
            tbody data-live={ "/console/audit/rows?" (encoded) } { (rows_markup(&events)) }
        } }
    };
    let status = if events.ok() {
        StatusCode::OK
    } else {
        events.status
    };
    layout::page_with_status(status, viewer, ACTIVE, "Audit", main)
}

/// `GET /console/audit/rows`: the table's rows alone, for the live view.
pub async fn rows(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    RawQuery(raw): RawQuery,
) -> Response {
    let (encoded, _) = query(raw.as_deref());
    let events = search(&api, &viewer, &encoded).await;
    let mut response = layout::fragment(rows_markup(&events));
    if !events.ok() {
        *response.status_mut() = events.status;
    }
    response
}

fn rows_markup(events: &Answer) -> Markup {
    html! {
        @if events.items().is_empty() {
            tr { td colspan="5" { "No event matches." } }
        }
        @for event in events.items() { (row(event)) }
    }
}

fn row(event: &Value) -> Markup {
    let decision = text(event, "decision");
    let who = match (text(event, "client"), event.get("operator")) {
        ("", Some(op)) if !op.is_null() => text(op, "actor").to_owned(),
        (client, _) => client.to_owned(),
    };
    let what = match event.get("operator") {
        Some(op) if !op.is_null() => text(op, "action").to_owned(),
        _ => [text(event, "server"), text(event, "tool")]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" / "),
    };
    let detail = serde_json::to_string_pretty(event).unwrap_or_default();
    html! {
        tr {
            td { (layout::time(event.get("ts_ms").and_then(Value::as_i64).unwrap_or(0))) }
            td { (who) }
            td { (what) " " span.muted { (text(event, "rpc_method")) } }
            td { span class={ "badge " (decision) } { (decision) } }
            td {
                @if !text(event, "reason").is_empty() { code { (text(event, "reason")) } }
                @if !text(event, "rule").is_empty() { " by " code { (text(event, "rule")) } }
                details {
                    summary { "Details of event " (event.get("seq").and_then(Value::as_i64).unwrap_or(0)) }
                    dl {
                        dt { "Decision chain" }
                        dd { "identity: " (if who.is_empty() { "anonymous" } else { who.as_str() })
                            " → " (if decision == "allow" { "allowed" } else { "refused" })
                            @if !text(event, "rule").is_empty() { " by rule " code { (text(event, "rule")) } }
                            @if !text(event, "reason").is_empty() { " (" (text(event, "reason")) ")" } }
                        dt { "HTTP status" } dd { (event.get("status").and_then(Value::as_u64).unwrap_or(0)) }
                        dt { "Caller address" } dd { (text(event, "ip")) }
                        dt { "Chain" } dd { (event.get("chain_id").and_then(Value::as_i64).unwrap_or(0)) " #"
                            (event.get("chain_seq").and_then(Value::as_i64).unwrap_or(0)) }
                    }
                    pre { (detail) }
                }
            }
        }
    }
}
