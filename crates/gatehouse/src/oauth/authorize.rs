//! The authorization endpoint (OAuth 2.1 §4.1, RFC 7636, RFC 8707, RFC 9207): a user signs in,
//! sees who asks for what, and the client gets a single-use code bound to its PKCE challenge,
//! redirect URI and resource.
//!
//! Errors about the client or its redirect URI are shown here, never redirected (the URI is
//! not trusted yet). Every later error is redirected with `state` and `iss`.

use axum::{
    Json,
    body::Body,
    extract::{Request, State},
    response::{IntoResponse, Response},
};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    AppState,
    oauth::{clients::OAuthClient, form::Form, pages, session},
    secrets,
    snapshot::Snapshot,
};
use gatehouse_model::{
    records::AuthorizationCodeRecord,
    scope::{Scope, ScopeItem},
};

pub const REQUEST_PURPOSE: &str = "authorization-request";
pub const SESSION_PURPOSE: &str = "session";
/// How long a user may take between the client's redirect and their answer.
const REQUEST_TTL_MS: i64 = 10 * 60 * 1000;

/// A validated authorization request, carried (sealed) through sign-in and consent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub scope: String,
    pub resource: String,
    /// RFC 9449 §10 `dpop_jkt`: the code will be redeemable only with a proof by this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
}

/// The session cookie's name: `__Host-` (pinned to this origin, Secure, no Domain) when the
/// public URL is https; browsers refuse that prefix on plain http, used on loopback only.
pub fn session_cookie_name(state: &AppState) -> &'static str {
    if state.config.public_url.starts_with("https:") {
        "__Host-gatehouse_session"
    } else {
        "gatehouse_session"
    }
}

pub fn session_cookie(state: &AppState, value: &str, max_age_secs: u64) -> String {
    let secure = if state.config.public_url.starts_with("https:") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}",
        session_cookie_name(state)
    )
}

/// The signed-in user (id) and the raw cookie value, if the session is valid and the user is
/// still enabled.
pub fn session_user(
    state: &AppState,
    snapshot: &Snapshot,
    headers: &HeaderMap,
) -> Option<(String, String)> {
    let value = session::cookie(headers, session_cookie_name(state))?;
    let user: String = session::open(&state.keyring, SESSION_PURPOSE, value, crate::now_ms())?;
    snapshot
        .users
        .contains_key(&user)
        .then(|| (user, value.to_owned()))
}

/// Where errors go once the redirect URI is trusted.
struct Redirect<'a> {
    uri: &'a str,
    state: Option<&'a str>,
    issuer: &'a str,
}

impl Redirect<'_> {
    fn to(&self, params: &[(&str, &str)]) -> Response {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            query.append_pair(k, v);
        }
        if let Some(state) = self.state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", self.issuer);
        let separator = if self.uri.contains('?') { '&' } else { '?' };
        pages::see_other(&format!("{}{separator}{}", self.uri, query.finish()))
    }

    fn error(&self, code: &str, description: &str) -> Response {
        self.to(&[("error", code), ("error_description", description)])
    }
}

/// RFC 8252 §7.3: for native apps, a loopback redirect URI matches on any port.
fn redirect_matches(client: &OAuthClient, registered: &str, given: &str) -> bool {
    if registered == given {
        return true;
    }
    if client.metadata.application_type.as_deref() != Some("native") {
        return false;
    }
    let (Ok(a), Ok(b)) = (registered.parse::<http::Uri>(), given.parse::<http::Uri>()) else {
        return false;
    };
    a.scheme_str() == Some("http")
        && b.scheme_str() == Some("http")
        && matches!(a.host(), Some("127.0.0.1" | "[::1]" | "::1"))
        && a.host() == b.host()
        && a.path_and_query() == b.path_and_query()
}

fn redirect_source(uri: &str) -> String {
    match uri.parse::<http::Uri>() {
        Ok(u) => match (u.scheme_str(), u.authority()) {
            (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
            _ => String::new(),
        },
        // A private-use scheme (`com.example.app:/cb`) is not an http URI.
        Err(_) => match uri.split_once(':') {
            Some((scheme, _)) if scheme.contains('.') => format!("{scheme}:"),
            _ => String::new(),
        },
    }
}

/// Whether the caller asked for JSON rather than a page (`Accept` names `application/json` and
/// not `text/html`; browsers always name the latter).
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .fold((false, false), |(json, html), v| {
            let v = v.to_ascii_lowercase();
            (
                json || v.contains("application/json"),
                html || v.contains("text/html"),
            )
        })
        == (true, false)
}

/// An unknown (or disabled) `client_id`: the error page for a person, and for a program that
/// asked for JSON an RFC 6749 §5.2 style `invalid_client`. MCP clients holding a cached dynamic
/// registration (mcp-remote) probe the authorization URL that way and register again on
/// `invalid_client`; a page would leave them sending the user to a dead end.
fn unknown_client(headers: &HeaderMap) -> Response {
    if !wants_json(headers) {
        return pages::error(StatusCode::BAD_REQUEST, "unknown client");
    }
    let mut response = (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": "invalid_client", "error_description": "unknown client" })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn valid_challenge(challenge: &str) -> bool {
    (43..=128).contains(&challenge.len())
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// A JWK SHA-256 thumbprint (RFC 7638) in base64url without padding: 43 characters.
fn valid_thumbprint(jkt: &str) -> bool {
    jkt.len() == 43
        && jkt
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub async fn authorize(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    match parts.method {
        Method::GET => {
            let query = parts.uri.query().unwrap_or("");
            match Form::parse(query.as_bytes(), &[]) {
                Ok(params) => {
                    if let Some(client_id) = params.get("client_id")
                        && state.config.oauth.client_metadata_documents
                        && super::cimd::is_document_url(client_id)
                        && let Err(err) = super::cimd::ensure(&state, client_id).await
                    {
                        return pages::error(
                            StatusCode::BAD_REQUEST,
                            &format!("the client's metadata document cannot be used: {err}"),
                        );
                    }
                    begin(&state, &parts.headers, &params)
                }
                Err(err) => pages::error(StatusCode::BAD_REQUEST, &err.to_string()),
            }
        }
        Method::POST => decide(&state, &parts.headers, body).await,
        _ => pages::error(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST"),
    }
}

/// Validates the request, then sends the user to sign in or shows the consent page.
fn begin(state: &AppState, headers: &HeaderMap, params: &Form) -> Response {
    let snapshot = state.snapshot.current();
    let now = crate::now_ms();
    let request = match params.get("req") {
        Some(sealed) => {
            match session::open::<AuthRequest>(&state.keyring, REQUEST_PURPOSE, sealed, now) {
                Some(request) => request,
                None => {
                    return pages::error(
                        StatusCode::BAD_REQUEST,
                        "this sign-in request has expired or was altered; start again from the application",
                    );
                }
            }
        }
        None => match validate(state, &snapshot, headers, params) {
            Ok(request) => request,
            Err(response) => return response,
        },
    };
    let sealed = session::seal(
        &state.keyring,
        REQUEST_PURPOSE,
        &request,
        now + REQUEST_TTL_MS,
    );
    let Some((user, cookie)) = session_user(state, &snapshot, headers) else {
        return pages::see_other(&format!("/oauth/login?req={sealed}"));
    };
    let redirect = Redirect {
        uri: &request.redirect_uri,
        state: request.state.as_deref(),
        issuer: state.config.public_base(),
    };
    let Some(server) = snapshot.server_by_resource(&request.resource) else {
        return redirect.error("invalid_target", "the resource is no longer available");
    };
    let Some(grant) = snapshot.user_grant(&user, &server.name) else {
        return redirect.error("access_denied", "you have no access to this server");
    };
    let scope = Scope::parse(&request.scope).unwrap_or_default();
    for item in scope.items() {
        if let ScopeItem::Tool { tool, .. } = item
            && !grant.allows_tool(tool, None)
        {
            return redirect.error(
                "invalid_scope",
                &format!("scope {item} is not granted to you"),
            );
        }
    }
    let Some(client) = snapshot.oauth.clients.get(&request.client_id) else {
        return pages::error(StatusCode::BAD_REQUEST, "unknown client");
    };
    let username = snapshot
        .users
        .get(&user)
        .map(|u| u.username.clone())
        .unwrap_or_default();
    let scopes: Vec<String> = scope.items().map(ToString::to_string).collect();
    let csrf = session::csrf_token(&state.keyring, "consent", &cookie, &sealed);
    let host = request
        .redirect_uri
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_owned))
        .unwrap_or_else(|| request.redirect_uri.clone());
    pages::consent(&pages::ConsentPage {
        redirect_source: &redirect_source(&request.redirect_uri),
        request: &sealed,
        csrf: &csrf,
        client_name: client
            .metadata
            .client_name
            .as_deref()
            .unwrap_or(&request.client_id),
        client_id: &request.client_id,
        redirect_host: &host,
        user: &username,
        resource: &request.resource,
        scopes: &scopes,
        loopback_warning: matches!(client.metadata.origin.as_str(), "cimd" | "dcr")
            && is_loopback_redirect(&request.redirect_uri),
    })
}

/// A redirect to this machine: a loopback address or `localhost`.
fn is_loopback_redirect(uri: &str) -> bool {
    let Ok(uri) = uri.parse::<http::Uri>() else {
        return false;
    };
    let host = uri
        .host()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The request parameters, checked in the order RFC 6749 §4.1.2.1 implies.
#[allow(clippy::result_large_err)]
fn validate(
    state: &AppState,
    snapshot: &Snapshot,
    headers: &HeaderMap,
    params: &Form,
) -> Result<AuthRequest, Response> {
    let page = |message: &str| pages::error(StatusCode::BAD_REQUEST, message);
    let client_id = params
        .get("client_id")
        .ok_or_else(|| page("client_id is missing"))?;
    let client = snapshot
        .oauth
        .clients
        .get(client_id)
        .ok_or_else(|| unknown_client(headers))?;
    let redirect_uri = match params.get("redirect_uri") {
        Some(given) => {
            if !client
                .metadata
                .redirect_uris
                .iter()
                .any(|registered| redirect_matches(client, registered, given))
            {
                return Err(page("the redirect_uri is not registered for this client"));
            }
            given.to_owned()
        }
        None => match client.metadata.redirect_uris.as_slice() {
            [only] => only.clone(),
            _ => return Err(page("redirect_uri is required")),
        },
    };
    let redirect = Redirect {
        uri: &redirect_uri,
        state: params.get("state"),
        issuer: state.config.public_base(),
    };
    match params.get("response_type") {
        Some("code") => {}
        None => return Err(redirect.error("invalid_request", "response_type is required")),
        Some(_) => {
            return Err(redirect.error("unsupported_response_type", "response_type must be code"));
        }
    }
    if !client.allows_grant("authorization_code") {
        return Err(redirect.error(
            "unauthorized_client",
            "this client may not use the authorization code grant",
        ));
    }
    let challenge = match (
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        (Some(challenge), Some("S256")) if valid_challenge(challenge) => challenge,
        (None, _) => {
            return Err(
                redirect.error("invalid_request", "code_challenge (PKCE, S256) is required")
            );
        }
        (Some(_), Some("S256")) => {
            return Err(redirect.error("invalid_request", "code_challenge is malformed"));
        }
        (Some(_), _) => {
            return Err(redirect.error("invalid_request", "code_challenge_method must be S256"));
        }
    };
    let dpop_jkt = match params.get("dpop_jkt") {
        Some(jkt) if valid_thumbprint(jkt) => Some(jkt.to_owned()),
        Some(_) => {
            return Err(redirect.error(
                "invalid_request",
                "dpop_jkt must be the base64url SHA-256 JWK thumbprint of the DPoP key",
            ));
        }
        None => None,
    };
    let Some(resource) = params.get("resource") else {
        return Err(redirect.error("invalid_request", "resource (RFC 8707) is required"));
    };
    let Some(server) = snapshot.server_by_resource(resource) else {
        return Err(redirect.error(
            "invalid_target",
            "resource is not a server behind this authorization server",
        ));
    };
    let scope = match params.get("scope") {
        Some(text) => {
            Scope::parse(text).map_err(|e| redirect.error("invalid_scope", &e.to_string()))?
        }
        None => Scope::from_items([ScopeItem::Server(server.name.to_string())]),
    };
    if let Some(item) = scope
        .items()
        .find(|i| i.server().is_some_and(|s| s != &*server.name))
    {
        return Err(redirect.error(
            "invalid_scope",
            &format!("scope {item} names a server other than the resource"),
        ));
    }
    Ok(AuthRequest {
        client_id: client_id.to_owned(),
        redirect_uri,
        state: params.get("state").map(str::to_owned),
        code_challenge: challenge.to_owned(),
        scope: scope.to_string(),
        resource: resource.to_owned(),
        dpop_jkt,
    })
}

/// The consent form's answer.
async fn decide(state: &AppState, headers: &HeaderMap, body: Body) -> Response {
    let form = match Form::read(headers, body, &[]).await {
        Ok(form) => form,
        Err(err) => return pages::error(err.status(), &err.to_string()),
    };
    let now = crate::now_ms();
    let snapshot = state.snapshot.current();
    let (Some(sealed), Some(csrf)) = (form.get("req"), form.get("csrf")) else {
        return pages::error(StatusCode::BAD_REQUEST, "incomplete form");
    };
    let Some(request) = session::open::<AuthRequest>(&state.keyring, REQUEST_PURPOSE, sealed, now)
    else {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "this sign-in request has expired or was altered; start again from the application",
        );
    };
    let Some((user, cookie)) = session_user(state, &snapshot, headers) else {
        return pages::see_other(&format!("/oauth/login?req={sealed}"));
    };
    if !session::csrf_ok(&state.keyring, "consent", &cookie, sealed, csrf) {
        return pages::error(StatusCode::FORBIDDEN, "the form is not from this session");
    }
    let redirect = Redirect {
        uri: &request.redirect_uri,
        state: request.state.as_deref(),
        issuer: state.config.public_base(),
    };
    if form.get("decision") != Some("approve") {
        return redirect.error("access_denied", "the user denied the request");
    }
    let Ok(code) = secrets::random_base62(43) else {
        return redirect.error("server_error", "could not create a code");
    };
    let ttl =
        i64::try_from(state.config.oauth.authorization_code_ttl.as_millis()).unwrap_or(60_000);
    let record = AuthorizationCodeRecord {
        code_hash: code_hash(state, &code).to_vec(),
        client: request.client_id.clone(),
        subject: user,
        redirect_uri: request.redirect_uri.clone(),
        code_challenge: request.code_challenge.clone(),
        scope: request.scope.clone(),
        resource: request.resource.clone(),
        created_at: now,
        expires_at: now + ttl,
        consumed_at: None,
        family: None,
        access_jti: None,
        access_expires_at: None,
        dpop_jkt: request.dpop_jkt.clone(),
    };
    if let Err(err) = state.store.insert_authorization_code(&record).await {
        tracing::error!(error = %err, "storing an authorization code failed");
        return redirect.error("server_error", "could not store the code; try again");
    }
    redirect.to(&[("code", &code)])
}

/// What the store keeps of a code.
pub fn code_hash(state: &AppState, code: &str) -> [u8; 32] {
    state
        .keyring
        .hash_secret(format!("authorization-code:{code}").as_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn challenges_follow_rfc7636() {
        assert!(valid_challenge(&"a".repeat(43)));
        assert!(!valid_challenge(&"a".repeat(42)));
        assert!(!valid_challenge(&"a".repeat(129)));
        assert!(!valid_challenge(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn json_only_for_callers_that_ask_for_it() {
        let with = |accept: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
            wants_json(&headers)
        };
        assert!(with("application/json"));
        assert!(with("application/json, text/event-stream"));
        assert!(!with(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(!with("text/html, application/json"));
        assert!(!with("*/*"));
        assert!(!wants_json(&HeaderMap::new()));
    }

    #[test]
    fn loopback_redirects_are_recognised() {
        assert!(is_loopback_redirect("http://127.0.0.1:3000/cb"));
        assert!(is_loopback_redirect("http://[::1]:3000/cb"));
        assert!(is_loopback_redirect("http://localhost/cb"));
        assert!(!is_loopback_redirect("https://app.example.com/cb"));
        assert!(!is_loopback_redirect("com.example.app:/cb"));
    }

    #[test]
    fn redirect_sources_for_csp() {
        assert_eq!(
            redirect_source("http://127.0.0.1:3000/cb?x=1"),
            "http://127.0.0.1:3000"
        );
        assert_eq!(redirect_source("com.example.app:/cb"), "com.example.app:");
    }
}
