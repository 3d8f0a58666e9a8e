//! The overview: traffic over the last day, the busiest clients and tools, what is
//! configured, and the latest refusals.

use axum::{Extension, http::Method, response::Response};
use maud::html;
use serde_json::Value;

use super::{api::Api, chart, layout, session::Viewer};

/// The events the charts are drawn from: the latest this many requests of the last day.
const SAMPLE: u32 = 500;

const ACTIVE: &str = "/console";

/// `GET /console`.
pub async fn page(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
) -> Response {
    let status = api
        .call(
            &viewer.token,
            viewer.peer,
            Method::GET,
            "/admin/api/v1/status",
            None,
        )
        .await;
    let denials = api
        .call(
            &viewer.token,
            viewer.peer,
            Method::GET,
            "/admin/api/v1/audit/events?decision=deny&kind=request&limit=10",
            None,
        )
        .await;
    let since = crate::now_ms() - chart::HOURS * 60 * 60 * 1000;
    let recent = api
        .call(
            &viewer.token,
            viewer.peer,
            Method::GET,
            &format!("/admin/api/v1/audit/events?kind=request&since={since}&limit={SAMPLE}"),
            None,
        )
        .await;
    let buckets = chart::hourly(recent.items(), crate::now_ms());
    let clients = chart::top(recent.items(), "client", 5);
    let tools = chart::top(recent.items(), "tool", 5);
    let counts = status.body.get("counts").cloned().unwrap_or(Value::Null);
    let count = |key: &str| counts.get(key).and_then(Value::as_u64).unwrap_or(0);
    let text = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let main = html! {
        @if !status.ok() { (layout::alert(&status.problem())) }
        @if !recent.ok() { (layout::alert(&recent.problem())) }
        h2 { "Traffic" }
        (chart::traffic(&buckets))
        @if recent.items().len() >= SAMPLE as usize {
            p.muted { "Drawn from the latest " (SAMPLE) " requests of the period." }
        }
        div.stats {
            @for (caption, ranked) in [("Busiest clients", &clients), ("Busiest tools", &tools)] {
                div.card {
                    h3 { (caption) }
                    @if ranked.is_empty() { p.muted { "No request in the last day." } }
                    @else { ol { @for (name, n) in ranked.iter() { li { (name) ": " (n) } } } }
                }
            }
        }
        h2 { "Configured" }
        section aria-label="What is configured" { div.stats {
            @for (key, label, href) in [("servers", "Servers", "/console/servers"), ("clients", "Clients", "/console/clients"),
                ("active_api_keys", "Active API keys", "/console/clients"), ("connections", "Connections", "/console/clients"),
                ("policies", "Policies", "/console"), ("guardrails", "Guardrails", "/console"), ("users", "Users", "/console")] {
                div.card { div.value { (count(key)) } a href=(href) { (label) } }
            }
        } }
        h2 { "Latest refusals" }
        @if denials.items().is_empty() {
            p.muted { "None." }
        } @else {
            ul { @for event in denials.items() {
                li {
                    (layout::time(event.get("ts_ms").and_then(Value::as_i64).unwrap_or(0))) ": "
                    strong { (text(event, "client")) } " → " (text(event, "server")) " " (text(event, "tool"))
                    ": " code { (text(event, "reason")) }
                }
            } }
            p { a href="/console/audit?decision=deny" { "All refusals" } }
        }
    };
    layout::page(&viewer, ACTIVE, "Overview", main)
}
