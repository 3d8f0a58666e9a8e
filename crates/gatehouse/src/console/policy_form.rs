//! The form a policy or guardrail is added or edited with (the policies page, a policy's page,
//! a connection's page), and a refusal shown beside the field it names.

use axum::http::StatusCode;
use maud::{Markup, html};
use serde_json::{Value, json};

use super::{
    api::Answer,
    layout::{self, csrf},
    session::{Fields, Viewer},
};

pub const KINDS: &[&str] = &[
    "rate_limit",
    "quota",
    "arguments",
    "ip",
    "country",
    "schedule",
    "guardrail",
];

/// The form's fields, in the order they are shown.
const FIELDS: &[&str] = &["id", "kind", "client", "server", "tools", "spec"];

/// What the API refused, and the form field its reason is about (none for a refusal of the
/// change itself: a role too low, a store outage).
pub struct Refusal {
    pub status: StatusCode,
    pub field: Option<&'static str>,
    pub message: String,
}

impl Refusal {
    pub fn from_answer(answer: &Answer) -> Refusal {
        let message = answer.problem();
        let about_a_value = matches!(
            answer.status,
            StatusCode::BAD_REQUEST
                | StatusCode::NOT_FOUND
                | StatusCode::CONFLICT
                | StatusCode::UNPROCESSABLE_ENTITY
        );
        Refusal {
            status: answer.status,
            field: about_a_value.then(|| field_of(&message)),
            message,
        }
    }
}

/// The field a refusal's reason is about. The API's reasons name what they refuse in words
/// ("invalid policy name", "unknown policy kind", "client \"x\" not found", a tool pattern,
/// the specification's own fields); anything else is about the specification.
pub fn field_of(reason: &str) -> &'static str {
    let reason = reason.to_ascii_lowercase();
    if reason.starts_with("spec:") || reason.contains("not valid json") {
        "spec"
    } else if reason.contains("policy name") || reason.contains("already exists") {
        "id"
    } else if reason.contains("policy kind") {
        "kind"
    } else if reason.starts_with("client ") {
        "client"
    } else if reason.starts_with("server ") {
        "server"
    } else if reason.contains("tool pattern") || reason.contains("--tools") {
        "tools"
    } else {
        "spec"
    }
}

/// The API body for `fields` (the id apart); a specification that is not JSON is refused
/// here, naming the field.
pub fn body(fields: &Fields) -> Result<Value, Refusal> {
    let spec =
        serde_json::from_str::<Value>(fields.get("spec").unwrap_or("{}")).map_err(|err| {
            Refusal {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                field: Some("spec"),
                message: format!("spec: not JSON ({err})"),
            }
        })?;
    let mut body = json!({ "kind": fields.get("kind").unwrap_or_default(), "spec": spec });
    for name in ["client", "server", "tools"] {
        if let Some(value) = fields.get(name) {
            body[name] = json!(value);
        }
    }
    Ok(body)
}

/// Fields from a stored policy, to fill the edit form.
pub fn entered_from(policy: &Value) -> Fields {
    let mut fields = Vec::new();
    for name in FIELDS {
        let value = match policy.get(*name) {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => serde_json::to_string_pretty(other).unwrap_or_default(),
        };
        fields.push(((*name).to_owned(), value));
    }
    Fields(fields)
}

/// How the form is used: adding (the id typed) or editing `id` (the id fixed).
pub enum Mode<'a> {
    Add,
    Edit(&'a str),
}

/// The form, posting to `action`, filled with `entered`; `refusal` shown beside its field.
pub fn form(
    viewer: &Viewer,
    action: &str,
    mode: Mode<'_>,
    entered: &Fields,
    refusal: Option<&Refusal>,
) -> Markup {
    let kind = entered.get("kind").unwrap_or("rate_limit");
    let value = |name: &str| entered.get(name).unwrap_or_default().to_owned();
    let invalid = |name: &str| refusal.is_some_and(|r| r.field == Some(name));
    let described = |name: &str, help: Option<&str>| {
        let mut ids: Vec<String> = help.map(str::to_owned).into_iter().collect();
        if invalid(name) {
            ids.push(format!("policy-{name}-error"));
        }
        (!ids.is_empty()).then(|| ids.join(" "))
    };
    let error = |name: &str| match refusal.filter(|r| r.field == Some(name)) {
        Some(r) => {
            html! { p.field-error id={ "policy-" (name) "-error" } role="alert" { (r.message) } }
        }
        None => html! {},
    };
    let (heading, submit) = match mode {
        Mode::Add => ("Add a policy or guardrail", "Add"),
        Mode::Edit(_) => ("Edit the policy", "Save"),
    };
    html! {
        h2 #policy-form { (heading) }
        form.card method="post" action=(action) aria-labelledby="policy-form" novalidate {
            (csrf(viewer))
            @match mode {
                Mode::Add => {
                    label for="policy-id" { "Id" }
                    input #policy-id type="text" name="id" required value=(value("id"))
                        aria-invalid=[invalid("id").then_some("true")] aria-describedby=[described("id", None)];
                    (error("id"))
                }
                Mode::Edit(id) => { p { "Id " code { (id) } } }
            }
            label for="policy-kind" { "Kind" }
            select #policy-kind name="kind" aria-invalid=[invalid("kind").then_some("true")]
                aria-describedby=[described("kind", None)] {
                @for k in KINDS { option value=(k) selected[*k == kind] { (k) } }
            }
            (error("kind"))
            label for="policy-client" { "Client (optional)" }
            input #policy-client type="text" name="client" value=(value("client"))
                aria-invalid=[invalid("client").then_some("true")] aria-describedby=[described("client", None)];
            (error("client"))
            label for="policy-server" { "Server (optional)" }
            input #policy-server type="text" name="server" value=(value("server"))
                aria-invalid=[invalid("server").then_some("true")] aria-describedby=[described("server", None)];
            (error("server"))
            label for="policy-tools" { "Tools (optional pattern)" }
            input #policy-tools type="text" name="tools" value=(value("tools"))
                aria-invalid=[invalid("tools").then_some("true")] aria-describedby=[described("tools", None)];
            (error("tools"))
            label for="policy-spec" { "Specification (JSON)" }
            textarea #policy-spec name="spec" rows="4" required
                aria-invalid=[invalid("spec").then_some("true")] aria-describedby=[described("spec", Some("policy-spec-help"))] {
                (entered.get("spec").unwrap_or(r#"{"requests": 60, "period": "1m"}"#))
            }
            (error("spec"))
            p #policy-spec-help .muted { "Each kind's fields are in docs/policies.md and docs/guardrails.md." }
            button type="submit" { (submit) }
        }
    }
}

/// A refusal not about one field, above the page.
pub fn page_alert(refusal: Option<&Refusal>) -> Markup {
    match refusal {
        Some(r) if r.field.is_none() => layout::alert(&r.message),
        _ => html! {},
    }
}
