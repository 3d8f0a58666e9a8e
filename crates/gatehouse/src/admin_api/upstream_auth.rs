//! A server's upstream authentication in the admin API's bodies: what an operator sends (with
//! its write-only secret) and what is shown (never a secret).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::ApiError;
use crate::admin::{upstream_auth::NewUpstreamAuth, upstream_registration::PerUserDiscovery};
use gatehouse_model::upstream_auth::{ClientRegistration, UpstreamAuthSpec, UpstreamClientAuth};

/// How Gatehouse gets tokens for the upstream (ADR 0006 §5).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamAuthInput {
    /// `client_credentials`: one token for every caller, fetched from the upstream's
    /// authorization server and refreshed before it expires. `token_exchange`: a token per
    /// person, by RFC 8693 exchange of Gatehouse's signed assertion of the caller.
    /// `per_user`: each person's own token, granted in the upstream's OAuth flow.
    #[schema(pattern = "^(client_credentials|token_exchange|per_user)$")]
    pub kind: String,
    /// `per_user`: the upstream authorization server's authorization endpoint. Absent: the
    /// endpoints are discovered from the authorization server's metadata (RFC 8414), found by
    /// `issuer`, else by the protected-resource metadata (RFC 9728) of `resource` or the
    /// server's URL.
    pub authorization_endpoint: Option<String>,
    /// `per_user`: its RFC 7009 revocation endpoint, told when a person's grant is revoked.
    pub revocation_endpoint: Option<String>,
    /// `per_user` with discovery: the upstream authorization server's issuer.
    pub issuer: Option<String>,
    /// The upstream authorization server's token endpoint (required but for `per_user` with
    /// discovery).
    pub token_endpoint: Option<String>,
    /// Gatehouse's client id there (required but for `per_user` with discovery; absent there:
    /// Gatehouse's client metadata document or dynamic registration, whichever the
    /// authorization server offers).
    pub client_id: Option<String>,
    /// `client_secret_basic`, `client_secret_post`, `private_key_jwt`, or `none` (a public
    /// client; `per_user` only). Required with `client_id`, but for `per_user` with discovery
    /// (default `none`, or `client_secret_basic` with a secret).
    pub auth_method: Option<String>,
    /// Space-separated scopes to ask for.
    pub scope: Option<String>,
    /// RFC 8707 resource indicator to ask for.
    pub resource: Option<String>,
    /// The client secret (write-only), for the two `client_secret_*` methods.
    pub client_secret: Option<String>,
    /// The client's PEM PKCS #8 private key (write-only), for `private_key_jwt`.
    pub private_key_pem: Option<String>,
}

/// What an operator's upstream token settings become: given in full, or found by discovery.
pub enum UpstreamAuthSettings {
    Given(NewUpstreamAuth),
    Discover(PerUserDiscovery),
}

impl UpstreamAuthInput {
    pub fn settings(self) -> Result<UpstreamAuthSettings, ApiError> {
        if !matches!(
            self.kind.as_str(),
            "client_credentials" | "token_exchange" | "per_user"
        ) {
            return Err(ApiError::Invalid(format!(
                "upstream_auth.kind {:?} must be client_credentials, token_exchange or per_user",
                self.kind
            )));
        }
        if self.kind != "per_user"
            && (self.authorization_endpoint.is_some()
                || self.revocation_endpoint.is_some()
                || self.issuer.is_some())
        {
            return Err(ApiError::Invalid(
                "authorization_endpoint, revocation_endpoint and issuer are for per_user only"
                    .into(),
            ));
        }
        let auth_method = self
            .auth_method
            .as_deref()
            .map(str::parse::<UpstreamClientAuth>)
            .transpose()
            .map_err(|e| ApiError::Invalid(e.to_string()))?;
        let secret = match (auth_method, self.client_secret, self.private_key_pem) {
            (_, Some(_), Some(_)) => {
                return Err(ApiError::Invalid(
                    "give either client_secret or private_key_pem, not both".into(),
                ));
            }
            (Some(UpstreamClientAuth::PrivateKeyJwt), Some(_), None) => {
                return Err(ApiError::Invalid(
                    "private_key_jwt takes private_key_pem, not client_secret".into(),
                ));
            }
            (Some(UpstreamClientAuth::PrivateKeyJwt), None, key) => key,
            (_, None, Some(_)) => {
                return Err(ApiError::Invalid(
                    "private_key_pem is for private_key_jwt only".into(),
                ));
            }
            (_, secret, None) => secret,
        };
        let (scope, resource) = (self.scope, self.resource);
        if self.kind == "per_user" && self.authorization_endpoint.is_none() {
            if self.token_endpoint.is_some() || self.revocation_endpoint.is_some() {
                return Err(ApiError::Invalid(
                    "per_user takes authorization_endpoint with token_endpoint and \
                     revocation_endpoint, or none of them (discovery)"
                        .into(),
                ));
            }
            return Ok(UpstreamAuthSettings::Discover(PerUserDiscovery {
                issuer: self.issuer,
                client_id: self.client_id,
                auth_method,
                secret,
                scope,
                resource,
            }));
        }
        let needed = |field: Option<String>, name: &str| {
            field.ok_or_else(|| ApiError::Invalid(format!("{} needs {name}", self.kind)))
        };
        let token_endpoint = needed(self.token_endpoint, "token_endpoint")?;
        let client_id = needed(self.client_id, "client_id")?;
        let auth_method = auth_method
            .ok_or_else(|| ApiError::Invalid(format!("{} needs auth_method", self.kind)))?;
        let spec = match self.kind.as_str() {
            "per_user" => UpstreamAuthSpec::PerUser {
                authorization_endpoint: needed(
                    self.authorization_endpoint,
                    "authorization_endpoint",
                )?,
                token_endpoint,
                revocation_endpoint: self.revocation_endpoint,
                client_id,
                auth_method,
                scope,
                resource,
                issuer: self.issuer,
                registration: ClientRegistration::PreRegistered,
                redirect_uri: None,
            },
            "token_exchange" => UpstreamAuthSpec::TokenExchange {
                token_endpoint,
                client_id,
                auth_method,
                scope,
                resource,
            },
            _ => UpstreamAuthSpec::ClientCredentials {
                token_endpoint,
                client_id,
                auth_method,
                scope,
                resource,
            },
        };
        Ok(UpstreamAuthSettings::Given(NewUpstreamAuth {
            spec,
            secret,
        }))
    }

    /// The settings as the admin service takes them: given in full, or to discover.
    pub fn split(
        input: Option<Self>,
    ) -> Result<(Option<NewUpstreamAuth>, Option<PerUserDiscovery>), ApiError> {
        Ok(match input.map(Self::settings).transpose()? {
            None => (None, None),
            Some(UpstreamAuthSettings::Given(given)) => (Some(given), None),
            Some(UpstreamAuthSettings::Discover(discover)) => (None, Some(discover)),
        })
    }
}

/// A server's upstream authentication as shown: the settings, never the secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UpstreamAuthView {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    pub token_endpoint: String,
    pub client_id: String,
    pub auth_method: String,
    pub scope: Option<String>,
    pub resource: Option<String>,
    /// `per_user`: the authorization server's issuer, when its metadata was discovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// `per_user`: how Gatehouse became a client there: `pre_registered`,
    /// `metadata_document` or `dynamic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<String>,
}

impl From<&UpstreamAuthSpec> for UpstreamAuthView {
    fn from(spec: &UpstreamAuthSpec) -> Self {
        let client = spec.client();
        let (authorization_endpoint, revocation_endpoint, issuer, registration) = match spec {
            UpstreamAuthSpec::PerUser {
                authorization_endpoint,
                revocation_endpoint,
                issuer,
                registration,
                ..
            } => (
                Some(authorization_endpoint.clone()),
                revocation_endpoint.clone(),
                issuer.clone(),
                Some(registration.as_str().to_owned()),
            ),
            _ => (None, None, None, None),
        };
        UpstreamAuthView {
            kind: spec.kind().to_owned(),
            authorization_endpoint,
            revocation_endpoint,
            token_endpoint: client.token_endpoint.to_owned(),
            client_id: client.client_id.to_owned(),
            auth_method: client.auth_method.as_str().to_owned(),
            scope: client.scope.map(str::to_owned),
            resource: client.resource.map(str::to_owned),
            issuer,
            registration,
        }
    }
}
