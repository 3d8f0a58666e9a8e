//! A person connects their account at an upstream to Gatehouse (per-user delegated tokens,
//! ADR 0006 §5): the link a URL elicitation carries (`/oauth/upstream/connect?ticket=…`), the
//! upstream's OAuth flow (authorization code + PKCE S256) and its callback, which keeps the
//! person's tokens sealed.
//!
//! The ticket names the person and the server and lives ten minutes; the page serves only
//! that person, signed in to Gatehouse in this browser. The `state` sent to the upstream is
//! sealed and bound to a cookie set by the page, so a callback URL made in another browser
//! (or another person's) cannot attach an account to someone else.

use axum::{
    extract::{Request, State},
    response::{IntoResponse, Response},
};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    AppState,
    admin::upstream_registration::{CALLBACK_PATH, client_metadata_document},
    error::GatewayError,
    oauth::{authorize, form::Form, pages, session},
    secrets,
    snapshot::upstream_auth::{PerUser, UpstreamAuth},
    upstream::tokens::Grant,
};

const TICKET_PURPOSE: &str = "upstream-connect-ticket";
const STATE_PURPOSE: &str = "upstream-connect-state";
const BINDING_COOKIE: &str = "gatehouse_upstream_connect";
/// How long the link and the flow it starts stay usable.
const TICKET_TTL_MS: i64 = 10 * 60 * 1000;

#[derive(Serialize, Deserialize)]
struct Ticket {
    user: String,
    server: String,
}

#[derive(Serialize, Deserialize)]
struct ConnectState {
    user: String,
    server: String,
    verifier: String,
    /// SHA-256 of the browser-binding cookie.
    binding: String,
}

/// The refusal a person's call gets while they have no grant: a URL elicitation with a fresh
/// ticket for them and this server.
pub fn consent_required(state: &AppState, user: &str, server: &str) -> GatewayError {
    let ticket = session::seal(
        &state.keyring,
        TICKET_PURPOSE,
        &Ticket {
            user: user.to_owned(),
            server: server.to_owned(),
        },
        crate::now_ms() + TICKET_TTL_MS,
    );
    let Ok(elicitation_id) = secrets::random_id(16) else {
        return GatewayError::UpstreamCredentialUnavailable;
    };
    GatewayError::UpstreamConsentRequired {
        url: format!(
            "{}/oauth/upstream/connect?ticket={ticket}",
            state.config.public_base()
        ),
        elicitation_id,
        answer: crate::error::ConsentAnswer::UrlElicitationError,
    }
}

fn redirect_uri(state: &AppState) -> String {
    format!("{}{CALLBACK_PATH}", state.config.public_base())
}

/// `GET /oauth/upstream/client-metadata.json`: Gatehouse's client metadata document, whose
/// URL is its client id at authorization servers that take such documents (MCP
/// authorization, 2025-11-25). It names the callback and nothing secret.
pub async fn client_metadata(State(state): State<AppState>) -> Response {
    let document = client_metadata_document(state.config.public_base());
    let mut response = axum::Json(document).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

fn per_user(state: &AppState, server: &str) -> Option<std::sync::Arc<PerUser>> {
    let snapshot = state.snapshot.current();
    match &snapshot.servers.get(server)?.auth {
        UpstreamAuth::PerUser(auth) => Some(auth.clone()),
        _ => None,
    }
}

fn query(uri: &http::Uri) -> Form {
    Form::parse(uri.query().unwrap_or("").as_bytes(), &[]).unwrap_or_default()
}

/// The signed-in person in this browser, if any.
fn signed_in(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let snapshot = state.snapshot.current();
    authorize::session_user(state, &snapshot, headers).map(|(user, _)| user)
}

/// `GET /oauth/upstream/connect?ticket=…`: off to the upstream's authorization endpoint.
pub async fn connect(State(state): State<AppState>, request: Request) -> Response {
    let params = query(request.uri());
    let Some(ticket) = params
        .get("ticket")
        .and_then(|t| session::open::<Ticket>(&state.keyring, TICKET_PURPOSE, t, crate::now_ms()))
    else {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "this link has expired or was altered; call the tool again for a new one",
        );
    };
    let Some(auth) = per_user(&state, &ticket.server) else {
        return pages::error(
            StatusCode::NOT_FOUND,
            "this server no longer takes accounts of its own",
        );
    };
    if auth
        .registered_redirect_uri
        .as_deref()
        .is_some_and(|registered| registered != redirect_uri(&state))
    {
        // The client id was made for another public_url: the upstream would refuse the
        // callback, or send the person's code to an address Gatehouse no longer has.
        tracing::error!(
            server = %ticket.server,
            "public_url changed since Gatehouse registered at this server's authorization \
             server; run gatehouse servers update --per-user-discover"
        );
        return pages::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Gatehouse's address changed since it registered at this server; ask an operator \
             to register it again",
        );
    }
    match signed_in(&state, request.headers()) {
        None => {
            return pages::error(
                StatusCode::UNAUTHORIZED,
                "sign in to Gatehouse in this browser first (authorize your agent again), \
                 then open the link again",
            );
        }
        Some(user) if user != ticket.user => {
            return pages::error(
                StatusCode::FORBIDDEN,
                "this link was made for another person",
            );
        }
        Some(_) => {}
    }
    let (Ok(verifier), Ok(binding)) = (secrets::random_base62(64), secrets::random_base62(32))
    else {
        return pages::error(StatusCode::INTERNAL_SERVER_ERROR, "try again");
    };
    let sealed_state = session::seal(
        &state.keyring,
        STATE_PURPOSE,
        &ConnectState {
            user: ticket.user,
            server: ticket.server,
            verifier: verifier.clone(),
            binding: hex::encode(Sha256::digest(binding.as_bytes())),
        },
        crate::now_ms() + TICKET_TTL_MS,
    );
    use base64::Engine;
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("response_type", "code")
        .append_pair("client_id", &auth.client.client_id)
        .append_pair("redirect_uri", &redirect_uri(&state))
        .append_pair("state", &sealed_state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    if let Some(scope) = &auth.client.scope {
        query.append_pair("scope", scope);
    }
    if let Some(resource) = &auth.client.resource {
        query.append_pair("resource", resource);
    }
    let endpoint = &auth.authorization_endpoint;
    let separator = if endpoint.contains('?') { '&' } else { '?' };
    let mut response = pages::see_other(&format!("{endpoint}{separator}{}", query.finish()));
    let secure = if state.config.public_url.starts_with("https:") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{BINDING_COOKIE}={binding}; Path=/oauth/upstream; HttpOnly; SameSite=Lax; Max-Age=600{secure}"
    );
    if let Ok(value) = HeaderValue::try_from(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The upstream's answer at `/oauth/upstream/callback`, which the sign-in through an identity
/// provider shares: `None` when the `state` is not one of ours.
pub async fn callback(state: &AppState, uri: &http::Uri, headers: &HeaderMap) -> Option<Response> {
    let params = query(uri);
    let connect: ConnectState = params
        .get("state")
        .and_then(|s| session::open(&state.keyring, STATE_PURPOSE, s, crate::now_ms()))?;
    let bound = session::cookie(headers, BINDING_COOKIE)
        .is_some_and(|b| hex::encode(Sha256::digest(b.as_bytes())) == connect.binding);
    if !bound {
        return Some(pages::error(
            StatusCode::FORBIDDEN,
            "this connection was started in another browser",
        ));
    }
    if signed_in(state, headers).as_deref() != Some(connect.user.as_str()) {
        return Some(pages::error(
            StatusCode::FORBIDDEN,
            "sign in to Gatehouse as the person who started this connection",
        ));
    }
    if let Some(error) = params.get("error") {
        return Some(pages::error(
            StatusCode::FORBIDDEN,
            &format!("the server's authorization server refused ({error})"),
        ));
    }
    let Some(code) = params.get("code") else {
        return Some(pages::error(
            StatusCode::BAD_REQUEST,
            "the server's authorization server sent no code",
        ));
    };
    let Some(auth) = per_user(state, &connect.server) else {
        return Some(pages::error(
            StatusCode::NOT_FOUND,
            "this server no longer takes accounts of its own",
        ));
    };
    let redirect_uri = redirect_uri(state);
    let grant = Grant::AuthorizationCode {
        code,
        verifier: &connect.verifier,
        redirect_uri: &redirect_uri,
    };
    let redeemed = state
        .upstream_tokens
        .redeem(&state.store, &state.keyring, &auth, &connect.user, grant)
        .await;
    Some(match redeemed {
        Ok(()) => pages::page(
            StatusCode::OK,
            "Connected",
            &format!(
                "<h1>Connected</h1><p>Your account at <code>{}</code> is connected. Go back to \
                 your agent and retry.</p>",
                pages::escape(&connect.server)
            ),
        ),
        Err(why) => {
            tracing::warn!(server = %connect.server, why, "redeeming a person's upstream code failed");
            pages::error(
                StatusCode::BAD_GATEWAY,
                "the server's authorization server did not give a token; try again later",
            )
        }
    })
}
