//! How Gatehouse becomes a client of a per-user upstream's authorization server when the
//! operator does not give every endpoint and a client id (ADR 0006 §5, "As built"): the
//! endpoints are found by the server's metadata (RFC 8414, OpenID discovery as fallback;
//! the issuer from the operator, or from the upstream's protected-resource metadata,
//! RFC 9728), and the client is, in the MCP authorization specification's order of
//! preference, the operator's pre-registered one, Gatehouse's client metadata document, or
//! one registered dynamically (RFC 7591).
//!
//! It runs when an operator adds or changes the server, so a failure is the operator's
//! error at once, never a person's at their first call. The fetching is the transport's
//! ([`UpstreamRegistrar`], `upstream/registration.rs`); what is chosen, and why a server is
//! refused, is decided here.

use async_trait::async_trait;
use serde::Deserialize;

use super::{AdminError, AdminResult, upstream_auth::NewUpstreamAuth};
use crate::secrets::Keyring;
use gatehouse_model::upstream_auth::{
    ClientRegistration, UpstreamAuthRecord, UpstreamAuthSpec, UpstreamClientAuth,
};

/// Where Gatehouse serves its client metadata document, under `public_url`.
pub const CLIENT_METADATA_PATH: &str = "/oauth/upstream/client-metadata.json";
/// The callback every upstream authorization server redirects people back to.
pub const CALLBACK_PATH: &str = "/oauth/upstream/callback";

/// A per-user server whose authorization server Gatehouse finds by itself.
#[derive(Debug, Clone, Default)]
pub struct PerUserDiscovery {
    /// The authorization server's issuer; absent: named by the protected-resource metadata
    /// of `resource` (or of the server's URL).
    pub issuer: Option<String>,
    /// A client id the operator registered; absent: metadata document or dynamic
    /// registration, whichever the authorization server offers.
    pub client_id: Option<String>,
    /// How a pre-registered client authenticates (default `none`, a public client).
    pub auth_method: Option<UpstreamClientAuth>,
    /// The pre-registered client's secret.
    pub secret: Option<String>,
    pub scope: Option<String>,
    /// RFC 8707 resource indicator; absent: the one the protected-resource metadata names.
    pub resource: Option<String>,
}

/// The parts of RFC 8414 authorization-server metadata Gatehouse uses.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    #[serde(default)]
    pub registration_endpoint: Option<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub client_id_metadata_document_supported: bool,
}

/// What discovery found.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub metadata: std::sync::Arc<AuthServerMetadata>,
    /// The resource the protected-resource metadata names, when it was read.
    pub resource: Option<String>,
}

/// A client registered by RFC 7591.
#[derive(Debug, Clone)]
pub struct RegisteredClient {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub auth_method: UpstreamClientAuth,
}

/// The network half: fetching metadata and registering. Errors are sentences for the operator.
#[async_trait]
pub trait UpstreamRegistrar: Send + Sync {
    /// Gatehouse's public base URL (no trailing slash).
    fn public_base(&self) -> &str;
    /// The authorization server's metadata: `issuer`'s, or that of the server named by the
    /// protected-resource metadata of `resource`. The document's issuer is checked.
    async fn discover(&self, issuer: Option<&str>, resource: &str) -> Result<Discovered, String>;
    /// One RFC 7591 registration.
    async fn register(
        &self,
        endpoint: &str,
        request: &serde_json::Value,
    ) -> Result<RegisteredClient, String>;
}

fn unusable(why: impl std::fmt::Display) -> AdminError {
    AdminError::UpstreamAuthorizationServer(why.to_string())
}

/// The settings (and the secret to seal) for `server` at `server_url`, discovered and, when
/// needed, registered. A dynamic registration already stored in `previous` for the same
/// issuer and callback is reused rather than made again.
pub async fn resolve(
    registrar: &dyn UpstreamRegistrar,
    keyring: &Keyring,
    server: &str,
    server_url: &str,
    discovery: PerUserDiscovery,
    previous: Option<&UpstreamAuthRecord>,
) -> AdminResult<NewUpstreamAuth> {
    if let Some(issuer) = &discovery.issuer {
        super::upstream_auth::check_endpoint("issuer", issuer)?;
    }
    let resource_url = discovery.resource.as_deref().unwrap_or(server_url);
    super::upstream_auth::check_endpoint("resource", resource_url)?;
    let found = registrar
        .discover(discovery.issuer.as_deref(), resource_url)
        .await
        .map_err(unusable)?;
    let metadata = &found.metadata;
    if !metadata
        .code_challenge_methods_supported
        .iter()
        .any(|m| m == "S256")
    {
        return Err(unusable(format!(
            "the authorization server {} does not list S256 in \
             code_challenge_methods_supported; Gatehouse needs PKCE S256",
            metadata.issuer
        )));
    }
    for (what, url) in [
        (
            "authorization endpoint",
            Some(&metadata.authorization_endpoint),
        ),
        ("token endpoint", Some(&metadata.token_endpoint)),
        ("revocation endpoint", metadata.revocation_endpoint.as_ref()),
        (
            "registration endpoint",
            metadata.registration_endpoint.as_ref(),
        ),
    ] {
        if let Some(url) = url {
            super::upstream_auth::check_endpoint(what, url).map_err(unusable)?;
        }
    }
    let base = registrar.public_base();
    let callback = format!("{base}{CALLBACK_PATH}");
    let (registration, client_id, auth_method, secret) = match discovery.client_id {
        Some(client_id) => (
            ClientRegistration::PreRegistered,
            client_id,
            discovery
                .auth_method
                .unwrap_or(if discovery.secret.is_some() {
                    UpstreamClientAuth::ClientSecretBasic
                } else {
                    UpstreamClientAuth::None
                }),
            discovery.secret,
        ),
        None if discovery.secret.is_some() => {
            return Err(AdminError::Invalid(
                "a client secret goes with the client id it belongs to".into(),
            ));
        }
        None if metadata.client_id_metadata_document_supported => (
            ClientRegistration::MetadataDocument,
            format!("{base}{CLIENT_METADATA_PATH}"),
            UpstreamClientAuth::None,
            None,
        ),
        None => match &metadata.registration_endpoint {
            Some(endpoint) => {
                let client = match reusable(keyring, server, previous, metadata, &callback) {
                    Some(client) => client,
                    None => registrar
                        .register(endpoint, &registration_request(metadata, &callback))
                        .await
                        .map_err(|why| {
                            unusable(format!(
                                "registering at {endpoint} failed ({why}); nothing was \
                                 stored, run the command again to retry"
                            ))
                        })?,
                };
                (
                    ClientRegistration::Dynamic,
                    client.client_id,
                    client.auth_method,
                    client.client_secret,
                )
            }
            None => {
                return Err(unusable(format!(
                    "the authorization server {} supports neither client ID metadata \
                     documents nor dynamic client registration (no registration_endpoint): \
                     register Gatehouse there with the redirect URI {callback} and give its \
                     client id",
                    metadata.issuer
                )));
            }
        },
    };
    let remembered_callback =
        (registration != ClientRegistration::PreRegistered).then_some(callback);
    Ok(NewUpstreamAuth {
        spec: UpstreamAuthSpec::PerUser {
            authorization_endpoint: metadata.authorization_endpoint.clone(),
            token_endpoint: metadata.token_endpoint.clone(),
            revocation_endpoint: metadata.revocation_endpoint.clone(),
            client_id,
            auth_method,
            scope: discovery.scope,
            resource: discovery.resource.or_else(|| found.resource.clone()),
            issuer: Some(metadata.issuer.clone()),
            registration,
            redirect_uri: remembered_callback,
        },
        secret,
    })
}

/// The dynamic registration `previous` holds for this issuer and callback, its secret opened.
fn reusable(
    keyring: &Keyring,
    server: &str,
    previous: Option<&UpstreamAuthRecord>,
    metadata: &AuthServerMetadata,
    callback: &str,
) -> Option<RegisteredClient> {
    let previous = previous?;
    let Some(UpstreamAuthSpec::PerUser {
        client_id,
        auth_method,
        issuer: Some(issuer),
        registration: ClientRegistration::Dynamic,
        redirect_uri: Some(redirect_uri),
        ..
    }) = &previous.spec
    else {
        return None;
    };
    if issuer != &metadata.issuer || redirect_uri != callback {
        return None;
    }
    let client_secret = match &previous.secret_sealed {
        None => None,
        Some(sealed) => {
            let context = super::upstream_auth::secret_context(server);
            let plain = keyring.decrypt(sealed, &context).ok()?;
            Some(String::from_utf8(plain).ok()?)
        }
    };
    Some(RegisteredClient {
        client_id: client_id.clone(),
        client_secret,
        auth_method: *auth_method,
    })
}

/// The RFC 7591 request: a public client with PKCE, or `client_secret_post` (else basic) when
/// the authorization server lists no `none` among its token endpoint's methods.
pub fn registration_request(metadata: &AuthServerMetadata, callback: &str) -> serde_json::Value {
    let method = match &metadata.token_endpoint_auth_methods_supported {
        Some(methods) if !methods.iter().any(|m| m == "none") => {
            if methods.iter().any(|m| m == "client_secret_post") || methods.is_empty() {
                "client_secret_post"
            } else {
                "client_secret_basic"
            }
        }
        _ => "none",
    };
    serde_json::json!({
        "client_name": "Gatehouse",
        "redirect_uris": [callback],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": method,
    })
}

/// Gatehouse's client metadata document (the MCP authorization specification's client ID
/// metadata document), served at [`CLIENT_METADATA_PATH`].
pub fn client_metadata_document(public_base: &str) -> serde_json::Value {
    serde_json::json!({
        "client_id": format!("{public_base}{CLIENT_METADATA_PATH}"),
        "client_name": "Gatehouse",
        "client_uri": public_base,
        "redirect_uris": [format!("{public_base}{CALLBACK_PATH}")],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Fake {
        metadata: AuthServerMetadata,
        registrations: Mutex<Vec<serde_json::Value>>,
    }

    #[async_trait]
    impl UpstreamRegistrar for Fake {
        fn public_base(&self) -> &str {
            "https://gate.example"
        }
        async fn discover(&self, _: Option<&str>, _: &str) -> Result<Discovered, String> {
            Ok(Discovered {
                metadata: Arc::new(self.metadata.clone()),
                resource: Some("https://files.example/mcp".into()),
            })
        }
        async fn register(
            &self,
            _: &str,
            request: &serde_json::Value,
        ) -> Result<RegisteredClient, String> {
            self.registrations.lock().unwrap().push(request.clone());
            Ok(RegisteredClient {
                client_id: "dyn-1".into(),
                client_secret: Some("dyn-secret".into()),
                auth_method: UpstreamClientAuth::ClientSecretPost,
            })
        }
    }

    fn fake(cimd: bool, registration: bool, s256: bool) -> Fake {
        Fake {
            metadata: AuthServerMetadata {
                issuer: "https://as.example".into(),
                authorization_endpoint: "https://as.example/authorize".into(),
                token_endpoint: "https://as.example/token".into(),
                revocation_endpoint: None,
                registration_endpoint: registration.then(|| "https://as.example/register".into()),
                code_challenge_methods_supported: if s256 {
                    vec!["S256".into()]
                } else {
                    vec!["plain".into()]
                },
                token_endpoint_auth_methods_supported: Some(vec!["client_secret_post".into()]),
                client_id_metadata_document_supported: cimd,
            },
            registrations: Mutex::new(Vec::new()),
        }
    }

    async fn run(fake: &Fake, discovery: PerUserDiscovery) -> AdminResult<NewUpstreamAuth> {
        let keyring = Keyring::from_master(&[9; 32]);
        resolve(
            fake,
            &keyring,
            "files",
            "https://files.example/mcp",
            discovery,
            None,
        )
        .await
    }

    fn registration(new: &NewUpstreamAuth) -> (ClientRegistration, String) {
        match &new.spec {
            UpstreamAuthSpec::PerUser {
                registration,
                client_id,
                ..
            } => (*registration, client_id.clone()),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_operators_client_comes_first_then_the_metadata_document_then_registration() {
        let given = PerUserDiscovery {
            client_id: Some("pre".into()),
            ..Default::default()
        };
        let new = run(&fake(true, true, true), given).await.unwrap();
        assert_eq!(
            registration(&new),
            (ClientRegistration::PreRegistered, "pre".into())
        );
        let new = run(&fake(true, true, true), Default::default())
            .await
            .unwrap();
        assert_eq!(
            registration(&new),
            (
                ClientRegistration::MetadataDocument,
                "https://gate.example/oauth/upstream/client-metadata.json".into()
            )
        );
        let both = fake(false, true, true);
        let new = run(&both, Default::default()).await.unwrap();
        assert_eq!(
            registration(&new),
            (ClientRegistration::Dynamic, "dyn-1".into())
        );
        assert_eq!(new.secret.as_deref(), Some("dyn-secret"));
        let sent = both.registrations.lock().unwrap()[0].clone();
        assert_eq!(sent["token_endpoint_auth_method"], "client_secret_post");
        assert_eq!(
            sent["redirect_uris"][0],
            "https://gate.example/oauth/upstream/callback"
        );
    }

    #[tokio::test]
    async fn no_s256_or_no_way_to_register_is_the_operators_error() {
        let no_s256 = run(&fake(true, true, false), Default::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(no_s256.contains("S256"), "{no_s256}");
        let nothing = run(&fake(false, false, true), Default::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            nothing.contains("neither client ID metadata documents nor dynamic"),
            "{nothing}"
        );
        assert!(nothing.contains("https://gate.example/oauth/upstream/callback"));
    }
}
