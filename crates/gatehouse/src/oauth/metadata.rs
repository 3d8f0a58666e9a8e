//! Discovery documents: RFC 8414 authorization-server metadata (also served as OpenID-style
//! `openid-configuration`, which some MCP clients try first), RFC 9728 protected-resource
//! metadata per server, and the JWKS.

use axum::{
    Json,
    extract::{Path, State},
    response::{IntoResponse, Response},
};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::AppState;

/// Signing algorithms Gatehouse verifies in client assertions and issues tokens with.
pub const SIGNING_ALGS: [&str; 3] = ["EdDSA", "ES256", "RS256"];

pub fn authorization_server(base: &str, servers: &[&str], registration: bool, cimd: bool) -> Value {
    let mut scopes: Vec<String> = servers
        .iter()
        .flat_map(|s| [format!("mcp:{s}"), format!("mcp:{s}:read")])
        .collect();
    scopes.sort();
    let mut metadata = json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "jwks_uri": format!("{base}/oauth/jwks.json"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "introspection_endpoint": format!("{base}/oauth/introspect"),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_modes_supported": ["query"],
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported":
            ["EdDSA", "ES256", "ES384", "RS256", "PS256"],
        "revocation_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "introspection_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "dpop_signing_alg_values_supported": crate::tokens::dpop::SIGNING_ALGS,
        "client_id_metadata_document_supported": cimd,
        "scopes_supported": scopes,
    });
    if registration {
        metadata["registration_endpoint"] = json!(format!("{base}/oauth/register"));
    }
    metadata
}

fn cacheable(mut response: Response) -> Response {
    // Discovery changes rarely; a short cache saves clients a round trip without making a
    // configuration change wait long.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
        .headers_mut()
        .insert("access-control-allow-origin", HeaderValue::from_static("*"));
    response
}

pub async fn authorization_server_metadata(State(state): State<AppState>) -> Response {
    let snapshot = state.snapshot.current();
    let servers: Vec<&str> = snapshot.servers.keys().map(String::as_str).collect();
    let mut metadata = authorization_server(
        state.config.public_base(),
        &servers,
        state.config.oauth.registration
            != gatehouse_model::registration_mode::RegistrationMode::Off,
        state.config.oauth.client_metadata_documents,
    );
    advertise_jwt_bearer(&mut metadata, &state.config.oauth);
    cacheable(Json(metadata).into_response())
}

/// The jwt-bearer grant, when an IdP's ID-JAGs or a workload issuer's tokens are accepted
/// (RFC 8414 `grant_types_supported`); and the ID-JAG grant profile
/// (draft-ietf-oauth-identity-assertion-authz-grant §7.2) when an IdP's are.
pub fn advertise_jwt_bearer(metadata: &mut Value, oauth: &crate::config::OAuthConfig) {
    let id_jag = oauth.providers.iter().any(|p| p.accept_id_jag);
    if !id_jag && oauth.workload_issuers.is_empty() {
        return;
    }
    if let Some(grants) = metadata["grant_types_supported"].as_array_mut() {
        grants.push(json!(super::jwt_bearer::GRANT_TYPE));
    }
    if id_jag {
        metadata["authorization_grant_profiles_supported"] =
            json!(["urn:ietf:params:oauth:grant-profile:id-jag"]);
    }
}

pub async fn protected_resource_metadata(
    State(state): State<AppState>,
    Path(server): Path<String>,
) -> Response {
    let snapshot = state.snapshot.current();
    let Some(entry) = snapshot.servers.get(&server) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "not_found", "error_description": "unknown server" })),
        )
            .into_response();
    };
    // Gatehouse's own first (clients use the first), then external issuers this server trusts.
    let mut authorization_servers = vec![state.config.public_base().to_owned()];
    authorization_servers.extend(
        state
            .config
            .oauth
            .trusted_issuers
            .iter()
            .filter(|t| t.servers.contains(&server))
            .map(|t| t.issuer.clone()),
    );
    let body = json!({
        "resource": entry.resource,
        "authorization_servers": authorization_servers,
        "scopes_supported": [format!("mcp:{server}"), format!("mcp:{server}:read")],
        "bearer_methods_supported": ["header"],
        "resource_name": server,
        "dpop_signing_alg_values_supported": crate::tokens::dpop::SIGNING_ALGS,
        "dpop_bound_access_tokens_required": false,
    });
    cacheable(Json(body).into_response())
}

pub async fn jwks(State(state): State<AppState>) -> Response {
    let snapshot = state.snapshot.current();
    let mut response = snapshot.oauth.signing.jwks.to_string().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    // Short, because a rotation publishes the next key only `key_publish_lead` ahead.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
