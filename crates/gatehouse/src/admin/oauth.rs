//! Operator actions for the authorization server: registering clients for OAuth, their
//! secrets, and signing keys.

use std::time::Duration;

use super::{AdminError, AdminResult, expiry};
use crate::{
    identity::oauth_clients as clients, secrets::Keyring, store::DynStore, tokens::signing,
};
use gatehouse_model::{
    algorithm::Algorithm,
    names::{ApplicationType, RedirectUri},
    records::{ClientSecretRecord, Generation, OAuthClientMetadata},
};

/// The jwt-bearer grant is for redeeming ID-JAGs (enterprise-managed authorization); a
/// workload token needs no registration to use it.
pub const GRANT_TYPES: [&str; 4] = [
    "client_credentials",
    "authorization_code",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
];
pub const AUTH_METHODS: [&str; 4] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "none",
];

#[derive(Debug, Clone, Default)]
pub struct OAuthRegistration {
    pub grant_types: Vec<String>,
    /// Default `client_secret_basic`.
    pub auth_method: Option<String>,
    pub redirect_uris: Vec<String>,
    /// A native app (RFC 8252): loopback redirect URIs may use any port.
    pub native: bool,
    /// The client's public keys (JWKS), for `private_key_jwt`.
    pub jwks: Option<serde_json::Value>,
    /// Every token request must carry a DPoP proof (RFC 9449 §5.2).
    pub require_dpop: bool,
}

/// What registering returned: the first secret of a confidential client, shown once.
#[derive(Debug, serde::Serialize)]
pub struct Registered {
    pub client_id: String,
    pub metadata: OAuthClientMetadata,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    #[serde(skip)]
    pub generation: Generation,
}

pub async fn register_client(
    store: &DynStore,
    keyring: &Keyring,
    client: &str,
    registration: OAuthRegistration,
) -> AdminResult<Registered> {
    register_client_with(store, keyring, client, registration, true).await
}

/// [`register_client`]; `mint_first_secret: false` leaves a confidential client without a
/// secret until one is set (a declared registration names its own).
pub(crate) async fn register_client_with(
    store: &DynStore,
    keyring: &Keyring,
    client: &str,
    registration: OAuthRegistration,
    mint_first_secret: bool,
) -> AdminResult<Registered> {
    store.get_client(client).await?;
    let metadata = registration_metadata(registration)?;
    let auth_method = metadata.token_endpoint_auth_method.clone();
    let mut generation = store.set_client_oauth(client, Some(&metadata)).await?;
    let mut client_secret = None;
    let mut secret_id = None;
    if mint_first_secret && auth_method != "none" && auth_method != "private_key_jwt" {
        let live =
            store.list_client_secrets(client).await?.iter().any(|s| {
                s.revoked_at.is_none() && s.expires_at.is_none_or(|at| at > crate::now_ms())
            });
        if !live {
            let (secret, record) = clients::mint_secret(keyring, client, None)?;
            generation = store.insert_client_secret(&record).await?;
            client_secret = Some(secret);
            secret_id = Some(record.id);
        }
    }
    Ok(Registered {
        client_id: client.to_owned(),
        metadata,
        client_secret,
        secret_id,
        generation,
    })
}

/// The metadata a registration stores, validated (no I/O).
pub(crate) fn registration_metadata(
    registration: OAuthRegistration,
) -> AdminResult<OAuthClientMetadata> {
    let mut grant_types = registration.grant_types;
    if grant_types.is_empty() {
        grant_types.push("client_credentials".into());
    }
    for grant in &grant_types {
        if !GRANT_TYPES.contains(&grant.as_str()) {
            return Err(AdminError::Invalid(format!(
                "grant type {grant:?} must be one of {}",
                GRANT_TYPES.join(", ")
            )));
        }
    }
    let auth_method = registration
        .auth_method
        .unwrap_or_else(|| "client_secret_basic".into());
    if !AUTH_METHODS.contains(&auth_method.as_str()) {
        return Err(AdminError::Invalid(format!(
            "auth method {auth_method:?} must be one of {}",
            AUTH_METHODS.join(", ")
        )));
    }
    if auth_method == "none" && grant_types.iter().any(|g| g == "client_credentials") {
        return Err(AdminError::Invalid(
            "a public client (auth method none) cannot use client_credentials".into(),
        ));
    }
    let jwks = match (auth_method.as_str(), registration.jwks) {
        ("private_key_jwt", Some(jwks)) => {
            let keys = crate::tokens::keys::VerifierSet::from_registered_jwks(&jwks)
                .map_err(|e| AdminError::Invalid(format!("JWKS: {e}")))?;
            if keys.is_empty() {
                return Err(AdminError::Invalid(
                    "JWKS: no usable signing key (EdDSA, ES256/384, RS/PS256+)".into(),
                ));
            }
            Some(keys.jwks())
        }
        ("private_key_jwt", None) => {
            return Err(AdminError::Invalid(
                "private_key_jwt needs the client's public keys (--jwks-file)".into(),
            ));
        }
        (_, Some(_)) => {
            return Err(AdminError::Invalid(
                "a JWKS is only used with --auth-method private_key_jwt".into(),
            ));
        }
        (_, None) => None,
    };
    let wants_code = grant_types.iter().any(|g| g == "authorization_code");
    if wants_code && registration.redirect_uris.is_empty() {
        return Err(AdminError::Invalid(
            "authorization_code needs at least one --redirect-uri".into(),
        ));
    }
    for uri in &registration.redirect_uris {
        let application = if registration.native {
            ApplicationType::Native
        } else {
            ApplicationType::Web
        };
        RedirectUri::parse(uri, application)?;
    }
    Ok(OAuthClientMetadata {
        token_endpoint_auth_method: auth_method,
        grant_types,
        redirect_uris: registration.redirect_uris,
        application_type: Some(if registration.native { "native" } else { "web" }.into()),
        jwks,
        client_name: None,
        origin: "cli".into(),
        dpop_bound_access_tokens: registration.require_dpop,
    })
}

/// A new secret; the client's other secrets keep working for `overlap`, then stop.
pub async fn rotate_client_secret(
    store: &DynStore,
    keyring: &Keyring,
    client: &str,
    overlap: Duration,
) -> AdminResult<(String, ClientSecretRecord, Generation)> {
    let record = store.get_client(client).await?;
    match &record.oauth {
        Some(m) if m.token_endpoint_auth_method != "none" => {}
        _ => {
            return Err(AdminError::Invalid(format!(
                "client {client:?} is not a confidential OAuth client: register it with `clients oauth` first"
            )));
        }
    }
    let (secret, new) = clients::mint_secret(keyring, client, None)?;
    let others_until = expiry(crate::now_ms(), Some(overlap)).unwrap_or(i64::MAX);
    let generation = store.rotate_client_secret(&new, others_until).await?;
    Ok((secret, new, generation))
}

/// Creates a signing key. `now` makes it sign at once (the previous keys stop signing but
/// stay published so their tokens verify until they expire); otherwise it is published now
/// and signs after `lead`.
pub async fn rotate_signing_key(
    store: &DynStore,
    keyring: &Keyring,
    alg: &str,
    lead: Option<Duration>,
) -> AdminResult<(gatehouse_model::records::SigningKeyRecord, Generation)> {
    let alg = Algorithm::parse(alg)
        .filter(|a| matches!(a, Algorithm::EdDSA | Algorithm::ES256 | Algorithm::RS256))
        .ok_or_else(|| {
            AdminError::Invalid(format!("algorithm {alg:?}: use EdDSA, ES256 or RS256"))
        })?;
    let now = crate::now_ms();
    let active_at = expiry(now, lead).unwrap_or(now);
    let record = signing::create_key(store, keyring, alg, now, active_at)
        .await
        .map_err(|e| AdminError::Invalid(e.to_string()))?;
    let generation = store.generation().await?;
    Ok((record, generation))
}
