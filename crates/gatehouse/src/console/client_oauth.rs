//! A client's OAuth side on its page: the registration (client credentials), its secrets
//! (a new one shown once; rotation with overlap; revocation).

use axum::{Extension, extract::Path, http::Method, response::Response};
use maud::{Markup, html};
use serde_json::{Value, json};

use super::{
    api::{Answer, Api},
    clients::{Shown, detail_page},
    layout::{self, csrf, segment},
    session::{Fields, Viewer},
};
use gatehouse_model::records::AdminRole;

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The OAuth section of a client's page.
pub fn section(viewer: &Viewer, client: &Value, name: &str, secrets: &Answer) -> Markup {
    let registered = client.get("oauth").and_then(Value::as_bool) == Some(true);
    let action = format!("/console/clients/{}", segment(name));
    html! {
        h2 { "OAuth" }
        @if !registered {
            p.muted { "Not registered with the authorization server." }
            @if viewer.may(AdminRole::Admin) {
                form.inline method="post" action={ (action) "/oauth" } {
                    (csrf(viewer))
                    button.secondary type="submit" { "Register for client credentials" }
                }
            }
        } @else {
            p { "Client id " code { (name) } "; token endpoint " code { "/oauth/token" } "." }
            @if secrets.items().is_empty() { p.muted { "No client secret." } }
            @else {
                div.table-wrap { table {
                    thead { tr { th scope="col" { "Secret id" } th scope="col" { "Created" } th scope="col" { "Expires" } th scope="col" { "State" } th scope="col" { "Actions" } } }
                    tbody { @for secret in secrets.items() {
                        @let id = text(secret, "id");
                        @let revoked = secret.get("revoked_at").is_some_and(|v| !v.is_null());
                        tr {
                            td { code { (id) } }
                            td { (layout::time(secret.get("created_at").and_then(Value::as_i64).unwrap_or(0))) }
                            td { @match secret.get("expires_at").and_then(Value::as_i64) { Some(at) => (layout::time(at)), None => "never" } }
                            td { @if revoked { "revoked" } @else { "active" } }
                            td { @if !revoked && viewer.may(AdminRole::Operator) {
                                form.inline method="post" action={ "/console/client-secrets/" (segment(id)) "/revoke" } {
                                    (csrf(viewer))
                                    input type="hidden" name="client" value=(name);
                                    button.danger type="submit" { "Revoke secret " (id) }
                                }
                            } }
                        }
                    } }
                } }
            }
            @if viewer.may(AdminRole::Admin) {
                form.inline method="post" action={ (action) "/secrets/rotate" } {
                    (csrf(viewer))
                    label.check for="secret-overlap" { "Old secret works for (seconds)" }
                    input #secret-overlap type="number" name="overlap_seconds" min="0" value="3600";
                    button.secondary type="submit" { "Rotate the client secret" }
                }
            }
        }
    }
}

/// The secret an answer holds, shown once.
pub fn secret(answer: &Answer) -> Markup {
    html! {
        section.card aria-labelledby="secret-title" {
            h2 #secret-title { "New client secret" }
            p { strong { "Copy it now: it is not stored and will not be shown again." } }
            p.secret #secret { (text(&answer.body, "client_secret")) }
            button.secondary type="button" data-copy="secret" hidden { "Copy secret" }
        }
    }
}

async fn post(api: &Api, viewer: &Viewer, path: &str, body: &Value) -> Answer {
    api.call(&viewer.token, viewer.peer, Method::POST, path, Some(body))
        .await
}

/// `POST /console/clients/{name}/oauth`: registered for client credentials.
pub async fn register(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Path(name): Path<String>,
) -> Response {
    let path = format!("/admin/api/v1/clients/{}/oauth", segment(&name));
    let answer = post(&api, &viewer, &path, &json!({})).await;
    let shown = if answer.ok() {
        Shown::OAuthSecret(&answer)
    } else {
        Shown::Refused(&answer)
    };
    detail_page(&api, &viewer, &name, shown).await
}

/// `POST /console/clients/{name}/secrets/rotate`.
pub async fn rotate(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(fields): Extension<Fields>,
    Path(name): Path<String>,
) -> Response {
    let overlap = fields
        .get("overlap_seconds")
        .unwrap_or("0")
        .parse::<u64>()
        .unwrap_or(0);
    let path = format!("/admin/api/v1/clients/{}/secrets/rotate", segment(&name));
    let answer = post(&api, &viewer, &path, &json!({ "overlap_seconds": overlap })).await;
    let shown = if answer.ok() {
        Shown::OAuthSecret(&answer)
    } else {
        Shown::Refused(&answer)
    };
    detail_page(&api, &viewer, &name, shown).await
}

/// `POST /console/client-secrets/{id}/revoke` with the field `client` (the page to return to).
pub async fn revoke(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(fields): Extension<Fields>,
    Path(id): Path<String>,
) -> Response {
    let client = fields.get("client").unwrap_or_default().to_owned();
    let path = format!("/admin/api/v1/client-secrets/{}/revoke", segment(&id));
    let answer = post(&api, &viewer, &path, &json!({})).await;
    let shown = if answer.ok() {
        Shown::Notice("Secret revoked.")
    } else {
        Shown::Refused(&answer)
    };
    detail_page(&api, &viewer, &client, shown).await
}
