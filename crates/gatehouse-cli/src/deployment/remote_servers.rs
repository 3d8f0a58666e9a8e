//! The admin API's request bodies for `servers add` and `servers update`: every setting the
//! local mode stores — a stdio program, upstream tokens, the identity header — goes to the
//! API too, so a server made through `--server` is the one the same command makes locally.

use gatehouse::admin::{NewServer, ServerUpdate, stdio::NewStdio};
use serde_json::{Value, json};

use super::upstream_auth_body::upstream_auth_body;

/// The body of `POST /servers`.
pub fn create_body(new: NewServer) -> Value {
    // A stdio server has no URL: the API takes its absence, not an empty one.
    let url = (!new.url.is_empty()).then_some(new.url);
    let mut body = json!({
        "name": new.name,
        "url": url,
        "credential": new.credential,
        "allow_anonymous": new.allow_anonymous,
        "allow_unknown_methods": new.allow_unknown_methods,
        "pin_action": new.pin_action,
        "upstream_auth": upstream_auth_body(
            new.upstream_auth.as_ref(),
            new.per_user_discovery.as_ref()
        ),
        "identity_header": new.identity_header,
        "stdio": new.stdio.map(stdio_input),
    });
    // A virtual server has members instead of a URL or a program (the API takes a list, and
    // its absence for a server with an upstream).
    if !new.members.is_empty() {
        body["members"] = json!(new.members);
    }
    body
}

/// The body of `PATCH /servers/{name}`.
pub fn update_body(update: ServerUpdate) -> Value {
    let mut body = json!({ "url": update.url });
    if let Some(members) = update.members {
        body["members"] = json!(members);
    }
    match update.credential {
        Some(Some(credential)) => body["credential"] = json!(credential),
        Some(None) => body["remove_credential"] = json!(true),
        None => {}
    }
    match &update.upstream_auth {
        Some(None) => body["remove_upstream_auth"] = json!(true),
        given => {
            let given = given.as_ref().and_then(Option::as_ref);
            let discovery = update.per_user_discovery.as_ref();
            if let Some(auth) = upstream_auth_body(given, discovery) {
                body["upstream_auth"] = auth;
            }
        }
    }
    match update.identity_header {
        Some(Some(header)) => body["identity_header"] = json!(header),
        Some(None) => body["remove_identity_header"] = json!(true),
        None => {}
    }
    if let Some(stdio) = update.stdio {
        body["stdio"] = stdio_input(stdio);
    }
    body
}

/// The API's `StdioInput`; the server checks the command against its own configuration.
fn stdio_input(stdio: NewStdio) -> Value {
    json!({
        "command": stdio.command,
        "args": stdio.args,
        "env": stdio
            .env
            .into_iter()
            .map(|(name, value)| (name, Value::String(value)))
            .collect::<serde_json::Map<String, Value>>(),
        "cwd": stdio.cwd,
        "sharing": stdio.sharing,
        "max_children": stdio.max_children,
        "idle_timeout_secs": stdio.idle_timeout.map(|t| t.as_secs()),
        "limits": stdio.limits,
    })
}
