//! A client's OAuth side on its page: the registration (client credentials, authorization
//! code with redirect URIs, refresh tokens; a secret, `private_key_jwt` with the client's
//! JWKS, or a public client), its secrets (a new one shown once; rotation with overlap;
//! revocation).

use axum::{Extension, extract::Path, http::Method, response::Response};
use maud::{Markup, html};
use serde_json::{Value, json};

use super::{
    api::{Answer, Api, text},
    clients::{Shown, detail_page},
    layout::{self, csrf, segment},
    session::{Fields, Viewer},
    users::{Refused, above},
};
use gatehouse_model::records::AdminRole;

/// The OAuth section of a client's page; `refused` is a registration the API refused.
pub fn section(
    viewer: &Viewer,
    client: &Value,
    name: &str,
    secrets: &Answer,
    refused: Option<(&Fields, &Refused)>,
) -> Markup {
    let registered = client.get("oauth").and_then(Value::as_bool) == Some(true);
    let action = format!("/console/clients/{}", segment(name));
    html! {
        h2 { "OAuth" }
        @if !registered {
            p.muted { "Not registered with the authorization server." }
            @if viewer.may(AdminRole::Admin) { (register_form(viewer, &action, refused)) }
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

const GRANTS: &[(&str, &str)] = &[
    (
        "client_credentials",
        "Client credentials (the client acts as itself)",
    ),
    (
        "authorization_code",
        "Authorization code (a person signs in and consents)",
    ),
    ("refresh_token", "Refresh tokens"),
];
const AUTH_METHODS: &[(&str, &str)] = &[
    (
        "client_secret_basic",
        "client_secret_basic: a secret, in the Authorization header",
    ),
    (
        "client_secret_post",
        "client_secret_post: a secret, in the form",
    ),
    (
        "private_key_jwt",
        "private_key_jwt: an assertion signed with one of its keys (JWKS below)",
    ),
    (
        "none",
        "none: a public client (authorization code with PKCE only)",
    ),
];

fn register_form(viewer: &Viewer, action: &str, refused: Option<(&Fields, &Refused)>) -> Markup {
    let entered = refused.map(|(f, _)| f);
    let refusal = refused.map(|(_, r)| r);
    let grants: Vec<&str> = match entered {
        Some(fields) => fields
            .0
            .iter()
            .filter(|(k, _)| k == "grant_types")
            .map(|(_, v)| v.as_str())
            .collect(),
        None => vec!["client_credentials"],
    };
    let method = entered
        .and_then(|f| f.get("auth_method"))
        .unwrap_or("client_secret_basic");
    let value = |name: &str| {
        entered
            .and_then(|f| f.get(name))
            .unwrap_or_default()
            .to_owned()
    };
    let field_error = |name: &str| match refusal.filter(|r| r.field == Some(name)) {
        Some(r) => {
            html! { p.field-error id={ "oauth-" (name) "-error" } role="alert" { (r.message) } }
        }
        None => html! {},
    };
    let invalid = |name: &str| refusal.is_some_and(|r| r.field == Some(name));
    html! {
        form.card method="post" action={ (action) "/oauth" } aria-labelledby="oauth-register" {
            h3 #oauth-register { "Register with the authorization server" }
            (csrf(viewer))
            (above(refusal))
            fieldset aria-describedby=[invalid("grant_types").then_some("oauth-grant_types-error")] {
                legend { "Grant types" }
                @for (grant, label) in GRANTS {
                    label.check { input type="checkbox" name="grant_types" value=(grant) checked[grants.contains(grant)]; " " (label) }
                }
                (field_error("grant_types"))
            }
            label for="oauth-auth_method" { "Token endpoint authentication" }
            select #oauth-auth_method name="auth_method" aria-invalid=[invalid("auth_method").then_some("true")]
                aria-describedby=[invalid("auth_method").then_some("oauth-auth_method-error")] {
                @for (m, label) in AUTH_METHODS { option value=(m) selected[*m == method] { (label) } }
            }
            (field_error("auth_method"))
            label for="oauth-redirect_uris" { "Redirect URIs (one per line; for authorization code)" }
            textarea #oauth-redirect_uris name="redirect_uris" rows="2" aria-invalid=[invalid("redirect_uris").then_some("true")]
                aria-describedby=[invalid("redirect_uris").then_some("oauth-redirect_uris-error")] { (value("redirect_uris")) }
            (field_error("redirect_uris"))
            label.check { input type="checkbox" name="native" value="on" checked[entered.is_some_and(|f| f.checked("native"))];
                " A native app (loopback redirect URIs may use any port)" }
            label for="oauth-jwks" { "Public keys (JWKS JSON; for private_key_jwt)" }
            textarea #oauth-jwks name="jwks" rows="3" placeholder=r#"{"keys": [...]}"# aria-invalid=[invalid("jwks").then_some("true")]
                aria-describedby=[invalid("jwks").then_some("oauth-jwks-error")] { (value("jwks")) }
            (field_error("jwks"))
            label.check { input type="checkbox" name="require_dpop" value="on" checked[entered.is_some_and(|f| f.checked("require_dpop"))];
                " Require DPoP-bound tokens" }
            button type="submit" { "Register" }
        }
    }
}

/// The API body for the registration form; JWKS that are not JSON are refused here.
fn registration(fields: &Fields) -> Result<Value, Refused> {
    let grant_types: Vec<&str> = fields
        .0
        .iter()
        .filter(|(k, v)| k == "grant_types" && !v.trim().is_empty())
        .map(|(_, v)| v.trim())
        .collect();
    let redirect_uris: Vec<&str> = fields
        .get("redirect_uris")
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut body = json!({
        "grant_types": grant_types,
        "redirect_uris": redirect_uris,
        "native": fields.checked("native"),
        "require_dpop": fields.checked("require_dpop"),
    });
    if let Some(method) = fields.get("auth_method") {
        body["auth_method"] = json!(method);
    }
    if let Some(jwks) = fields.get("jwks") {
        body["jwks"] = serde_json::from_str::<Value>(jwks).map_err(|err| Refused {
            status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            field: Some("jwks"),
            message: format!("jwks: not JSON ({err})"),
        })?;
    }
    Ok(body)
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

/// `POST /console/clients/{name}/oauth`: registered with the authorization server (the
/// form's grant types, authentication, redirect URIs, keys).
pub async fn register(
    Extension(viewer): Extension<Viewer>,
    Extension(api): Extension<Api>,
    Extension(fields): Extension<Fields>,
    Path(name): Path<String>,
) -> Response {
    let body = match registration(&fields) {
        Ok(body) => body,
        Err(refused) => {
            return detail_page(&api, &viewer, &name, Shown::OAuthRefused(&fields, &refused)).await;
        }
    };
    let path = format!("/admin/api/v1/clients/{}/oauth", segment(&name));
    let answer = post(&api, &viewer, &path, &body).await;
    if !answer.ok() {
        let fields_named = ["redirect_uris", "jwks", "grant_types", "auth_method"];
        let refused = Refused::from(&answer, &fields_named);
        return detail_page(&api, &viewer, &name, Shown::OAuthRefused(&fields, &refused)).await;
    }
    if answer
        .body
        .get("client_secret")
        .is_some_and(|s| s.is_string())
    {
        return detail_page(&api, &viewer, &name, Shown::OAuthSecret(&answer)).await;
    }
    let method = answer
        .body
        .pointer("/metadata/token_endpoint_auth_method")
        .and_then(Value::as_str)
        .unwrap_or("none");
    let done = format!("Registered: client id {name}, authenticating with {method} (no secret).");
    detail_page(&api, &viewer, &name, Shown::Notice(&done)).await
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
