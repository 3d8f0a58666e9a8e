//! OAuth clients as credentials: what the snapshot holds of each (its metadata, secret hashes,
//! `private_key_jwt` keys) and the format of a client secret. Authenticating a request with
//! them is the authorization server's (`oauth/clients.rs`).

use std::{collections::HashMap, sync::Arc};

use crate::secrets::{self, Keyring, SecretError};
use gatehouse_model::records::{ClientSecretRecord, OAuthClientMetadata};

pub const SECRET_PREFIX: &str = "gcs_";
const SECRET_LEN: usize = 43;

/// A client that may use the authorization server.
#[derive(Debug)]
pub struct OAuthClient {
    pub name: Arc<str>,
    pub metadata: OAuthClientMetadata,
    pub secrets: Vec<SecretEntry>,
    /// Public keys for `private_key_jwt`, from the registered JWKS.
    pub keys: Option<crate::tokens::keys::VerifierSet>,
}

#[derive(Debug, Clone)]
pub struct SecretEntry {
    pub hash: [u8; 32],
    pub expires_at: Option<i64>,
}

impl OAuthClient {
    pub fn allows_grant(&self, grant_type: &str) -> bool {
        self.metadata.grant_types.iter().any(|g| g == grant_type)
    }

    pub fn is_public(&self) -> bool {
        self.metadata.token_endpoint_auth_method == "none"
    }
}

/// Every OAuth client of the snapshot, by `client_id`.
#[derive(Debug, Default)]
pub struct ClientDirectory {
    pub(crate) clients: HashMap<String, Arc<OAuthClient>>,
}

impl ClientDirectory {
    /// `secrets` are the live rows of the store; those of clients not listed are dropped.
    pub fn build<'a>(
        clients: impl IntoIterator<Item = (&'a str, &'a OAuthClientMetadata)>,
        secrets: &[ClientSecretRecord],
    ) -> Self {
        let mut by_client: HashMap<&str, Vec<SecretEntry>> = HashMap::new();
        for s in secrets {
            let Ok(hash) = <[u8; 32]>::try_from(s.secret_hash.as_slice()) else {
                continue;
            };
            by_client.entry(&s.client).or_default().push(SecretEntry {
                hash,
                expires_at: s.expires_at,
            });
        }
        let clients = clients
            .into_iter()
            .map(|(name, metadata)| {
                let keys = metadata
                    .jwks
                    .as_ref()
                    .and_then(|jwks| crate::tokens::keys::VerifierSet::from_jwks(jwks).ok())
                    .filter(|keys| !keys.is_empty());
                let client = OAuthClient {
                    name: Arc::from(name),
                    metadata: metadata.clone(),
                    secrets: by_client.remove(name).unwrap_or_default(),
                    keys,
                };
                (name.to_owned(), Arc::new(client))
            })
            .collect();
        Self { clients }
    }

    pub fn get(&self, client_id: &str) -> Option<&Arc<OAuthClient>> {
        self.clients.get(client_id)
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

/// What the store keeps of a client secret.
pub fn hash_client_secret(keyring: &Keyring, client: &str, secret: &str) -> [u8; 32] {
    let material = format!("client-secret:{client}:{secret}");
    keyring.hash_secret(material.as_bytes())
}

/// A new secret and the row to store for it.
pub fn mint_secret(
    keyring: &Keyring,
    client: &str,
    expires_at: Option<i64>,
) -> Result<(String, ClientSecretRecord), SecretError> {
    let secret = format!("{SECRET_PREFIX}{}", secrets::random_base62(SECRET_LEN)?);
    let record = ClientSecretRecord {
        id: format!("cs_{}", secrets::random_id(12)?),
        client: client.to_owned(),
        secret_hash: hash_client_secret(keyring, client, &secret).to_vec(),
        created_at: crate::now_ms(),
        expires_at,
        revoked_at: None,
    };
    Ok((secret, record))
}
