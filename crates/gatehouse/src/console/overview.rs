//! The overview: traffic over the last day, the busiest clients and tools, each upstream's
//! health and the audit chains' last verification, what is configured, and the latest
//! refusals.

use axum::{Extension, http::Method, response::Response};
use maud::{Markup, html};
use serde_json::Value;

use super::{
    api::{Answer, Api, Verification},
    chart,
    layout::{self, csrf, segment},
    session::Viewer,
};

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
    let health = api
        .call(
            &viewer.token,
            viewer.peer,
            Method::GET,
            "/admin/api/v1/upstream-health",
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
        h2 { "Health" }
        div.stats {
            (upstreams(&health))
            (chains(&viewer, api.last_verification()))
        }
        h2 { "Configured" }
        section aria-label="What is configured" { div.stats {
            @for (key, label, href) in [("servers", "Servers", "/console/servers"), ("clients", "Clients", "/console/clients"),
                ("active_api_keys", "Active API keys", "/console/clients"), ("connections", "Connections", "/console/connections"),
                ("policies", "Policies", "/console/policies"), ("guardrails", "Guardrails", "/console/policies"), ("users", "Users", "/console/users")] {
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

/// Each server's circuit breaker on the replica that answers.
fn upstreams(health: &Answer) -> Markup {
    let text = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    html! {
        section.card aria-labelledby="upstreams" {
            h3 #upstreams { "Upstreams" }
            @if !health.ok() { (layout::alert(&health.problem())) }
            @else if health.items().is_empty() { p.muted { "No server is registered." } }
            @else {
                ul.plain { @for item in health.items() {
                    @let circuit = text(item, "circuit");
                    li {
                        a href={ "/console/servers/" (segment(&text(item, "server"))) } { (text(item, "server")) } " "
                        @match circuit.as_str() {
                            "closed" => span.badge.allow { "healthy" },
                            "open" => span.badge.deny { "down: circuit open" },
                            "half_open" => span.badge.error { "recovering: probing" },
                            _ => span.badge { "not called yet" },
                        }
                    }
                } }
                p.muted { "As this replica's circuit breakers see them." }
            }
        }
    }
}

/// The last verification of the audit chains run from this console, and a button to run one.
fn chains(viewer: &Viewer, last: Option<Verification>) -> Markup {
    let field = |v: &Value, key: &str| v.get(key).and_then(Value::as_u64).unwrap_or(0);
    html! {
        section.card aria-labelledby="chains" {
            h3 #chains { "Audit chains" }
            @match &last {
                None => p.muted { "Not verified from this console since the gateway started." },
                Some(Verification { at_ms, answer }) => {
                    @if answer.get("intact").and_then(Value::as_bool) == Some(true) {
                        p { span.badge.allow { "intact" } " " (field(answer, "rows_checked")) " rows in "
                            (field(answer, "chains")) " chain(s), verified " (layout::time(*at_ms)) }
                    } @else {
                        p { span.badge.deny { "altered" } " "
                            (answer.get("problems").and_then(Value::as_array).map_or(0, Vec::len))
                            " problem(s) found, verified " (layout::time(*at_ms)) " "
                            a href="/console/audit" { "see the audit page" } }
                    }
                }
            }
            form.inline method="post" action="/console/audit/verify" {
                (csrf(viewer))
                button.secondary type="submit" { "Verify the chains now" }
            }
        }
    }
}
