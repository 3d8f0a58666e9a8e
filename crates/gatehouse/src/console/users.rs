//! Creating and editing users (display name, groups, enabled) and granting groups servers;
//! the list itself is `directory::users`. Refusals are shown beside the field they are about.

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

const ACTIVE: &str = "/console/users";

/// A refusal, and the field of the form it is about (none: shown above the form).
pub struct Refused {
    pub status: StatusCode,
    pub field: Option<&'static str>,
    pub message: String,
}

impl Refused {
    pub fn from(answer: &Answer, fields: &[&'static str]) -> Refused {
        let message = answer.problem();
        let lower = message.to_ascii_lowercase();
        let about_a_value = matches!(
            answer.status,
            StatusCode::BAD_REQUEST
                | StatusCode::NOT_FOUND
                | StatusCode::CONFLICT
                | StatusCode::UNPROCESSABLE_ENTITY
        );
        let named = |field: &str| match field {
            "username" => {
                lower.contains("user name")
                    || lower.contains("username")
                    || lower.starts_with("user ")
            }
            "display_name" => lower.contains("display name"),
            "groups" => lower.contains("group"),
            "password" => lower.contains("password"),
            "tools" => lower.contains("tool") || lower.contains("pattern"),
            "server" => lower.starts_with("server "),
            "group" => lower.contains("group"),
            "redirect_uris" => lower.contains("redirect"),
            "jwks" => lower.contains("jwks") || lower.contains("key"),
            "grant_types" => lower.contains("grant"),
            "auth_method" => lower.contains("auth") || lower.contains("authentication"),
            _ => false,
        };
        // A reason naming none of the form's fields is shown above the form, not guessed.
        let field = about_a_value
            .then(|| fields.iter().copied().find(|f| named(f)))
            .flatten();
        Refused {
            status: answer.status,
            field,
            message,
        }
    }
}

/// A labelled text input, marked invalid with the refusal beside it when it is about `name`.
pub fn input(
    prefix: &str,
    name: &str,
    label: &str,
    value: &str,
    refused: Option<&Refused>,
) -> Markup {
    let id = format!("{prefix}-{name}");
    let invalid = refused.is_some_and(|r| r.field.is_some_and(|f| f == name));
    let kind = if name == "password" {
        "password"
    } else {
        "text"
    };
    html! {
        label for=(id) { (label) }
        input id=(id) type=(kind) name=(name) value=(value) autocomplete=[(kind == "password").then_some("new-password")]
            aria-invalid=[invalid.then_some("true")]
            aria-describedby=[invalid.then(|| format!("{id}-error"))];
        @if let Some(r) = refused.filter(|_| invalid) {
            p.field-error id={ (id) "-error" } role="alert" { (r.message) }
        }
    }
}

pub fn above(refused: Option<&Refused>) -> Markup {
    match refused {
        Some(r) if r.field.is_none() => layout::alert(&r.message),
        _ => html! {},
    }
}

/// Comma-separated names as a list, blanks dropped.
fn names(text: Option<&str>) -> Vec<String> {
    text.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The create-a-user and grant-a-group forms of the users page.
pub fn forms(
    viewer: &Viewer,
    servers: &Answer,
    entered: &Fields,
    refused: Option<(&str, &Refused)>,
) -> Markup {
    let value = |name: &str| entered.get(name).unwrap_or_default().to_owned();
    let user_refused = refused.filter(|(form, _)| *form == "user").map(|(_, r)| r);
    let group_refused = refused.filter(|(form, _)| *form == "group").map(|(_, r)| r);
    html! {
        @if viewer.may(AdminRole::Operator) {
            h2 #create-user { "Create a user" }
            form.card method="post" action="/console/users" aria-labelledby="create-user" {
                (csrf(viewer))
                (above(user_refused))
                (input("user", "username", "Username", &value("username"), user_refused))
                (input("user", "display_name", "Display name (optional)", &value("display_name"), user_refused))
                (input("user", "groups", "Groups (comma-separated, optional)", &value("groups"), user_refused))
                @if viewer.may(AdminRole::Admin) {
                    (input("user", "password", "Password (optional: without one the user signs in through the identity provider)", "", user_refused))
                }
                button type="submit" { "Create user" }
            }
            h2 #grant-group { "Grant a group a server" }
            form.card method="post" action="/console/groups" aria-labelledby="grant-group" {
                (csrf(viewer))
                (above(group_refused))
                (input("group", "group", "Group", &value("group"), group_refused))
                label for="group-server" { "Server" }
                select #group-server name="server" required {
                    @for s in servers.items() {
                        option value=(text(s, "name")) selected[entered.get("server") == Some(text(s, "name"))] { (text(s, "name")) }
                    }
                }
                (input("group", "tools", "Tools (comma-separated patterns)", &value("tools"), group_refused))
                label.check { input type="checkbox" name="resources" value="on"; " Resources" }
                label.check { input type="checkbox" name="prompts" value="on"; " Prompts" }
                button type="submit" { "Grant the group" }
            }
        }
    }
}

async fn call(
    api: &Api,
    viewer: &Viewer,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    api.call(&viewer.token, viewer.peer, method, path, body)
        .await
}

/// `POST /console/users`: a user created.
pub async fn create(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(fields): Extension<Fields>,
) -> Response {
    let mut body = json!({
        "username": fields.get("username").unwrap_or_default(),
        "display_name": fields.get("display_name").unwrap_or_default(),
        "groups": names(fields.get("groups")),
    });
    if let Some(password) = fields.get("password") {
        body["password"] = json!(password);
    }
    let created = call(
        &api,
        &viewer,
        Method::POST,
        "/admin/api/v1/users",
        Some(&body),
    )
    .await;
    if !created.ok() {
        let refused = Refused::from(
            &created,
            &["username", "display_name", "groups", "password"],
        );
        let without_password = Fields(
            fields
                .0
                .into_iter()
                .filter(|(k, _)| k != "password")
                .collect(),
        );
        return super::directory::users_page(
            &api,
            &viewer,
            &without_password,
            Some(("user", &refused)),
            None,
        )
        .await;
    }
    let done = format!("Created {}.", text(&created.body, "username"));
    super::directory::users_page(&api, &viewer, &Fields::default(), None, Some(&done)).await
}

/// `POST /console/groups`: a group granted a server (tools, resources, prompts).
pub async fn grant_group(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(fields): Extension<Fields>,
) -> Response {
    let group = fields.get("group").unwrap_or_default();
    let server = fields.get("server").unwrap_or_default();
    let body = json!({
        "tools": fields.get("tools").unwrap_or_default(),
        "resources": fields.checked("resources"),
        "prompts": fields.checked("prompts"),
    });
    let path = format!(
        "/admin/api/v1/group-connections/{}/{}",
        segment(group),
        segment(server)
    );
    let granted = call(&api, &viewer, Method::PUT, &path, Some(&body)).await;
    if !granted.ok() {
        let refused = Refused::from(&granted, &["group", "tools"]);
        return super::directory::users_page(
            &api,
            &viewer,
            &fields,
            Some(("group", &refused)),
            None,
        )
        .await;
    }
    let done = format!("Granted group {group} the server {server}.");
    super::directory::users_page(&api, &viewer, &Fields::default(), None, Some(&done)).await
}

/// `POST /console/groups/{group}/{server}/revoke`.
pub async fn revoke_group(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Path((group, server)): Path<(String, String)>,
) -> Response {
    let path = format!(
        "/admin/api/v1/group-connections/{}/{}",
        segment(&group),
        segment(&server)
    );
    let revoked = call(&api, &viewer, Method::DELETE, &path, None).await;
    if !revoked.ok() {
        let refused = Refused {
            field: None,
            ..Refused::from(&revoked, &[])
        };
        return super::directory::users_page(
            &api,
            &viewer,
            &Fields::default(),
            Some(("group", &refused)),
            None,
        )
        .await;
    }
    let done = format!("Revoked: group {group} no longer reaches {server}.");
    super::directory::users_page(&api, &viewer, &Fields::default(), None, Some(&done)).await
}

/// `GET /console/users/{username}`.
pub async fn detail(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Path(username): Path<String>,
) -> Response {
    detail_page(&api, &viewer, &username, None, None).await
}

/// `POST /console/users/{username}`: display name and groups saved.
pub async fn save(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(fields): Extension<Fields>,
    Path(username): Path<String>,
) -> Response {
    let path = format!("/admin/api/v1/users/{}", segment(&username));
    let display_name = fields.get("display_name").unwrap_or_default();
    let renamed = call(
        &api,
        &viewer,
        Method::PATCH,
        &path,
        Some(&json!({ "display_name": display_name })),
    )
    .await;
    if !renamed.ok() {
        let refused = Refused::from(&renamed, &["display_name"]);
        return detail_page(&api, &viewer, &username, Some((&fields, &refused)), None).await;
    }
    let groups = json!({ "groups": names(fields.get("groups")) });
    let regrouped = call(
        &api,
        &viewer,
        Method::PUT,
        &format!("{path}/groups"),
        Some(&groups),
    )
    .await;
    if !regrouped.ok() {
        let refused = Refused::from(&regrouped, &["groups"]);
        return detail_page(&api, &viewer, &username, Some((&fields, &refused)), None).await;
    }
    detail_page(&api, &viewer, &username, None, Some("Saved.")).await
}

/// `POST /console/users/{username}/{disable|enable}`.
pub async fn set_enabled(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Path((username, action)): Path<(String, String)>,
) -> Response {
    if action != "disable" && action != "enable" {
        return layout::message(StatusCode::NOT_FOUND, "Not found", "no such page");
    }
    let path = format!("/admin/api/v1/users/{}/{action}", segment(&username));
    let answer = call(&api, &viewer, Method::POST, &path, Some(&json!({}))).await;
    if !answer.ok() {
        let refused = Refused {
            field: None,
            ..Refused::from(&answer, &[])
        };
        return detail_page(
            &api,
            &viewer,
            &username,
            Some((&Fields::default(), &refused)),
            None,
        )
        .await;
    }
    let done = if action == "disable" {
        "Disabled: the user cannot sign in."
    } else {
        "Enabled."
    };
    detail_page(&api, &viewer, &username, None, Some(done)).await
}

async fn detail_page(
    api: &Api,
    viewer: &Viewer,
    username: &str,
    refused: Option<(&Fields, &Refused)>,
    done: Option<&str>,
) -> Response {
    let path = format!("/admin/api/v1/users/{}", segment(username));
    let user = call(api, viewer, Method::GET, &path, None).await;
    if !user.ok() {
        return layout::page_with_status(
            user.status,
            viewer,
            ACTIVE,
            "User",
            layout::alert(&user.problem()),
        );
    }
    let stored_groups = user
        .body
        .get("groups")
        .and_then(Value::as_array)
        .map(|g| {
            g.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let (display_name, groups) = match refused {
        Some((fields, _)) => (
            fields.get("display_name").unwrap_or_default().to_owned(),
            fields.get("groups").unwrap_or_default().to_owned(),
        ),
        None => (text(&user.body, "display_name").to_owned(), stored_groups),
    };
    let refusal = refused.map(|(_, r)| r);
    let disabled = user.body.get("disabled_at").is_some_and(|v| !v.is_null());
    let action = format!("/console/users/{}", segment(username));
    let main = html! {
        @if let Some(done) = done { (layout::notice(done)) }
        (above(refusal))
        dl {
            dt { "Signs in" }
            dd { @if user.body.get("local").and_then(Value::as_bool) == Some(true) { "with a password" }
                 @else { "through " (text(&user.body, "idp")) } }
            dt { "State" } dd { @if disabled { "disabled" } @else { "enabled" } }
        }
        @if viewer.may(AdminRole::Operator) {
            form.card method="post" action=(action) aria-label="Edit the user" {
                (csrf(viewer))
                (input("edit", "display_name", "Display name", &display_name, refusal))
                (input("edit", "groups", "Groups (comma-separated)", &groups, refusal))
                button type="submit" { "Save" }
            }
            form.inline method="post" action={ (action) "/" (if disabled { "enable" } else { "disable" }) } {
                (csrf(viewer))
                @if disabled { button.secondary type="submit" { "Enable " (username) } }
                @else { button.danger type="submit" { "Disable " (username) } }
            }
        }
        p { a href="/console/users" { "All users and groups" } }
    };
    let status = refusal.map_or(StatusCode::OK, |r| r.status);
    layout::page_with_status(status, viewer, ACTIVE, &format!("User {username}"), main)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: StatusCode, detail: &str, fields: &[&'static str]) -> Option<&'static str> {
        let answer = Answer {
            status,
            body: json!({ "detail": detail }),
        };
        Refused::from(&answer, fields).field
    }

    #[test]
    fn a_refusal_is_put_beside_the_field_it_names_and_otherwise_above_the_form() {
        let user_form = &["username", "display_name", "groups", "password"];
        let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
        assert_eq!(
            refused(
                StatusCode::CONFLICT,
                "user \"ann\" already exists",
                user_form
            ),
            Some("username")
        );
        assert_eq!(
            refused(
                unprocessable,
                "invalid group name \"Bad Group!\"",
                user_form
            ),
            Some("groups")
        );
        assert_eq!(
            refused(
                StatusCode::NOT_FOUND,
                "server \"ghost\" not found",
                &["group", "tools"]
            ),
            None,
            "the group form has no server field to name"
        );
        assert_eq!(
            refused(
                StatusCode::FORBIDDEN,
                "this operation needs the admin role",
                user_form
            ),
            None
        );
    }
}
