//! A person's own upstream grants (per-user delegated tokens, ADR 0006 §5): the page that
//! lists them (`GET /oauth/upstream/grants`) and the revocation
//! (`POST /oauth/upstream/revoke`, `server=…&csrf=…`), which tells the upstream's revocation
//! endpoint when one is configured and forgets the tokens. Only the signed-in person's own
//! grants are shown or revoked; the CSRF token is bound to their session cookie.

use axum::{
    extract::{Request, State},
    response::Response,
};
use http::{Method, StatusCode};

use crate::{
    AppState,
    oauth::{authorize, form::Form, pages, session},
    snapshot::upstream_auth::UpstreamAuth,
};

const CSRF_PURPOSE: &str = "upstream-revoke";

/// The signed-in person and their session cookie's value.
fn signed_in(state: &AppState, headers: &http::HeaderMap) -> Option<(String, String)> {
    let snapshot = state.snapshot.current();
    authorize::session_user(state, &snapshot, headers)
}

fn sign_in_first() -> Response {
    pages::error(
        StatusCode::UNAUTHORIZED,
        "sign in to Gatehouse in this browser first",
    )
}

/// `GET /oauth/upstream/grants`: the servers the person connected their account at.
pub async fn list(State(state): State<AppState>, request: Request) -> Response {
    let Some((user, cookie)) = signed_in(&state, request.headers()) else {
        return sign_in_first();
    };
    let grants = match state.store.list_upstream_grants(Some(&user)).await {
        Ok(grants) => grants,
        Err(err) => {
            tracing::error!(error = %err, "listing a person's upstream grants failed");
            return pages::error(StatusCode::SERVICE_UNAVAILABLE, "try again later");
        }
    };
    let mut body = String::from("<h1>Connected accounts</h1>");
    if grants.is_empty() {
        body.push_str("<p>You have not connected an account at any server.</p>");
    }
    for grant in &grants {
        let csrf = session::csrf_token(&state.keyring, CSRF_PURPOSE, &cookie, &grant.server);
        body.push_str(&format!(
            "<form method=\"post\" action=\"/oauth/upstream/revoke\"><p><code>{server}</code> \
             <input type=\"hidden\" name=\"server\" value=\"{server}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\">Disconnect</button></p></form>",
            server = pages::escape(&grant.server),
            csrf = pages::escape(&csrf),
        ));
    }
    pages::page(StatusCode::OK, "Connected accounts", &body)
}

/// `POST /oauth/upstream/revoke`: forgets one of the person's grants.
pub async fn revoke(State(state): State<AppState>, request: Request) -> Response {
    if request.method() != Method::POST {
        return pages::error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
    }
    let (parts, body) = request.into_parts();
    let Some((user, cookie)) = signed_in(&state, &parts.headers) else {
        return sign_in_first();
    };
    let form = match Form::read(&parts.headers, body, &[]).await {
        Ok(form) => form,
        Err(err) => return pages::error(err.status(), &err.to_string()),
    };
    let (Some(server), Some(csrf)) = (form.get("server"), form.get("csrf")) else {
        return pages::error(StatusCode::BAD_REQUEST, "name the server to disconnect");
    };
    if !session::csrf_ok(&state.keyring, CSRF_PURPOSE, &cookie, server, csrf) {
        return pages::error(
            StatusCode::FORBIDDEN,
            "this request did not come from your connected-accounts page",
        );
    }
    let snapshot = state.snapshot.current();
    let auth = snapshot
        .servers
        .get(server)
        .and_then(|entry| match &entry.auth {
            UpstreamAuth::PerUser(auth) => Some(auth.clone()),
            _ => None,
        });
    match state
        .upstream_tokens
        .revoke(&state.store, &state.keyring, auth.as_deref(), &user, server)
        .await
    {
        Ok(true) => pages::page(
            StatusCode::OK,
            "Disconnected",
            &format!(
                "<h1>Disconnected</h1><p>Gatehouse no longer holds your token for \
                 <code>{}</code>.</p>",
                pages::escape(server)
            ),
        ),
        Ok(false) => pages::error(StatusCode::NOT_FOUND, "no account is connected there"),
        Err(err) => {
            tracing::error!(error = %err, "revoking a person's upstream grant failed");
            pages::error(StatusCode::SERVICE_UNAVAILABLE, "try again later")
        }
    }
}
