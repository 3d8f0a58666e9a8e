//! An operator's upstream authentication settings, validated and sealed (ADR 0006 §5–6). The
//! CLI and the admin API hand the same input here, so both refuse the same bad settings.

use gatehouse_model::upstream_auth::{UpstreamAuthRecord, UpstreamAuthSpec, UpstreamClientAuth};

use super::{AdminError, AdminResult};
use crate::{secrets::Keyring, tokens::keys::SigningKey};

/// Upstream authentication as an operator gives it: the settings and the one secret they
/// need (a client secret, or a PEM PKCS #8 private key for `private_key_jwt`).
#[derive(Debug, Clone)]
pub struct NewUpstreamAuth {
    pub spec: UpstreamAuthSpec,
    pub secret: Option<String>,
}

pub use crate::snapshot::upstream_auth::secret_context;

/// Checks `new` and seals its secret for `server` into `record` (its identity header kept).
pub fn apply(
    keyring: &Keyring,
    server: &str,
    new: NewUpstreamAuth,
    record: &mut UpstreamAuthRecord,
) -> AdminResult<()> {
    let client = new.spec.client();
    check_endpoint("token endpoint", client.token_endpoint)?;
    if let Some(resource) = client.resource {
        check_endpoint("resource", resource)?;
    }
    if client.client_id.trim().is_empty() {
        return Err(AdminError::Invalid("client id must not be empty".into()));
    }
    if client.scope.is_some_and(|s| s.trim().is_empty()) {
        return Err(AdminError::Invalid("scope must not be empty".into()));
    }
    let auth_method = client.auth_method;
    if let UpstreamAuthSpec::PerUser {
        authorization_endpoint,
        revocation_endpoint,
        ..
    } = &new.spec
    {
        check_endpoint("authorization endpoint", authorization_endpoint)?;
        if let Some(revocation) = revocation_endpoint {
            check_endpoint("revocation endpoint", revocation)?;
        }
    }
    if auth_method == UpstreamClientAuth::None {
        // Only a person's browser flow can do without a client secret: PKCE ties the code to
        // Gatehouse. A token for Gatehouse itself needs Gatehouse to prove who it is.
        if !matches!(new.spec, UpstreamAuthSpec::PerUser { .. }) {
            return Err(AdminError::Invalid(format!(
                "auth method none is for per_user only; {} needs the client to authenticate",
                new.spec.kind()
            )));
        }
        if new.secret.is_some() {
            return Err(AdminError::Invalid(
                "auth method none takes no client secret".into(),
            ));
        }
        record.secret_sealed = None;
        record.spec = Some(new.spec);
        record.unreadable = None;
        return Ok(());
    }
    let secret = new.secret.as_deref().ok_or_else(|| {
        AdminError::Invalid(match auth_method {
            UpstreamClientAuth::PrivateKeyJwt => {
                "private_key_jwt needs the client's private key (PEM, PKCS #8)".into()
            }
            _ => format!("{} needs a client secret", auth_method.as_str()),
        })
    })?;
    let secret = match auth_method {
        UpstreamClientAuth::PrivateKeyJwt => private_key_der(secret)?,
        _ if secret.trim().is_empty() => {
            return Err(AdminError::Invalid(
                "client secret must not be empty".into(),
            ));
        }
        _ => secret.trim().as_bytes().to_vec(),
    };
    record.secret_sealed = Some(keyring.encrypt(&secret, &secret_context(server))?);
    record.spec = Some(new.spec);
    record.unreadable = None;
    Ok(())
}

/// `Header-Name` for the identity assertion, lower-cased; refused when it would replace a
/// header the hop itself sets.
pub fn identity_header(text: &str) -> AdminResult<String> {
    let name = text.trim().to_ascii_lowercase();
    http::HeaderName::try_from(name.as_str())
        .map_err(|_| AdminError::Invalid(format!("invalid identity header name {name:?}")))?;
    const RESERVED: &[&str] = &[
        "authorization",
        "host",
        "content-type",
        "content-length",
        "accept",
        "mcp-session-id",
        "mcp-protocol-version",
    ];
    if RESERVED.contains(&name.as_str()) {
        return Err(AdminError::Invalid(format!(
            "identity header {name:?} is a header the hop sets itself"
        )));
    }
    Ok(name)
}

pub(super) fn check_endpoint(what: &str, url: &str) -> AdminResult<()> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| AdminError::Invalid(format!("invalid {what} {url:?}: {e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(AdminError::Invalid(format!(
            "{what} {url:?} must be an absolute http(s) URL"
        )));
    }
    Ok(())
}

/// The DER of a PEM PKCS #8 private key that Gatehouse can sign with.
pub(super) fn private_key_der(pem: &str) -> AdminResult<Vec<u8>> {
    use rustls_pki_types::{PrivatePkcs8KeyDer, pem::PemObject};
    let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
        AdminError::Invalid("private key must be PEM 'BEGIN PRIVATE KEY' (PKCS #8)".into())
    })?;
    SigningKey::from_pkcs8_any(der.secret_pkcs8_der())
        .map_err(|e| AdminError::Invalid(format!("private key: {e}")))?;
    Ok(der.secret_pkcs8_der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(auth_method: UpstreamClientAuth) -> UpstreamAuthSpec {
        UpstreamAuthSpec::ClientCredentials {
            token_endpoint: "https://as.example/token".into(),
            client_id: "gatehouse".into(),
            auth_method,
            scope: None,
            resource: None,
        }
    }

    #[test]
    fn a_client_secret_is_sealed_for_its_server_only() {
        let keyring = Keyring::from_master(&[7; 32]);
        let mut record = UpstreamAuthRecord::default();
        let new = NewUpstreamAuth {
            spec: spec(UpstreamClientAuth::ClientSecretBasic),
            secret: Some("s3cret".into()),
        };
        apply(&keyring, "files", new, &mut record).unwrap();
        let sealed = record.secret_sealed.as_deref().unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(
            keyring.decrypt(sealed, &secret_context("files")).unwrap(),
            b"s3cret"
        );
        assert!(keyring.decrypt(sealed, &secret_context("other")).is_err());
    }

    #[test]
    fn missing_or_unusable_secrets_and_bad_urls_are_refused() {
        let keyring = Keyring::from_master(&[7; 32]);
        let refused = |spec, secret: Option<&str>| {
            let new = NewUpstreamAuth {
                spec,
                secret: secret.map(str::to_owned),
            };
            apply(&keyring, "files", new, &mut UpstreamAuthRecord::default()).unwrap_err()
        };
        refused(spec(UpstreamClientAuth::ClientSecretPost), None);
        refused(spec(UpstreamClientAuth::ClientSecretPost), Some("  "));
        let not_a_key = refused(spec(UpstreamClientAuth::PrivateKeyJwt), Some("secret"));
        assert!(not_a_key.to_string().contains("PKCS #8"), "{not_a_key}");
        let bad_url = UpstreamAuthSpec::ClientCredentials {
            token_endpoint: "file:///etc/passwd".into(),
            client_id: "gatehouse".into(),
            auth_method: UpstreamClientAuth::ClientSecretPost,
            scope: None,
            resource: None,
        };
        refused(bad_url, Some("s"));
    }

    fn per_user(auth_method: UpstreamClientAuth, revocation: &str) -> UpstreamAuthSpec {
        UpstreamAuthSpec::PerUser {
            authorization_endpoint: "https://as.example/authorize".into(),
            token_endpoint: "https://as.example/token".into(),
            revocation_endpoint: Some(revocation.into()),
            client_id: "gatehouse".into(),
            auth_method,
            scope: None,
            resource: None,
            issuer: None,
            registration: Default::default(),
            redirect_uri: None,
        }
    }

    #[test]
    fn a_public_client_is_for_per_user_only_and_takes_no_secret() {
        let keyring = Keyring::from_master(&[7; 32]);
        let apply_new = |spec, secret: Option<&str>| {
            let mut record = UpstreamAuthRecord {
                secret_sealed: Some(vec![1]),
                ..UpstreamAuthRecord::default()
            };
            let new = NewUpstreamAuth {
                spec,
                secret: secret.map(str::to_owned),
            };
            apply(&keyring, "files", new, &mut record).map(|()| record)
        };
        let public = apply_new(
            per_user(UpstreamClientAuth::None, "https://as.example/revoke"),
            None,
        )
        .unwrap();
        assert_eq!(public.secret_sealed, None, "an old secret is not kept");
        assert!(
            apply_new(
                per_user(UpstreamClientAuth::None, "https://as.example/revoke"),
                Some("s")
            )
            .is_err()
        );
        let not_per_user = apply_new(spec(UpstreamClientAuth::None), None).unwrap_err();
        assert!(
            not_per_user.to_string().contains("per_user only"),
            "{not_per_user}"
        );
        assert!(
            apply_new(
                per_user(UpstreamClientAuth::None, "ftp://as.example/revoke"),
                None
            )
            .is_err()
        );
    }

    #[test]
    fn a_generated_pkcs8_key_is_accepted_for_private_key_jwt() {
        use base64::Engine;
        let key = SigningKey::generate(gatehouse_model::algorithm::Algorithm::ES256).unwrap();
        let body = base64::engine::general_purpose::STANDARD.encode(key.to_pkcs8_der());
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n");
        let mut record = UpstreamAuthRecord::default();
        let new = NewUpstreamAuth {
            spec: spec(UpstreamClientAuth::PrivateKeyJwt),
            secret: Some(pem),
        };
        apply(&Keyring::from_master(&[1; 32]), "files", new, &mut record).unwrap();
        assert!(record.secret_sealed.is_some());
    }

    #[test]
    fn identity_headers_the_hop_sets_are_refused() {
        assert_eq!(
            identity_header("X-Gatehouse-Identity").unwrap(),
            "x-gatehouse-identity"
        );
        assert!(identity_header("Authorization").is_err());
        assert!(identity_header("bad header").is_err());
    }
}
