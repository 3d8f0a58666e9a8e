//! A server's upstream authentication as the request path uses it (ADR 0006 §5): secrets
//! opened once, when the snapshot is built, never per request.

use std::sync::Arc;

use http::{HeaderName, HeaderValue, Uri};
use sha2::{Digest, Sha256};

use crate::{secrets::Keyring, tokens::keys::SigningKey};
use gatehouse_model::{
    records::ServerRecord,
    upstream_auth::{UpstreamAuthSpec, UpstreamClientAuth},
};

/// How Gatehouse authenticates to one upstream.
#[derive(Debug, Default)]
pub enum UpstreamAuth {
    #[default]
    None,
    /// A header injected as is (`--credential`).
    Static((HeaderName, HeaderValue)),
    /// A token fetched with OAuth client credentials, the same for every caller.
    ClientCredentials(Arc<ClientCredentials>),
    /// A token per person, by RFC 8693 exchange of Gatehouse's assertion of the caller.
    TokenExchange(Arc<ClientCredentials>),
    /// Each person's own token, granted in the upstream's OAuth flow and kept in the store.
    PerUser(Arc<PerUser>),
}

/// What the per-user flow needs beyond the token endpoint and the client.
#[derive(Debug)]
pub struct PerUser {
    pub server: String,
    pub authorization_endpoint: String,
    pub revocation_endpoint: Option<Uri>,
    pub client: ClientCredentials,
    /// The callback the client id was made for (metadata document, dynamic registration).
    pub registered_redirect_uri: Option<String>,
}

impl UpstreamAuth {
    /// The header injected as is, when that is the kind.
    pub fn static_header(&self) -> Option<&(HeaderName, HeaderValue)> {
        match self {
            UpstreamAuth::Static(header) => Some(header),
            _ => None,
        }
    }
}

/// Associated data for a server's sealed upstream client secret or private key.
pub fn secret_context(server: &str) -> String {
    format!("server-upstream-secret:{server}")
}

/// What a client-credentials token request needs.
#[derive(Debug)]
pub struct ClientCredentials {
    pub token_endpoint: Uri,
    pub client_id: String,
    pub secret: ClientSecret,
    pub scope: Option<String>,
    pub resource: Option<String>,
    /// Where the token is kept: the server and a digest of these settings, so changed
    /// settings fetch a new token.
    pub cache_key: String,
}

/// How Gatehouse proves itself to the upstream's token endpoint.
pub enum ClientSecret {
    Basic(String),
    Post(String),
    /// RFC 7523 client assertion signed with this key.
    PrivateKeyJwt(Box<SigningKey>),
    /// A public client: the client id alone.
    Public,
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientSecret::Basic(_) => "Basic(<redacted>)",
            ClientSecret::Post(_) => "Post(<redacted>)",
            ClientSecret::PrivateKeyJwt(_) => "PrivateKeyJwt(<redacted>)",
            ClientSecret::Public => "Public",
        })
    }
}

/// The token-fetching part of a server record, its secret opened; `static_header` is the
/// record's static credential, already opened by the caller.
pub fn compile(
    server: &ServerRecord,
    keyring: &Keyring,
    static_header: Option<(HeaderName, HeaderValue)>,
) -> Result<UpstreamAuth, String> {
    let auth = &server.upstream_auth;
    if let Some(why) = &auth.unreadable {
        return Err(why.clone());
    }
    let Some(spec) = &auth.spec else {
        return Ok(match static_header {
            Some(header) => UpstreamAuth::Static(header),
            None => UpstreamAuth::None,
        });
    };
    if static_header.is_some() {
        return Err("a static credential and upstream tokens cannot both be set".into());
    }
    let client = spec.client();
    let secret = match (&auth.secret_sealed, client.auth_method) {
        (None, UpstreamClientAuth::None) => Vec::new(),
        (None, _) => return Err("upstream auth settings without their secret".into()),
        (Some(sealed), _) => keyring
            .decrypt(sealed, &secret_context(&server.name))
            .map_err(|e| format!("upstream secret: {e}"))?,
    };
    let endpoint: Uri = client
        .token_endpoint
        .parse()
        .map_err(|e| format!("token endpoint: {e}"))?;
    let mut digest = Sha256::new();
    digest.update(serde_json::to_vec(spec).unwrap_or_default());
    digest.update(&secret);
    let secret = match client.auth_method {
        UpstreamClientAuth::PrivateKeyJwt => ClientSecret::PrivateKeyJwt(Box::new(
            SigningKey::from_pkcs8_any(&secret)
                .map_err(|e| format!("upstream private key: {e}"))?,
        )),
        UpstreamClientAuth::None => ClientSecret::Public,
        method => {
            let text = String::from_utf8(secret)
                .map_err(|_| "upstream client secret is not UTF-8".to_owned())?;
            if method == UpstreamClientAuth::ClientSecretPost {
                ClientSecret::Post(text)
            } else {
                ClientSecret::Basic(text)
            }
        }
    };
    let credentials = ClientCredentials {
        token_endpoint: endpoint,
        client_id: client.client_id.to_owned(),
        secret,
        scope: client.scope.map(str::to_owned),
        resource: client.resource.map(str::to_owned),
        cache_key: format!("{}:{}", server.name, hex::encode(&digest.finalize()[..12])),
    };
    Ok(match spec {
        UpstreamAuthSpec::ClientCredentials { .. } => {
            UpstreamAuth::ClientCredentials(Arc::new(credentials))
        }
        UpstreamAuthSpec::TokenExchange { .. } => {
            UpstreamAuth::TokenExchange(Arc::new(credentials))
        }
        UpstreamAuthSpec::PerUser {
            authorization_endpoint,
            revocation_endpoint,
            redirect_uri,
            ..
        } => UpstreamAuth::PerUser(Arc::new(PerUser {
            registered_redirect_uri: redirect_uri.clone(),
            server: server.name.clone(),
            authorization_endpoint: authorization_endpoint.clone(),
            revocation_endpoint: revocation_endpoint
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e| format!("revocation endpoint: {e}"))?,
            client: credentials,
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_model::{pin_action::PinAction, upstream_auth::UpstreamAuthRecord};

    fn server(auth: UpstreamAuthRecord) -> ServerRecord {
        ServerRecord {
            name: "files".into(),
            url: "http://files.internal/mcp".into(),
            credential_header: None,
            credential_sealed: None,
            upstream_auth: auth,
            allow_anonymous: false,
            allow_unknown_methods: false,
            pin_action: PinAction::Block,
            created_at: 0,
            stdio: None,
            members: Vec::new(),
        }
    }

    fn client_credentials(keyring: &Keyring) -> UpstreamAuthRecord {
        UpstreamAuthRecord {
            spec: Some(UpstreamAuthSpec::ClientCredentials {
                token_endpoint: "http://as.internal/token".into(),
                client_id: "gatehouse".into(),
                auth_method: UpstreamClientAuth::ClientSecretPost,
                scope: None,
                resource: None,
            }),
            secret_sealed: Some(
                keyring
                    .encrypt(b"s3cret", &secret_context("files"))
                    .unwrap(),
            ),
            ..UpstreamAuthRecord::default()
        }
    }

    #[test]
    fn settings_that_cannot_be_used_leave_the_server_out_rather_than_call_without_them() {
        let keyring = Keyring::from_master(&[3; 32]);
        let record = server(client_credentials(&keyring));
        assert!(matches!(
            compile(&record, &keyring, None),
            Ok(UpstreamAuth::ClientCredentials(_))
        ));
        let header = (
            HeaderName::from_static("x-key"),
            HeaderValue::from_static("k"),
        );
        let both = compile(&record, &keyring, Some(header)).unwrap_err();
        assert!(both.contains("cannot both"), "{both}");
        let other_key = Keyring::from_master(&[4; 32]);
        assert!(
            compile(&record, &other_key, None).is_err(),
            "a secret sealed elsewhere"
        );
        let unreadable = server(UpstreamAuthRecord {
            unreadable: Some("upstream auth settings: unknown variant".into()),
            ..UpstreamAuthRecord::default()
        });
        assert!(compile(&unreadable, &keyring, None).is_err());
        let secretless = server(UpstreamAuthRecord {
            secret_sealed: None,
            ..client_credentials(&keyring)
        });
        assert!(compile(&secretless, &keyring, None).is_err());
    }

    #[test]
    fn a_per_user_public_client_compiles_without_a_secret_and_a_confidential_one_needs_it() {
        let keyring = Keyring::from_master(&[3; 32]);
        let spec = |auth_method| {
            Some(UpstreamAuthSpec::PerUser {
                authorization_endpoint: "http://as.internal/authorize".into(),
                token_endpoint: "http://as.internal/token".into(),
                revocation_endpoint: Some("http://as.internal/revoke".into()),
                client_id: "gatehouse".into(),
                auth_method,
                scope: None,
                resource: None,
                issuer: None,
                registration: Default::default(),
                redirect_uri: None,
            })
        };
        let public = server(UpstreamAuthRecord {
            spec: spec(UpstreamClientAuth::None),
            ..UpstreamAuthRecord::default()
        });
        match compile(&public, &keyring, None).unwrap() {
            UpstreamAuth::PerUser(auth) => {
                assert!(matches!(auth.client.secret, ClientSecret::Public));
                assert_eq!(auth.server, "files");
                assert!(auth.revocation_endpoint.is_some());
            }
            other => panic!("{other:?}"),
        }
        let confidential = server(UpstreamAuthRecord {
            spec: spec(UpstreamClientAuth::ClientSecretPost),
            ..UpstreamAuthRecord::default()
        });
        assert!(compile(&confidential, &keyring, None).is_err());
    }

    #[test]
    fn the_cache_key_changes_with_the_settings_and_the_secret() {
        let keyring = Keyring::from_master(&[3; 32]);
        let key = |record: &ServerRecord| match compile(record, &keyring, None).unwrap() {
            UpstreamAuth::ClientCredentials(auth) => auth.cache_key.clone(),
            other => panic!("{other:?}"),
        };
        let first = server(client_credentials(&keyring));
        let mut other_secret = first.clone();
        other_secret.upstream_auth.secret_sealed = Some(
            keyring
                .encrypt(b"rotated", &secret_context("files"))
                .unwrap(),
        );
        assert_ne!(key(&first), key(&other_secret));
        assert!(key(&first).starts_with("files:"));
    }
}
