//! The fetches behind finding a per-user upstream's authorization server (the decisions are in
//! `admin/upstream_registration.rs`): the protected-resource metadata of the upstream
//! (RFC 9728), the authorization server's metadata (RFC 8414, then OpenID discovery) with its
//! issuer checked, and RFC 7591 registration. The URLs are the operator's, so they go through
//! the upstream client (private CAs included), not the public-only fetcher of client metadata
//! documents.
//!
//! Metadata is kept per issuer for [`FRESH_FOR`], at most [`MAX_CACHED`] issuers (the oldest
//! forgotten first), so adding many servers of one provider fetches its metadata once.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::Full;
use parking_lot::Mutex;
use serde::Deserialize;

use super::client::UpstreamClient;
use crate::admin::upstream_registration::{
    AuthServerMetadata, Discovered, RegisteredClient, UpstreamRegistrar,
};
use gatehouse_model::upstream_auth::UpstreamClientAuth;

/// How long fetched metadata is used before it is fetched again.
pub const FRESH_FOR: Duration = Duration::from_secs(300);
/// The most issuers whose metadata is kept at once.
pub const MAX_CACHED: usize = 64;
/// The largest metadata or registration answer read.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// Fetches and registers over the upstream client, keeping metadata for a while.
pub struct Registrar {
    client: UpstreamClient,
    read_timeout: Duration,
    public_base: String,
    metadata: Mutex<MetadataCache>,
}

#[derive(Deserialize)]
struct ResourceMetadata {
    resource: String,
    #[serde(default)]
    authorization_servers: Vec<String>,
}

#[derive(Deserialize)]
struct RegistrationAnswer {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl Registrar {
    pub fn new(client: UpstreamClient, config: &crate::config::Config) -> Self {
        Self {
            client,
            read_timeout: config.gateway.upstream_read_timeout,
            public_base: config.public_base().to_owned(),
            metadata: Mutex::new(HashMap::new()),
        }
    }

    /// How many issuers' metadata is kept (tests).
    pub fn cached(&self) -> usize {
        self.metadata.lock().len()
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String> {
        let response = self
            .client
            .send(request)
            .await
            .map_err(|e| format!("unreachable ({e})"))?;
        let status = response.status();
        let body = super::read_whole(response.into_body(), MAX_DOCUMENT_BYTES, self.read_timeout)
            .await
            .map_err(|e| format!("answer unreadable ({e})"))?;
        Ok((status, body))
    }

    /// The first of `urls` that answers 200 with a document `T`; `None` if each is missing.
    async fn first_document<T: serde::de::DeserializeOwned>(
        &self,
        urls: &[String],
    ) -> Result<Option<(String, T)>, String> {
        for url in urls {
            let request = Request::builder()
                .method(Method::GET)
                .uri(url.as_str())
                .header(header::ACCEPT, "application/json")
                .body(Full::new(Bytes::new()))
                .map_err(|e| format!("{url}: {e}"))?;
            let (status, body) = self
                .send(request)
                .await
                .map_err(|why| format!("{url}: {why}"))?;
            if status == StatusCode::NOT_FOUND {
                continue;
            }
            if !status.is_success() {
                return Err(format!("{url} answered {status}"));
            }
            let document = serde_json::from_slice(&body)
                .map_err(|e| format!("{url} is not the metadata expected ({e})"))?;
            return Ok(Some((url.clone(), document)));
        }
        Ok(None)
    }

    async fn issuer_metadata(&self, issuer: &str) -> Result<Arc<AuthServerMetadata>, String> {
        if let Some((fetched, metadata)) = self.metadata.lock().get(issuer)
            && fetched.elapsed() < FRESH_FOR
        {
            return Ok(metadata.clone());
        }
        let urls = metadata_urls(issuer)?;
        let Some((url, metadata)) = self.first_document::<AuthServerMetadata>(&urls).await? else {
            return Err(format!(
                "no authorization server metadata for issuer {issuer} (404 at {})",
                urls.join(", ")
            ));
        };
        if same_url(&metadata.issuer) != same_url(issuer) {
            return Err(format!(
                "the metadata at {url} names issuer {:?}, not {issuer:?}; refused (RFC 8414 §3.3)",
                metadata.issuer
            ));
        }
        let metadata = Arc::new(metadata);
        remember(
            &mut self.metadata.lock(),
            issuer,
            metadata.clone(),
            Instant::now(),
        );
        Ok(metadata)
    }

    /// The authorization server the resource's metadata names, and the resource it states.
    async fn resource_issuer(&self, resource: &str) -> Result<(String, String), String> {
        let (origin, path) = split(resource)?;
        let mut urls = vec![format!(
            "{origin}/.well-known/oauth-protected-resource{path}"
        )];
        if !path.is_empty() {
            urls.push(format!("{origin}/.well-known/oauth-protected-resource"));
        }
        let mut found = self.first_document::<ResourceMetadata>(&urls).await?;
        if found.is_none()
            && let Some(named) = self.named_by_challenge(resource).await
        {
            found = self
                .first_document::<ResourceMetadata>(std::slice::from_ref(&named))
                .await?;
            urls.push(named);
        }
        let Some((url, document)) = found else {
            return Err(format!(
                "no protected resource metadata for {resource} (404 at {}, and no \
                 resource_metadata in its 401); name the authorization server's issuer instead",
                urls.join(", ")
            ));
        };
        let stated = same_url(&document.resource);
        if stated != same_url(resource) && stated != same_url(&origin) {
            return Err(format!(
                "the metadata at {url} is for resource {:?}, not {resource:?}; refused \
                 (RFC 9728 §3.3)",
                document.resource
            ));
        }
        let issuer = document
            .authorization_servers
            .into_iter()
            .next()
            .ok_or_else(|| format!("the metadata at {url} names no authorization_servers"))?;
        Ok((issuer, document.resource))
    }

    /// The `resource_metadata` URL of the `WWW-Authenticate` challenge the MCP server answers
    /// an unauthenticated `initialize` with (RFC 9728 §5.1), if it names one.
    async fn named_by_challenge(&self, resource: &str) -> Option<String> {
        let body = serde_json::json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": { "name": "gatehouse", "version": env!("CARGO_PKG_VERSION") }
            }
        });
        let request = Request::builder()
            .method(Method::POST)
            .uri(resource)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .body(Full::new(Bytes::from(body.to_string())))
            .ok()?;
        let response = self.client.send(request).await.ok()?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return None;
        }
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)?
            .to_str()
            .ok()?;
        let named = resource_metadata_parameter(challenge)?;
        split(&named).ok()?;
        Some(named)
    }
}

/// The `resource_metadata="…"` parameter of a Bearer challenge.
fn resource_metadata_parameter(challenge: &str) -> Option<String> {
    let start = challenge.find("resource_metadata=\"")? + "resource_metadata=\"".len();
    let rest = &challenge[start..];
    Some(rest[..rest.find('"')?].to_owned())
}

#[async_trait]
impl UpstreamRegistrar for Registrar {
    fn public_base(&self) -> &str {
        &self.public_base
    }

    async fn discover(&self, issuer: Option<&str>, resource: &str) -> Result<Discovered, String> {
        let (issuer, stated_resource) = match issuer {
            Some(issuer) => (issuer.to_owned(), None),
            None => {
                let (issuer, resource) = self.resource_issuer(resource).await?;
                (issuer, Some(resource))
            }
        };
        Ok(Discovered {
            metadata: self.issuer_metadata(&issuer).await?,
            resource: stated_resource,
        })
    }

    async fn register(
        &self,
        endpoint: &str,
        body: &serde_json::Value,
    ) -> Result<RegisteredClient, String> {
        let asked = body["token_endpoint_auth_method"]
            .as_str()
            .unwrap_or("none")
            .to_owned();
        let request = Request::builder()
            .method(Method::POST)
            .uri(endpoint)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| format!("request: {e}"))?;
        let (status, answer) = self.send(request).await?;
        if !status.is_success() {
            let why = serde_json::from_slice::<ErrorAnswer>(&answer)
                .map(|e| match e.error_description {
                    Some(text) => format!("{}: {}", e.error, clip(&text)),
                    None => e.error,
                })
                .unwrap_or_default();
            return Err(format!("answered {status} {why}").trim_end().to_owned());
        }
        let answer: RegistrationAnswer = serde_json::from_slice(&answer)
            .map_err(|_| "the answer is not a client registration".to_owned())?;
        if answer.client_id.trim().is_empty() {
            return Err("the answer has an empty client_id".into());
        }
        let method = answer.token_endpoint_auth_method.unwrap_or(asked);
        let auth_method = match method.parse::<UpstreamClientAuth>() {
            Ok(UpstreamClientAuth::PrivateKeyJwt) | Err(_) => {
                return Err(format!(
                    "the client was registered with token_endpoint_auth_method {method:?}, \
                     which Gatehouse cannot use"
                ));
            }
            Ok(method) => method,
        };
        let client_secret = answer.client_secret.filter(|s| !s.is_empty());
        if auth_method != UpstreamClientAuth::None && client_secret.is_none() {
            return Err(format!("{method} was registered without a client_secret"));
        }
        Ok(RegisteredClient {
            client_id: answer.client_id,
            // A public client keeps no secret, even when one is sent.
            client_secret: client_secret.filter(|_| auth_method != UpstreamClientAuth::None),
            auth_method,
        })
    }
}

type MetadataCache = HashMap<String, (Instant, Arc<AuthServerMetadata>)>;

/// Keeps `metadata` for `issuer`, forgetting the oldest entry when [`MAX_CACHED`] are kept.
fn remember(
    cache: &mut MetadataCache,
    issuer: &str,
    metadata: Arc<AuthServerMetadata>,
    now: Instant,
) {
    if cache.len() >= MAX_CACHED && !cache.contains_key(issuer) {
        let oldest = cache
            .iter()
            .min_by_key(|(_, (fetched, _))| *fetched)
            .map(|(key, _)| key.clone());
        if let Some(oldest) = oldest {
            cache.remove(&oldest);
        }
    }
    cache.insert(issuer.to_owned(), (now, metadata));
}

/// The origin (`scheme://authority`) and the path without its trailing slash.
fn split(url: &str) -> Result<(String, String), String> {
    let uri: Uri = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(format!("{url:?} is not an absolute URL"));
    };
    Ok((
        format!("{scheme}://{authority}"),
        uri.path().trim_end_matches('/').to_owned(),
    ))
}

/// Where an issuer's metadata may be: RFC 8414 §3.1 (the well-known suffix before the
/// issuer's path), then OpenID discovery with the suffix inserted and appended, as the MCP
/// authorization specification lists them.
fn metadata_urls(issuer: &str) -> Result<Vec<String>, String> {
    let (origin, path) = split(issuer)?;
    Ok(if path.is_empty() {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server"),
            format!("{origin}/.well-known/openid-configuration"),
        ]
    } else {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{origin}/.well-known/openid-configuration{path}"),
            format!("{origin}{path}/.well-known/openid-configuration"),
        ]
    })
}

/// A URL compared without a trailing slash (`https://as.example/` is `https://as.example`).
fn same_url(url: &str) -> &str {
    url.trim_end_matches('/')
}

fn clip(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issuers_metadata_is_looked_for_where_rfc_8414_and_openid_discovery_put_it() {
        assert_eq!(
            metadata_urls("https://as.example/").unwrap(),
            [
                "https://as.example/.well-known/oauth-authorization-server",
                "https://as.example/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            metadata_urls("https://as.example/tenant/1").unwrap(),
            [
                "https://as.example/.well-known/oauth-authorization-server/tenant/1",
                "https://as.example/.well-known/openid-configuration/tenant/1",
                "https://as.example/tenant/1/.well-known/openid-configuration"
            ]
        );
        assert!(metadata_urls("as.example").is_err());
    }

    #[test]
    fn the_resource_metadata_url_is_read_from_a_bearer_challenge() {
        assert_eq!(
            resource_metadata_parameter(
                r#"Bearer error="invalid_token", resource_metadata="https://mcp.example/prm""#
            )
            .as_deref(),
            Some("https://mcp.example/prm")
        );
        assert_eq!(resource_metadata_parameter(r#"Bearer realm="x""#), None);
        assert_eq!(
            resource_metadata_parameter(r#"Bearer resource_metadata="open"#),
            None
        );
    }

    #[test]
    fn at_most_max_cached_issuers_are_kept_and_the_oldest_goes_first() {
        let metadata = |issuer: &str| {
            Arc::new(AuthServerMetadata {
                issuer: issuer.into(),
                authorization_endpoint: format!("{issuer}/authorize"),
                token_endpoint: format!("{issuer}/token"),
                revocation_endpoint: None,
                registration_endpoint: None,
                code_challenge_methods_supported: vec!["S256".into()],
                token_endpoint_auth_methods_supported: None,
                client_id_metadata_document_supported: false,
            })
        };
        let start = Instant::now();
        let mut cache = MetadataCache::new();
        for n in 0..MAX_CACHED {
            let issuer = format!("https://as{n}.example");
            let at = start + Duration::from_secs(n as u64);
            remember(&mut cache, &issuer, metadata(&issuer), at);
        }
        assert_eq!(cache.len(), MAX_CACHED);
        // Fetched again: replaced in place, nothing forgotten.
        remember(
            &mut cache,
            "https://as5.example",
            metadata("https://as5.example"),
            start + Duration::from_secs(500),
        );
        assert_eq!(cache.len(), MAX_CACHED);
        remember(
            &mut cache,
            "https://new.example",
            metadata("https://new.example"),
            start + Duration::from_secs(600),
        );
        assert_eq!(cache.len(), MAX_CACHED);
        assert!(
            !cache.contains_key("https://as0.example"),
            "the oldest is forgotten"
        );
        assert!(cache.contains_key("https://as1.example"));
        assert!(cache.contains_key("https://new.example"));
    }
}
