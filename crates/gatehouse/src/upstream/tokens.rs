//! Tokens Gatehouse fetches for upstreams with OAuth client credentials (RFC 6749 §4.4;
//! ADR 0006 §5): fetched on first use, kept in [`crate::state::upstream_tokens`], refreshed
//! at 80 % of their lifetime with one fetch in flight per key (the others keep using the
//! current token), and when a refresh fails the current token is used until it expires.

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, header};
use http_body_util::Full;
use parking_lot::Mutex;
use serde::Deserialize;

use super::{client::UpstreamClient, read_whole};
use crate::{
    error::GatewayError,
    snapshot::upstream_auth::{ClientCredentials, ClientSecret},
    state::upstream_tokens::{UpstreamToken, UpstreamTokens},
    tokens::jwt,
};

/// Lifetime assumed for a token whose response names none (RFC 6749 makes `expires_in`
/// optional): short, so a revoked one is not used for long.
const LIFETIME_UNSTATED_MS: i64 = 5 * 60 * 1000;
/// A token response larger than this is not a token response.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// What a token is asked for with.
pub enum Grant<'a> {
    /// OAuth client credentials: one token for every caller.
    ClientCredentials,
    /// RFC 8693 token exchange for `user`; `subject_token` signs Gatehouse's assertion of
    /// the caller, only when a token must be fetched.
    Exchange {
        user: &'a str,
        subject_token: &'a (dyn Fn() -> Result<String, String> + Sync),
    },
    /// A person's authorization code from the upstream's OAuth flow, with its PKCE verifier.
    AuthorizationCode {
        code: &'a str,
        verifier: &'a str,
        redirect_uri: &'a str,
    },
    /// A person's refresh token.
    Refresh { refresh_token: &'a str },
}

/// A token response as the per-user flow keeps it.
pub struct Received {
    pub token: UpstreamToken,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    /// Whether the response named the token's lifetime (else it is kept as long as it works).
    pub lifetime_stated: bool,
}

/// Fetches and keeps upstream tokens; one per process, shared by every request.
pub struct TokenBroker {
    kept: Arc<dyn UpstreamTokens>,
    client: UpstreamClient,
    /// One lock per key: whoever holds it fetches; the rest wait for its token (no token
    /// yet) or use the current one (a refresh).
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    read_timeout: Duration,
}

impl TokenBroker {
    pub fn new(
        kept: Arc<dyn UpstreamTokens>,
        client: UpstreamClient,
        read_timeout: Duration,
    ) -> Self {
        Self {
            kept,
            client,
            flights: Mutex::new(HashMap::new()),
            read_timeout,
        }
    }

    /// The `Authorization` value for a call to the upstream these settings reach.
    pub async fn authorization(
        &self,
        auth: &ClientCredentials,
    ) -> Result<HeaderValue, GatewayError> {
        self.authorization_for(auth, &Grant::ClientCredentials)
            .await
    }

    /// As [`TokenBroker::authorization`], for `grant`: a person's exchanged token is kept
    /// under that person.
    pub async fn authorization_for(
        &self,
        auth: &ClientCredentials,
        grant: &Grant<'_>,
    ) -> Result<HeaderValue, GatewayError> {
        let token = self.token(auth, grant).await?;
        let mut value = HeaderValue::try_from(format!("Bearer {}", token.access_token))
            .map_err(|_| GatewayError::UpstreamCredentialUnavailable)?;
        value.set_sensitive(true);
        Ok(value)
    }

    async fn token(
        &self,
        auth: &ClientCredentials,
        grant: &Grant<'_>,
    ) -> Result<UpstreamToken, GatewayError> {
        let key = match grant {
            Grant::ClientCredentials => auth.cache_key.clone(),
            Grant::Exchange { user, .. } => format!("{}#{user}", auth.cache_key),
            // Kept in the store per person, never under the server's key.
            Grant::AuthorizationCode { .. } | Grant::Refresh { .. } => {
                return Err(GatewayError::UpstreamCredentialUnavailable);
            }
        };
        let key = key.as_str();
        let kept = self.kept(key).await?;
        let now = crate::now_ms();
        if let Some(token) = &kept
            && token.is_fresh(now)
        {
            return Ok(token.clone());
        }
        let flight = self.flight(key);
        let guard = match &kept {
            // Due for refresh but still good: only the caller that gets the lock refreshes.
            Some(token) if token.is_live(now) => match flight.try_lock() {
                Ok(guard) => guard,
                Err(_) => return Ok(token.clone()),
            },
            _ => flight.lock().await,
        };
        // Someone may have fetched while this caller waited.
        if let Some(token) = self.kept(key).await?
            && token.is_fresh(crate::now_ms())
        {
            return Ok(token);
        }
        let fetched = self.fetch(auth, grant).await;
        drop(guard);
        match fetched {
            Ok(token) => {
                // A store that cannot keep it costs a fetch next time, not this call.
                let _kept = self.kept.put(key, token.clone()).await;
                Ok(token)
            }
            Err(why) => {
                tracing::warn!(token_endpoint = %auth.token_endpoint, why, "upstream token request failed");
                match kept {
                    Some(token) if token.is_live(crate::now_ms()) => Ok(token),
                    _ => Err(GatewayError::UpstreamCredentialUnavailable),
                }
            }
        }
    }

    async fn kept(&self, key: &str) -> Result<Option<UpstreamToken>, GatewayError> {
        self.kept
            .get(key)
            .await
            .map_err(|_| GatewayError::StateUnavailable)
    }

    pub(super) fn flight(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.flights
            .lock()
            .entry(key.to_owned())
            .or_default()
            .clone()
    }

    /// One token request; the error is for the log (never the secret or the response body).
    async fn fetch(
        &self,
        auth: &ClientCredentials,
        grant: &Grant<'_>,
    ) -> Result<UpstreamToken, String> {
        self.fetch_received(auth, grant).await.map(|r| r.token)
    }

    /// One token request, with what the per-user flow keeps besides the access token.
    pub(super) async fn fetch_received(
        &self,
        auth: &ClientCredentials,
        grant: &Grant<'_>,
    ) -> Result<Received, String> {
        let request = token_request(auth, grant)?;
        let asked = crate::now_ms();
        let response = self
            .client
            .send(request)
            .await
            .map_err(|e| format!("token endpoint unreachable: {e}"))?;
        let status = response.status();
        let body = read_whole(response.into_body(), MAX_RESPONSE_BYTES, self.read_timeout)
            .await
            .map_err(|e| format!("token response: {e}"))?;
        if !status.is_success() {
            let error = serde_json::from_slice::<ErrorResponse>(&body)
                .map(|e| e.error)
                .unwrap_or_default();
            return Err(format!("token endpoint answered {status} {error}"));
        }
        let answer: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| "token response is not a token".to_owned())?;
        if !answer.token_type.eq_ignore_ascii_case("bearer") {
            return Err(format!("token type {:?} is not Bearer", answer.token_type));
        }
        // RFC 8693 §2.2.1: an exchange names what it issued. Only the access token asked for
        // may go upstream as one; an ID token or an assertion must not.
        if matches!(grant, Grant::Exchange { .. })
            && answer.issued_token_type.as_deref() != Some(ACCESS_TOKEN_TYPE)
        {
            return Err(format!(
                "the exchange issued {:?}, not an access token",
                answer.issued_token_type
            ));
        }
        if answer.access_token.is_empty()
            || HeaderValue::try_from(format!("Bearer {}", answer.access_token)).is_err()
        {
            return Err("access token cannot go in a header".into());
        }
        let lifetime_ms = answer
            .expires_in
            .map_or(LIFETIME_UNSTATED_MS, |s| s.saturating_mul(1000));
        Ok(Received {
            token: UpstreamToken::received(&answer.access_token, asked, lifetime_ms),
            refresh_token: answer.refresh_token.filter(|t| !t.is_empty()),
            scope: answer.scope,
            lifetime_stated: answer.expires_in.is_some(),
        })
    }

    pub(super) fn http(&self) -> (&UpstreamClient, Duration) {
        (&self.client, self.read_timeout)
    }
}

/// The token request for `auth`, built apart from the async fetch: the form serializer is
/// not `Send`.
pub(super) fn token_request(
    auth: &ClientCredentials,
    grant: &Grant<'_>,
) -> Result<Request<Full<Bytes>>, String> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    match grant {
        Grant::ClientCredentials => {
            form.append_pair("grant_type", "client_credentials");
        }
        Grant::Exchange { subject_token, .. } => {
            form.append_pair("grant_type", TOKEN_EXCHANGE);
            form.append_pair("subject_token", &subject_token()?);
            form.append_pair("subject_token_type", JWT_TOKEN_TYPE);
            form.append_pair("requested_token_type", ACCESS_TOKEN_TYPE);
        }
        Grant::AuthorizationCode {
            code,
            verifier,
            redirect_uri,
        } => {
            form.append_pair("grant_type", "authorization_code");
            form.append_pair("code", code);
            form.append_pair("redirect_uri", redirect_uri);
            form.append_pair("code_verifier", verifier);
        }
        Grant::Refresh { refresh_token } => {
            form.append_pair("grant_type", "refresh_token");
            form.append_pair("refresh_token", refresh_token);
        }
    }
    // The code and refresh grants keep the scope the person granted (RFC 6749 §4.1.3, §6).
    if let (Some(scope), Grant::ClientCredentials | Grant::Exchange { .. }) = (&auth.scope, grant) {
        form.append_pair("scope", scope);
    }
    if let Some(resource) = &auth.resource {
        form.append_pair("resource", resource);
    }
    let request = Request::builder()
        .method(Method::POST)
        .uri(auth.token_endpoint.clone())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json");
    let request = authenticate(auth, request, &mut form)?;
    request
        .body(Full::new(Bytes::from(form.finish())))
        .map_err(|e| format!("request: {e}"))
}

/// Gatehouse's client authentication, in the header or the form as configured.
pub(super) fn authenticate(
    auth: &ClientCredentials,
    mut request: http::request::Builder,
    form: &mut form_urlencoded::Serializer<'_, String>,
) -> Result<http::request::Builder, String> {
    match &auth.secret {
        ClientSecret::Basic(secret) => {
            request = request.header(header::AUTHORIZATION, basic(&auth.client_id, secret)?);
        }
        ClientSecret::Post(secret) => {
            form.append_pair("client_id", &auth.client_id);
            form.append_pair("client_secret", secret);
        }
        ClientSecret::PrivateKeyJwt(key) => {
            form.append_pair("client_id", &auth.client_id);
            form.append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE);
            form.append_pair("client_assertion", &client_assertion(auth, key)?);
        }
        ClientSecret::Public => {
            form.append_pair("client_id", &auth.client_id);
        }
    }
    Ok(request)
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    /// RFC 8693 §2.2.1, in an exchange's answer.
    issued_token_type: Option<String>,
    expires_in: Option<i64>,
    refresh_token: Option<String>,
    scope: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    #[serde(default)]
    error: String,
}

/// RFC 6749 §2.3.1: id and secret form-encoded, then Basic.
pub(super) fn basic(client_id: &str, secret: &str) -> Result<HeaderValue, String> {
    use base64::Engine;
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(client_id), encode(secret));
    let mut value = HeaderValue::try_from(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    ))
    .map_err(|_| "client credentials cannot go in a header".to_owned())?;
    value.set_sensitive(true);
    Ok(value)
}

/// RFC 7523 §3: issued by and about the client, for the token endpoint, short-lived, unique.
fn client_assertion(
    auth: &ClientCredentials,
    key: &crate::tokens::keys::SigningKey,
) -> Result<String, String> {
    let now = crate::now_ms() / 1000;
    let jti = crate::secrets::random_id(24).map_err(|e| format!("randomness: {e}"))?;
    let claims = serde_json::json!({
        "iss": auth.client_id,
        "sub": auth.client_id,
        "aud": auth.token_endpoint.to_string(),
        "iat": now,
        "exp": now + 60,
        "jti": jti,
    });
    jwt::encode(key, None, &claims).map_err(|e| format!("client assertion: {e}"))
}
