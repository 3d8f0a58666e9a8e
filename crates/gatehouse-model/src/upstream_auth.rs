//! How Gatehouse authenticates to an upstream server beyond a static header (ADR 0006 §5–6):
//! the settings a server record keeps in the clear. Secrets (a client secret, a private key)
//! are sealed beside them, never here.

use serde::{Deserialize, Serialize};

use crate::names::InvalidValue;

/// A server's upstream authentication, as the store keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamAuthRecord {
    /// `None`: no token is fetched (a static header, if any, is the record's
    /// `credential_header`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<UpstreamAuthSpec>,
    /// The sealed client secret or private key the spec needs; never serialised.
    #[serde(skip)]
    pub secret_sealed: Option<Vec<u8>>,
    /// Header carrying Gatehouse's signed assertion of the caller (ADR 0006 §6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_header: Option<String>,
    /// Why the stored settings could not be read (written by a newer version, or damaged):
    /// the server is then left out of the snapshot rather than called without them.
    #[serde(skip)]
    pub unreadable: Option<String>,
}

/// The token-fetching kinds of upstream authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum UpstreamAuthSpec {
    /// OAuth client credentials (RFC 6749 §4.4) against the upstream's token endpoint: one
    /// token for every caller.
    ClientCredentials {
        token_endpoint: String,
        client_id: String,
        auth_method: UpstreamClientAuth,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
        /// RFC 8707 resource indicator; absent: none is sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource: Option<String>,
    },
    /// RFC 8693 token exchange per person: Gatehouse presents its signed assertion of the
    /// caller (ADR 0006 §6) as `subject_token` and gets that person's token. Only calls made
    /// for a person can use it.
    TokenExchange {
        token_endpoint: String,
        client_id: String,
        auth_method: UpstreamClientAuth,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource: Option<String>,
    },
    /// Each person's own token, granted by that person in the upstream's OAuth flow
    /// (authorization code + PKCE) and kept sealed in `upstream_grants`. Only calls made for a
    /// person can use it. Gatehouse is a client there by `registration`.
    PerUser {
        authorization_endpoint: String,
        token_endpoint: String,
        /// RFC 7009 endpoint told when a grant is revoked; absent: the grant is only forgotten.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revocation_endpoint: Option<String>,
        client_id: String,
        /// `none` for a public client (PKCE only, no secret).
        auth_method: UpstreamClientAuth,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource: Option<String>,
        /// The authorization server's issuer, when the endpoints came from its metadata
        /// (RFC 8414) rather than from the operator.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issuer: Option<String>,
        /// How Gatehouse became a client of the authorization server.
        #[serde(default, skip_serializing_if = "ClientRegistration::is_pre_registered")]
        registration: ClientRegistration,
        /// The callback the client id was made for (metadata document or dynamic
        /// registration): a changed `public_url` no longer matches it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        redirect_uri: Option<String>,
    },
}

/// How Gatehouse became a client of a per-user upstream's authorization server, in the order
/// of preference of the MCP authorization specification (2025-11-25).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientRegistration {
    /// The operator registered Gatehouse and gave its client id.
    #[default]
    PreRegistered,
    /// The client id is the URL of Gatehouse's client metadata document
    /// (`client_id_metadata_document_supported`).
    MetadataDocument,
    /// Registered by RFC 7591 dynamic client registration; the client id came back from
    /// the registration endpoint (a secret, if any, is sealed beside the settings).
    Dynamic,
}

impl ClientRegistration {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientRegistration::PreRegistered => "pre_registered",
            ClientRegistration::MetadataDocument => "metadata_document",
            ClientRegistration::Dynamic => "dynamic",
        }
    }

    pub fn is_pre_registered(&self) -> bool {
        *self == ClientRegistration::PreRegistered
    }
}

/// What both token-fetching kinds share: where and how Gatehouse asks.
pub struct TokenClient<'a> {
    pub token_endpoint: &'a str,
    pub client_id: &'a str,
    pub auth_method: UpstreamClientAuth,
    pub scope: Option<&'a str>,
    pub resource: Option<&'a str>,
}

impl UpstreamAuthSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamAuthSpec::ClientCredentials { .. } => "client_credentials",
            UpstreamAuthSpec::TokenExchange { .. } => "token_exchange",
            UpstreamAuthSpec::PerUser { .. } => "per_user",
        }
    }

    pub fn client(&self) -> TokenClient<'_> {
        match self {
            UpstreamAuthSpec::ClientCredentials {
                token_endpoint,
                client_id,
                auth_method,
                scope,
                resource,
            }
            | UpstreamAuthSpec::TokenExchange {
                token_endpoint,
                client_id,
                auth_method,
                scope,
                resource,
            }
            | UpstreamAuthSpec::PerUser {
                token_endpoint,
                client_id,
                auth_method,
                scope,
                resource,
                ..
            } => TokenClient {
                token_endpoint,
                client_id,
                auth_method: *auth_method,
                scope: scope.as_deref(),
                resource: resource.as_deref(),
            },
        }
    }
}

/// How Gatehouse authenticates itself as an OAuth client to the upstream's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum UpstreamClientAuth {
    ClientSecretBasic,
    ClientSecretPost,
    /// RFC 7523 client assertion signed with a private key Gatehouse holds sealed.
    PrivateKeyJwt,
    /// A public client (RFC 7591 `none`): the client id only; for per-user tokens, where
    /// PKCE binds the code to Gatehouse.
    None,
}

impl UpstreamClientAuth {
    pub const ALL: [UpstreamClientAuth; 4] = [
        UpstreamClientAuth::ClientSecretBasic,
        UpstreamClientAuth::ClientSecretPost,
        UpstreamClientAuth::PrivateKeyJwt,
        UpstreamClientAuth::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamClientAuth::ClientSecretBasic => "client_secret_basic",
            UpstreamClientAuth::ClientSecretPost => "client_secret_post",
            UpstreamClientAuth::PrivateKeyJwt => "private_key_jwt",
            UpstreamClientAuth::None => "none",
        }
    }
}

impl std::str::FromStr for UpstreamClientAuth {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|method| method.as_str() == text)
            .ok_or_else(|| {
                InvalidValue::new(format!(
                    "upstream auth method {text:?} must be client_secret_basic, \
                     client_secret_post, private_key_jwt or none"
                ))
            })
    }
}

impl TryFrom<String> for UpstreamClientAuth {
    type Error = InvalidValue;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<UpstreamClientAuth> for &'static str {
    fn from(method: UpstreamClientAuth) -> Self {
        method.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_round_trips_through_its_stored_json_and_the_secret_never_serialises() {
        let record = UpstreamAuthRecord {
            spec: Some(UpstreamAuthSpec::ClientCredentials {
                token_endpoint: "https://as.example/token".into(),
                client_id: "gatehouse".into(),
                auth_method: UpstreamClientAuth::PrivateKeyJwt,
                scope: Some("files:read".into()),
                resource: None,
            }),
            secret_sealed: Some(vec![1, 2, 3]),
            identity_header: Some("x-gatehouse-identity".into()),
            unreadable: None,
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["spec"]["kind"], "client_credentials");
        assert_eq!(json["spec"]["auth_method"], "private_key_jwt");
        assert!(json.get("secret_sealed").is_none());
        let back: UpstreamAuthRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back.spec, record.spec);
        assert_eq!(back.secret_sealed, None);
    }

    #[test]
    fn per_user_settings_stored_before_registration_was_recorded_read_as_pre_registered() {
        let stored = serde_json::json!({
            "kind": "per_user", "authorization_endpoint": "https://as/authorize",
            "token_endpoint": "https://as/token", "client_id": "gatehouse", "auth_method": "none"
        });
        let spec: UpstreamAuthSpec = serde_json::from_value(stored.clone()).unwrap();
        let UpstreamAuthSpec::PerUser {
            registration,
            issuer,
            redirect_uri,
            ..
        } = &spec
        else {
            panic!("{spec:?}");
        };
        assert_eq!(*registration, ClientRegistration::PreRegistered);
        assert_eq!((issuer, redirect_uri), (&None, &None));
        // Written back, such a row is byte for byte what it was.
        assert_eq!(serde_json::to_value(&spec).unwrap(), stored);
        let dynamic = serde_json::json!({
            "kind": "per_user", "authorization_endpoint": "https://as/authorize",
            "token_endpoint": "https://as/token", "client_id": "dyn-1", "auth_method": "none",
            "issuer": "https://as", "registration": "dynamic",
            "redirect_uri": "https://gate/oauth/upstream/callback"
        });
        let spec: UpstreamAuthSpec = serde_json::from_value(dynamic.clone()).unwrap();
        assert_eq!(serde_json::to_value(&spec).unwrap(), dynamic);
    }

    #[test]
    fn an_unknown_auth_method_or_field_is_refused() {
        assert!("client_secret_jwt".parse::<UpstreamClientAuth>().is_err());
        let extra = serde_json::json!({
            "kind": "client_credentials", "token_endpoint": "https://as/t",
            "client_id": "c", "auth_method": "client_secret_post", "secret": "leak"
        });
        assert!(serde_json::from_value::<UpstreamAuthSpec>(extra).is_err());
    }
}
