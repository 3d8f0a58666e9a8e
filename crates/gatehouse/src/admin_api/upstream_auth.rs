//! A server's upstream authentication in the admin API's bodies: what an operator sends (with
//! its write-only secret) and what is shown (never a secret).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::ApiError;
use crate::admin::upstream_auth::NewUpstreamAuth;
use gatehouse_model::upstream_auth::{UpstreamAuthSpec, UpstreamClientAuth};

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
    /// `per_user`: the upstream authorization server's authorization endpoint.
    pub authorization_endpoint: Option<String>,
    /// `per_user`: its RFC 7009 revocation endpoint, told when a person's grant is revoked.
    pub revocation_endpoint: Option<String>,
    /// The upstream authorization server's token endpoint.
    pub token_endpoint: String,
    pub client_id: String,
    /// `client_secret_basic`, `client_secret_post`, `private_key_jwt`, or `none` (a public
    /// client; `per_user` only).
    pub auth_method: String,
    /// Space-separated scopes to ask for.
    pub scope: Option<String>,
    /// RFC 8707 resource indicator to ask for.
    pub resource: Option<String>,
    /// The client secret (write-only), for the two `client_secret_*` methods.
    pub client_secret: Option<String>,
    /// The client's PEM PKCS #8 private key (write-only), for `private_key_jwt`.
    pub private_key_pem: Option<String>,
}

impl TryFrom<UpstreamAuthInput> for NewUpstreamAuth {
    type Error = ApiError;

    fn try_from(input: UpstreamAuthInput) -> Result<Self, ApiError> {
        if !matches!(
            input.kind.as_str(),
            "client_credentials" | "token_exchange" | "per_user"
        ) {
            return Err(ApiError::Invalid(format!(
                "upstream_auth.kind {:?} must be client_credentials, token_exchange or per_user",
                input.kind
            )));
        }
        if input.kind != "per_user"
            && (input.authorization_endpoint.is_some() || input.revocation_endpoint.is_some())
        {
            return Err(ApiError::Invalid(
                "authorization_endpoint and revocation_endpoint are for per_user only".into(),
            ));
        }
        let auth_method: UpstreamClientAuth = input
            .auth_method
            .parse()
            .map_err(|e: gatehouse_model::names::InvalidValue| ApiError::Invalid(e.to_string()))?;
        let secret = match (auth_method, input.client_secret, input.private_key_pem) {
            (_, Some(_), Some(_)) => {
                return Err(ApiError::Invalid(
                    "give either client_secret or private_key_pem, not both".into(),
                ));
            }
            (UpstreamClientAuth::PrivateKeyJwt, Some(_), None) => {
                return Err(ApiError::Invalid(
                    "private_key_jwt takes private_key_pem, not client_secret".into(),
                ));
            }
            (UpstreamClientAuth::PrivateKeyJwt, None, key) => key,
            (_, None, Some(_)) => {
                return Err(ApiError::Invalid(
                    "private_key_pem is for private_key_jwt only".into(),
                ));
            }
            (_, secret, None) => secret,
        };
        let (token_endpoint, client_id, scope, resource) = (
            input.token_endpoint,
            input.client_id,
            input.scope,
            input.resource,
        );
        let spec = if input.kind == "per_user" {
            UpstreamAuthSpec::PerUser {
                authorization_endpoint: input.authorization_endpoint.ok_or_else(|| {
                    ApiError::Invalid("per_user needs authorization_endpoint".into())
                })?,
                token_endpoint,
                revocation_endpoint: input.revocation_endpoint,
                client_id,
                auth_method,
                scope,
                resource,
            }
        } else if input.kind == "token_exchange" {
            UpstreamAuthSpec::TokenExchange {
                token_endpoint,
                client_id,
                auth_method,
                scope,
                resource,
            }
        } else {
            UpstreamAuthSpec::ClientCredentials {
                token_endpoint,
                client_id,
                auth_method,
                scope,
                resource,
            }
        };
        Ok(NewUpstreamAuth { spec, secret })
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
}

impl From<&UpstreamAuthSpec> for UpstreamAuthView {
    fn from(spec: &UpstreamAuthSpec) -> Self {
        let client = spec.client();
        let (authorization_endpoint, revocation_endpoint) = match spec {
            UpstreamAuthSpec::PerUser {
                authorization_endpoint,
                revocation_endpoint,
                ..
            } => (
                Some(authorization_endpoint.clone()),
                revocation_endpoint.clone(),
            ),
            _ => (None, None),
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
        }
    }
}
