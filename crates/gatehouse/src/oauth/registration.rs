//! RFC 7591 dynamic client registration, off unless configured (`oauth.registration`).
//!
//! A registered client is a public or confidential *agent*: it can only run the
//! authorization-code flow, so everything it reaches needs a signed-in user's consent and is
//! bounded by that user's groups. It gets no connection of its own.

use axum::{
    Json,
    body::Body,
    extract::{Request, State},
    response::{IntoResponse, Response},
};
use http::{HeaderMap, Method, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{AppState, error::OAuthError, oauth::clients, secrets};
use gatehouse_model::{
    names::{ApplicationType, RedirectUri},
    records::{ClientRecord, OAuthClientMetadata},
    registration_mode::RegistrationMode,
};

const MAX_BODY: usize = 16 * 1024;
const MAX_REDIRECT_URIS: usize = 10;

#[derive(Debug, Deserialize)]
struct RegistrationRequest {
    #[serde(default)]
    redirect_uris: Vec<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    application_type: Option<String>,
    client_name: Option<String>,
    /// RFC 9449 §5.2.
    dpop_bound_access_tokens: Option<bool>,
}

pub async fn register(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    match handle(&state, &parts.method, &parts.headers, body).await {
        Ok(body) => {
            let mut response = (StatusCode::CREATED, Json(body)).into_response();
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                http::HeaderValue::from_static("no-store"),
            );
            response
        }
        Err(err) => err.into_response(),
    }
}

fn authorized(state: &AppState, headers: &HeaderMap) -> Result<(), OAuthError> {
    match state.config.oauth.registration {
        RegistrationMode::Open => Ok(()),
        RegistrationMode::Token => {
            let presented = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
                .unwrap_or("");
            let expected = state
                .config
                .oauth
                .registration_token_sha256
                .as_deref()
                .and_then(|h| hex::decode(h).ok())
                .unwrap_or_default();
            let digest = Sha256::digest(presented.as_bytes());
            if !presented.is_empty() && bool::from(digest.as_slice().ct_eq(&expected)) {
                Ok(())
            } else {
                Err(OAuthError::RegistrationForbidden(
                    "registration needs a valid initial access token".into(),
                ))
            }
        }
        _ => Err(OAuthError::RegistrationForbidden(
            "dynamic client registration is turned off; ask an operator to register the client"
                .into(),
        )),
    }
}

async fn handle(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    body: Body,
) -> Result<serde_json::Value, OAuthError> {
    if method != Method::POST {
        return Err(OAuthError::MethodNotAllowed);
    }
    authorized(state, headers)?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return Err(OAuthError::InvalidClientMetadata(
            "the registration request must be JSON".into(),
        ));
    }
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(OAuthError::PayloadTooLarge { limit: MAX_BODY }),
    };
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| OAuthError::InvalidClientMetadata("the body is not UTF-8".into()))?;
    let value = gatehouse_model::jsonrpc::strict_value(text).map_err(|_| {
        OAuthError::InvalidClientMetadata(
            "the body is not a JSON object without duplicate keys".into(),
        )
    })?;
    let request: RegistrationRequest = serde_json::from_value(value)
        .map_err(|e| OAuthError::InvalidClientMetadata(e.to_string()))?;
    let metadata = validate(request)?;
    let name = format!(
        "dcr_{}",
        secrets::random_id(16).map_err(|_| OAuthError::ServerError)?
    );
    let now = crate::now_ms();
    let record = ClientRecord {
        name: name.clone(),
        description: format!(
            "registered dynamically{}",
            metadata
                .client_name
                .as_deref()
                .map(|n| format!(" as {n:?}"))
                .unwrap_or_default()
        ),
        disabled_at: None,
        created_at: now,
        oauth: Some(metadata.clone()),
    };
    let failed = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "storing a registered client failed");
        OAuthError::ServerError
    };
    state.store.insert_client(&record).await.map_err(failed)?;
    let secret = if metadata.token_endpoint_auth_method == "none" {
        None
    } else {
        let (secret, row) = clients::mint_secret(&state.keyring, &name, None)
            .map_err(|_| OAuthError::ServerError)?;
        state
            .store
            .insert_client_secret(&row)
            .await
            .map_err(failed)?;
        Some(secret)
    };
    // Usable by this replica's very next request (others follow within a poll interval).
    if let Err(err) = state.snapshot.reload().await {
        tracing::error!(error = %err, "snapshot reload after registration failed");
    }
    let mut body = json!({
        "client_id": name,
        "client_id_issued_at": now / 1000,
        "redirect_uris": metadata.redirect_uris,
        "grant_types": metadata.grant_types,
        "response_types": ["code"],
        "token_endpoint_auth_method": metadata.token_endpoint_auth_method,
        "application_type": metadata.application_type,
    });
    if let Some(client_name) = &metadata.client_name {
        body["client_name"] = json!(client_name);
    }
    if metadata.dpop_bound_access_tokens {
        body["dpop_bound_access_tokens"] = json!(true);
    }
    if let Some(secret) = secret {
        body["client_secret"] = json!(secret);
        body["client_secret_expires_at"] = json!(0);
    }
    Ok(body)
}

fn validate(request: RegistrationRequest) -> Result<OAuthClientMetadata, OAuthError> {
    let auth_method = request
        .token_endpoint_auth_method
        .unwrap_or_else(|| "client_secret_basic".into());
    if !["none", "client_secret_basic", "client_secret_post"].contains(&auth_method.as_str()) {
        return Err(OAuthError::InvalidClientMetadata(format!(
            "token_endpoint_auth_method {auth_method} is not supported"
        )));
    }
    let grant_types = request
        .grant_types
        .unwrap_or_else(|| vec!["authorization_code".into()]);
    if grant_types.is_empty()
        || grant_types
            .iter()
            .any(|g| g != "authorization_code" && g != "refresh_token")
    {
        return Err(OAuthError::InvalidClientMetadata(
            "registered clients may use authorization_code and refresh_token only".into(),
        ));
    }
    if request
        .response_types
        .is_some_and(|types| types.iter().any(|t| t != "code"))
    {
        return Err(OAuthError::InvalidClientMetadata(
            "response_types may only contain code".into(),
        ));
    }
    let application_type = request.application_type.unwrap_or_else(|| "web".into());
    if application_type != "web" && application_type != "native" {
        return Err(OAuthError::InvalidClientMetadata(
            "application_type must be web or native".into(),
        ));
    }
    if request.redirect_uris.is_empty() || request.redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(OAuthError::InvalidRedirectUri(format!(
            "register between 1 and {MAX_REDIRECT_URIS} redirect_uris"
        )));
    }
    for uri in &request.redirect_uris {
        let application = if application_type == "native" {
            ApplicationType::Native
        } else {
            ApplicationType::Web
        };
        RedirectUri::parse(uri, application)
            .map_err(|e| OAuthError::InvalidRedirectUri(e.to_string()))?;
    }
    let client_name = request
        .client_name
        .map(|n| n.chars().filter(|c| !c.is_control()).take(100).collect());
    Ok(OAuthClientMetadata {
        token_endpoint_auth_method: auth_method,
        grant_types,
        redirect_uris: request.redirect_uris,
        application_type: Some(application_type),
        jwks: None,
        client_name,
        origin: "dcr".into(),
        dpop_bound_access_tokens: request.dpop_bound_access_tokens.unwrap_or(false),
    })
}
