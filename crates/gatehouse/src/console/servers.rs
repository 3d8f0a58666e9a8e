//! Servers: the list, registering one (a URL, or for an admin a local program run over stdio;
//! its connection tested at once, so its tools are seen before any client is granted them), a server's tools with their pin status, a changed
//! definition as a diff, and approving or rejecting it.

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

const ACTIVE: &str = "/console/servers";

async fn get(api: &Api, viewer: &Viewer, path: &str) -> Answer {
    api.call(&viewer.token, viewer.peer, Method::GET, path, None)
        .await
}

async fn post(api: &Api, viewer: &Viewer, path: &str, body: &Value) -> Answer {
    api.call(&viewer.token, viewer.peer, Method::POST, path, Some(body))
        .await
}

/// `GET /console/servers`.
pub async fn list(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
) -> Response {
    list_page(&api, &viewer, StatusCode::OK, None, &Fields::default()).await
}

async fn list_page(
    api: &Api,
    viewer: &Viewer,
    status: StatusCode,
    error: Option<&str>,
    entered: &Fields,
) -> Response {
    let servers = get(api, viewer, "/admin/api/v1/servers?limit=500").await;
    let pending = get(
        api,
        viewer,
        "/admin/api/v1/tool-pins?pending=true&limit=500",
    )
    .await;
    let held = |name: &str| {
        pending
            .items()
            .iter()
            .filter(|p| text(p, "server") == name)
            .count()
    };
    let main = html! {
        @if let Some(error) = error { (layout::alert(error)) }
        @if !servers.ok() { (layout::alert(&servers.problem())) }
        @if servers.items().is_empty() && servers.ok() {
            p { "No server is registered yet." }
        } @else {
            div.table-wrap { table {
                caption.muted { "Registered upstream MCP servers" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "URL" }
                    th scope="col" { "Changed tools" } th scope="col" { "Pin action" } } }
                tbody {
                    @for server in servers.items() {
                        @let name = text(server, "name");
                        tr {
                            td { a href={ "/console/servers/" (segment(name)) } { (name) } }
                            td { code { (text(server, "url")) } }
                            td {
                                @match held(name) {
                                    0 => span.muted { "none" },
                                    n => span.badge.pending { (n) " awaiting review" },
                                }
                            }
                            td { (text(server, "pin_action")) }
                        }
                    }
                }
            } }
        }
        @if viewer.may(AdminRole::Operator) { (register_form(viewer, entered)) }
    };
    layout::page_with_status(status, viewer, ACTIVE, "Servers", main)
}

fn register_form(viewer: &Viewer, entered: &Fields) -> Markup {
    let pin = entered.get("pin_action").unwrap_or("block");
    html! {
        h2 #register { "Register a server" }
        form.card method="post" action="/console/servers" aria-labelledby="register" {
            (csrf(viewer))
            label for="name" { "Name" }
            input #name type="text" name="name" required pattern="[a-z0-9][a-z0-9_-]{0,63}"
                value=(entered.get("name").unwrap_or_default()) aria-describedby="name-help";
            p #name-help .muted { "Lower-case letters, digits, - and _; clients reach it at /mcp/<name>." }
            label for="url" { "URL of its MCP endpoint" }
            input #url type="url" name="url" required[!viewer.may(AdminRole::Admin)] placeholder="https://mcp.example.com/mcp"
                value=(entered.get("url").unwrap_or_default());
            @if viewer.may(AdminRole::Admin) {
                fieldset {
                    legend { "Or a local program (stdio), instead of a URL" }
                    label for="command" { "Command" }
                    input #command type="text" name="command" value=(entered.get("command").unwrap_or_default())
                        aria-describedby="command-help";
                    p #command-help .muted { "Gatehouse starts it and speaks MCP over its stdin and stdout; [gateway] stdio_commands may restrict which (docs/upstreams.md)." }
                    label for="args" { "Arguments (one per line)" }
                    textarea #args name="args" rows="3" { (entered.get("args").unwrap_or_default()) }
                }
            }
            label for="credential" { "Credential header (optional)" }
            input #credential type="password" name="credential" autocomplete="off"
                placeholder="Authorization: Bearer …" aria-describedby="credential-help";
            p #credential-help .muted { "Sent upstream on every request; stored sealed, never shown again." }
            label for="pin_action" { "When a tool's definition changes" }
            select #pin_action name="pin_action" {
                option value="block" selected[pin == "block"] { "block it until approved" }
                option value="warn" selected[pin == "warn"] { "warn and let it through" }
                option value="off" selected[pin == "off"] { "do not pin" }
            }
            button type="submit" { "Register and test the connection" }
        }
    }
}

/// `POST /console/servers`: register, then test the connection and show its tools.
pub async fn register(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(fields): Extension<Fields>,
) -> Response {
    let mut body = json!({
        "name": fields.get("name").unwrap_or_default(),
        "pin_action": fields.get("pin_action").unwrap_or("block"),
    });
    match fields.get("command") {
        // A program: its arguments one per line, kept as typed (an argument may have spaces).
        Some(command) => {
            let args: Vec<&str> = fields
                .get("args")
                .unwrap_or_default()
                .lines()
                .map(|line| line.trim_end_matches('\r'))
                .filter(|line| !line.is_empty())
                .collect();
            body["stdio"] = json!({ "command": command, "args": args });
        }
        None => body["url"] = json!(fields.get("url").unwrap_or_default()),
    }
    if let Some(credential) = fields.get("credential") {
        body["credential"] = json!(credential);
    }
    let created = post(&api, &viewer, "/admin/api/v1/servers", &body).await;
    if !created.ok() {
        return list_page(
            &api,
            &viewer,
            created.status,
            Some(&created.problem()),
            &fields,
        )
        .await;
    }
    let name = text(&created.body, "name").to_owned();
    let tested = test_connection(&api, &viewer, &name).await;
    detail_page(
        &api,
        &viewer,
        &name,
        Some(tested),
        Some("Registered. No client can reach it until a connection grants it."),
    )
    .await
}

async fn test_connection(api: &Api, viewer: &Viewer, name: &str) -> Answer {
    post(
        api,
        viewer,
        &format!("/admin/api/v1/servers/{}/test-connection", segment(name)),
        &json!({}),
    )
    .await
}

/// `GET /console/servers/{name}`.
pub async fn detail(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Path(name): Path<String>,
) -> Response {
    detail_page(&api, &viewer, &name, None, None).await
}

/// `POST /console/servers/{name}/test`.
pub async fn test(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Path(name): Path<String>,
) -> Response {
    let tested = test_connection(&api, &viewer, &name).await;
    detail_page(&api, &viewer, &name, Some(tested), None).await
}

/// `POST /console/servers/{name}/pins/{approve|reject}` with the field `tool`.
pub async fn decide_pin(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(fields): Extension<Fields>,
    Path((name, verdict)): Path<(String, String)>,
) -> Response {
    if verdict != "approve" && verdict != "reject" {
        return layout::message(StatusCode::NOT_FOUND, "Not found", "no such page");
    }
    let tools: Vec<&str> = fields.get("tool").into_iter().collect();
    let answer = post(
        &api,
        &viewer,
        &format!(
            "/admin/api/v1/servers/{}/tool-pins/{verdict}",
            segment(&name)
        ),
        &json!({ "tools": tools }),
    )
    .await;
    if !answer.ok() {
        return detail_page_with_status(
            &api,
            &viewer,
            &name,
            None,
            Err((answer.status, answer.problem())),
        )
        .await;
    }
    let done = if verdict == "approve" {
        "Approved: clients now see the new definition."
    } else {
        "Rejected: the approved definition stays, and the tool stays held while the server serves another."
    };
    detail_page(&api, &viewer, &name, None, Some(done)).await
}

async fn detail_page(
    api: &Api,
    viewer: &Viewer,
    name: &str,
    tested: Option<Answer>,
    notice: Option<&str>,
) -> Response {
    detail_page_with_status(api, viewer, name, tested, Ok(notice)).await
}

async fn detail_page_with_status(
    api: &Api,
    viewer: &Viewer,
    name: &str,
    tested: Option<Answer>,
    outcome: Result<Option<&str>, (StatusCode, String)>,
) -> Response {
    let server = get(
        api,
        viewer,
        &format!("/admin/api/v1/servers/{}", segment(name)),
    )
    .await;
    if !server.ok() {
        return layout::page_with_status(
            server.status,
            viewer,
            ACTIVE,
            "Server",
            layout::alert(&server.problem()),
        );
    }
    let pins = get(
        api,
        viewer,
        &format!("/admin/api/v1/tool-pins?server={}&limit=500", segment(name)),
    )
    .await;
    let status = match &outcome {
        Err((status, _)) => *status,
        Ok(_) => StatusCode::OK,
    };
    let operator = viewer.may(AdminRole::Operator);
    let action = format!("/console/servers/{}", segment(name));
    let main = html! {
        @match &outcome {
            Ok(Some(notice)) => (layout::notice(notice)),
            Ok(None) => {},
            Err((_, error)) => (layout::alert(error)),
        }
        dl {
            dt { "URL" } dd { code { (text(&server.body, "url")) } }
            dt { "When a tool's definition changes" } dd { (text(&server.body, "pin_action")) }
            dt { "Registered" } dd { (layout::time(server.body.get("created_at").and_then(Value::as_i64).unwrap_or(0))) }
        }
        @if let Some(tested) = &tested { (tested_tools(tested)) }
        @if operator {
            form.inline method="post" action={ (action) "/test" } {
                (csrf(viewer))
                button.secondary type="submit" { "Test the connection" }
            }
        }
        h2 { "Tools seen through Gatehouse" }
        @if !pins.ok() { (layout::alert(&pins.problem())) }
        @if pins.items().is_empty() && pins.ok() {
            p.muted { "None yet: a tool is pinned when Gatehouse first lists it for a client." }
        }
        @for pin in pins.items() { (pin_card(viewer, &action, pin, operator)) }
    };
    layout::page_with_status(status, viewer, ACTIVE, &format!("Server {name}"), main)
}

fn tested_tools(tested: &Answer) -> Markup {
    let reachable = tested.body.get("reachable").and_then(Value::as_bool) == Some(true);
    let tools = tested
        .body
        .get("tools")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    html! {
        section.card aria-labelledby="tested" {
            h2 #tested { "Connection test" }
            @if !tested.ok() {
                (layout::alert(&tested.problem()))
            } @else if !reachable {
                (layout::alert(&format!("The server could not be asked: {}", text(&tested.body, "error"))))
            } @else {
                p.notice role="status" { "Reachable. It lists " (tools.len()) " tool(s):" }
                ul {
                    @for tool in tools {
                        li { strong { (text(tool, "name")) } " — " (text(tool, "description")) }
                    }
                }
            }
        }
    }
}

fn pretty(value: Option<&Value>) -> String {
    value
        .and_then(|v| serde_json::to_string_pretty(v).ok())
        .unwrap_or_default()
}

fn pin_card(viewer: &Viewer, action: &str, pin: &Value, operator: bool) -> Markup {
    let tool = text(pin, "tool");
    let pending = pin.get("pending_hash").is_some_and(|h| !h.is_null());
    let approved = pretty(pin.get("approved_definition"));
    let proposed = pretty(pin.get("pending_definition"));
    html! {
        article.card aria-label={ "Tool " (tool) } {
            h3 { (tool) " "
                @if pending { span.badge.pending { "changed: held for review" } }
                @else { span.badge.approved { "approved" } }
            }
            @if pending {
                @if let Some(reason) = pin.get("pending_reason").and_then(Value::as_str) {
                    p.muted { (reason) }
                }
                @if approved.is_empty() {
                    p.muted { "The approved definition was not recorded (approved before definitions were kept)." }
                    pre { (proposed) }
                } @else {
                    (diff(&approved, &proposed))
                }
                @if operator {
                    form.inline method="post" action={ (action) "/pins/approve" } {
                        (csrf(viewer))
                        input type="hidden" name="tool" value=(tool);
                        button type="submit" { "Approve " (tool) }
                    }
                    form.inline method="post" action={ (action) "/pins/reject" } {
                        (csrf(viewer))
                        input type="hidden" name="tool" value=(tool);
                        button.danger type="submit" { "Reject " (tool) }
                    }
                }
            } @else {
                details { summary { "Definition" } pre { (approved) } }
            }
        }
    }
}

/// The approved and the pending definition as a unified diff, lines marked for eyes and for
/// screen readers alike (`+`/`-` stay in the text).
fn diff(before: &str, after: &str) -> Markup {
    let diff = similar::TextDiff::from_lines(before, after);
    html! {
        pre.diff aria-label="Changes from the approved definition" {
            @for change in diff.iter_all_changes() {
                @match change.tag() {
                    similar::ChangeTag::Delete => span.del { "- " (change.value()) },
                    similar::ChangeTag::Insert => span.add { "+ " (change.value()) },
                    similar::ChangeTag::Equal => span { "  " (change.value()) },
                }
            }
        }
    }
}
