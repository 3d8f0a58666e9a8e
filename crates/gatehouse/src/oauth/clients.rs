//! Clients of the authorization server as the snapshot holds them, and client authentication
//! at the token, revocation and introspection endpoints (RFC 6749 §2.3).
//!
//! Secrets are server-generated (`gcs_` + 43 base62 characters, 256 bits), stored as
//! HMAC-SHA-256 under the pepper bound to the client's name, and compared in constant time
//! against each live secret of the client, so a rotation can overlap.

use base64::Engine;
use http::{HeaderMap, header};
use std::sync::Arc;
use subtle::ConstantTimeEq;

use crate::{error::OAuthError, oauth::form::Form, secrets::Keyring};

pub use crate::identity::oauth_clients::{
    ClientDirectory, OAuthClient, SECRET_PREFIX, SecretEntry, hash_client_secret, mint_secret,
};

impl OAuthClient {
    /// `unauthorized_client` unless the client is registered for `grant_type`.
    pub fn require_grant(&self, grant_type: &str) -> Result<(), OAuthError> {
        if self.allows_grant(grant_type) {
            Ok(())
        } else {
            Err(OAuthError::UnauthorizedClient(format!(
                "this client may not use the {grant_type} grant"
            )))
        }
    }
}

impl ClientDirectory {
    /// Authenticates the client of a token-endpoint style request: HTTP Basic, or
    /// `client_id` + `client_secret` in the body, or `client_id` alone for public clients.
    /// Exactly one method; every failure is the same `invalid_client`.
    pub fn authenticate(
        &self,
        keyring: &Keyring,
        headers: &HeaderMap,
        form: &Form,
        now_ms: i64,
    ) -> Result<Arc<OAuthClient>, OAuthError> {
        let basic = basic_credentials(headers)?;
        let posted_secret = form.get("client_secret");
        if form.get("client_assertion").is_some() || form.get("client_assertion_type").is_some() {
            return Err(OAuthError::InvalidClient { basic: false });
        }
        let (client_id, secret, method, via_basic) = match (basic, posted_secret) {
            (Some(_), Some(_)) => {
                return Err(OAuthError::InvalidRequest(
                    "use one client authentication method, not both Basic and client_secret".into(),
                ));
            }
            (Some((id, secret)), None) => {
                if form.get("client_id").is_some_and(|posted| posted != id) {
                    return Err(OAuthError::InvalidRequest(
                        "client_id in the body differs from the Basic credentials".into(),
                    ));
                }
                (id, Some(secret), "client_secret_basic", true)
            }
            (None, Some(secret)) => (
                form.get("client_id")
                    .ok_or(OAuthError::InvalidClient { basic: false })?
                    .to_owned(),
                Some(secret.to_owned()),
                "client_secret_post",
                false,
            ),
            // RFC 6749 §5.2: no client authentication at all is `invalid_client`.
            (None, None) => (
                form.get("client_id")
                    .ok_or(OAuthError::InvalidClient { basic: false })?
                    .to_owned(),
                None,
                "none",
                false,
            ),
        };
        let fail = OAuthError::InvalidClient { basic: via_basic };
        let client = self.clients.get(&client_id);
        match secret {
            Some(secret) => {
                // Hash even for unknown clients, so response time does not reveal which exist.
                let presented = hash_client_secret(keyring, &client_id, &secret);
                let Some(client) = client else {
                    let _ = presented.ct_eq(&[0u8; 32]);
                    return Err(fail);
                };
                let mut matched = false;
                for entry in &client.secrets {
                    let equal: bool = presented.ct_eq(&entry.hash).into();
                    let live = entry.expires_at.is_none_or(|at| at > now_ms);
                    matched |= equal && live;
                }
                // The registered method is what the client must use: a secret meant for Basic
                // in a form body (or the reverse) is refused, as RFC 7591 §2 implies.
                if !matched || client.metadata.token_endpoint_auth_method != method {
                    return Err(fail);
                }
                Ok(client.clone())
            }
            None => match client {
                Some(client) if client.is_public() => Ok(client.clone()),
                _ => Err(fail),
            },
        }
    }
}

/// `Authorization: Basic` credentials, form-urlencoded inside as RFC 6749 §2.3.1 requires.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::InvalidClient { basic: true };
    let value = value.to_str().map_err(|_| bad())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(bad());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (id, secret) = (unescape(id), unescape(secret));
    if id.is_empty() {
        return Err(bad());
    }
    Ok(Some((id, secret)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use gatehouse_model::records::OAuthClientMetadata;
    use http::HeaderValue;

    fn metadata(method: &str) -> OAuthClientMetadata {
        OAuthClientMetadata {
            token_endpoint_auth_method: method.into(),
            grant_types: vec!["client_credentials".into()],
            redirect_uris: vec![],
            application_type: None,
            jwks: None,
            client_name: None,
            origin: "cli".into(),
            dpop_bound_access_tokens: false,
        }
    }

    fn directory(ring: &Keyring) -> (ClientDirectory, String, String) {
        let (basic_secret, basic_row) = mint_secret(ring, "svc", None).unwrap();
        let (post_secret, post_row) = mint_secret(ring, "poster", Some(1_000)).unwrap();
        let meta_basic = metadata("client_secret_basic");
        let meta_post = metadata("client_secret_post");
        let meta_public = metadata("none");
        let dir = ClientDirectory::build(
            [
                ("svc", &meta_basic),
                ("poster", &meta_post),
                ("agent", &meta_public),
            ],
            &[basic_row, post_row],
        );
        (dir, basic_secret, post_secret)
    }

    fn basic(id: &str, secret: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {value}")).unwrap(),
        );
        headers
    }

    #[test]
    fn each_method_as_registered() {
        let ring = Keyring::from_master(&[1; 32]);
        let (dir, basic_secret, post_secret) = directory(&ring);
        let empty = Form::default();
        let ok = dir.authenticate(&ring, &basic("svc", &basic_secret), &empty, 0);
        assert_eq!(&*ok.unwrap().name, "svc");
        let form = Form::parse(
            format!("client_id=poster&client_secret={post_secret}").as_bytes(),
            &[],
        )
        .unwrap();
        assert!(dir.authenticate(&ring, &HeaderMap::new(), &form, 0).is_ok());
        // Expired (past the rotation overlap).
        let err = dir
            .authenticate(&ring, &HeaderMap::new(), &form, 1_000)
            .unwrap_err();
        assert_eq!(err, OAuthError::InvalidClient { basic: false });
        // A Basic client's secret posted in the body is refused.
        let wrong_method = Form::parse(
            format!("client_id=svc&client_secret={basic_secret}").as_bytes(),
            &[],
        )
        .unwrap();
        assert!(
            dir.authenticate(&ring, &HeaderMap::new(), &wrong_method, 0)
                .is_err()
        );
        let public = Form::parse(b"client_id=agent", &[]).unwrap();
        assert!(
            dir.authenticate(&ring, &HeaderMap::new(), &public, 0)
                .is_ok()
        );
        let confidential_without_secret = Form::parse(b"client_id=svc", &[]).unwrap();
        assert!(
            dir.authenticate(&ring, &HeaderMap::new(), &confidential_without_secret, 0)
                .is_err()
        );
    }

    #[test]
    fn wrong_or_unknown_is_one_answer() {
        let ring = Keyring::from_master(&[1; 32]);
        let (dir, basic_secret, _) = directory(&ring);
        let empty = Form::default();
        for headers in [
            basic("svc", "gcs_wrong"),
            basic("nobody", &basic_secret),
            basic("poster", &basic_secret),
        ] {
            assert_eq!(
                dir.authenticate(&ring, &headers, &empty, 0).unwrap_err(),
                OAuthError::InvalidClient { basic: true }
            );
        }
        let both = Form::parse(b"client_secret=x", &[]).unwrap();
        assert_eq!(
            dir.authenticate(&ring, &basic("svc", &basic_secret), &both, 0)
                .unwrap_err()
                .code(),
            "invalid_request"
        );
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let headers = basic("my%20client", "a%2Bb");
        let (id, secret) = basic_credentials(&headers).unwrap().unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("my client", "a+b"));
    }
}
