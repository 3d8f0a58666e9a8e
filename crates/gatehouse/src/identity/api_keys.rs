//! API keys as the gateway keeps them: minting, the stored secret hash, and the table the
//! snapshot checks presented keys against. The key's format (`gth_<id>_<secret><checksum>`)
//! is a token format, in [`crate::tokens::api_key`].

use std::{
    collections::HashMap,
    sync::{Arc, atomic::AtomicI64},
};
use subtle::ConstantTimeEq;

pub use crate::tokens::api_key::{
    CHECKSUM_LEN, ID_LEN, PREFIX, SECRET_LEN, TOKEN_LEN, checksum, is_gatehouse_key, parse,
};

use crate::secrets::{self, Keyring, SecretError};
use gatehouse_model::tool_pattern::ToolPattern;

/// A freshly minted key. `token` is shown to the operator once and then dropped.
pub struct MintedKey {
    pub id: String,
    pub token: String,
    pub secret_hash: [u8; 32],
}

impl std::fmt::Debug for MintedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

pub fn mint(keyring: &Keyring) -> Result<MintedKey, SecretError> {
    let id = secrets::random_id(ID_LEN)?;
    let secret = secrets::random_base62(SECRET_LEN)?;
    let body = format!("{PREFIX}{id}_{secret}");
    let token = format!("{body}{}", checksum(&body));
    let secret_hash = hash_secret(keyring, &id, &secret);
    Ok(MintedKey {
        id,
        token,
        secret_hash,
    })
}

pub fn hash_secret(keyring: &Keyring, id: &str, secret: &str) -> [u8; 32] {
    let mut material = Vec::with_capacity(id.len() + 1 + secret.len());
    material.extend_from_slice(id.as_bytes());
    material.push(b':');
    material.extend_from_slice(secret.as_bytes());
    keyring.hash_secret(&material)
}

/// A usable key as the snapshot holds it.
#[derive(Debug)]
pub struct KeyEntry {
    pub client: Arc<str>,
    pub secret_hash: [u8; 32],
    /// Expiry, including the end of a rotation overlap.
    pub expires_at: Option<i64>,
    pub narrowing: Option<Arc<[ToolPattern]>>,
    /// Shared with [`crate::snapshot::UsageTracker`]; written with one relaxed atomic store.
    pub last_used: Arc<AtomicI64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRejection {
    /// Not shaped like a Gatehouse key, or its checksum is wrong.
    Malformed,
    /// Unknown id, wrong secret, revoked, or its client is disabled. One answer for all,
    /// so the response does not reveal which ids exist.
    NotRecognised,
    Expired,
}

/// All usable keys by id. Entries are shared with the previous snapshot when unchanged
/// (`crate::entries`), so a lookup costs one `Arc` dereference more than a plain map.
#[derive(Debug, Default)]
pub struct KeyTable {
    keys: HashMap<Arc<str>, Arc<KeyEntry>>,
}

/// Compared against when the id is unknown, so unknown and known ids cost the same.
const DECOY_HASH: [u8; 32] = [0x5a; 32];

impl KeyTable {
    pub fn with_capacity(keys: usize) -> Self {
        Self {
            keys: HashMap::with_capacity(keys),
        }
    }

    pub fn insert(&mut self, id: Arc<str>, entry: Arc<KeyEntry>) {
        self.keys.insert(id, entry);
    }

    /// The key and entry as this table holds them (shared, for the next snapshot).
    pub fn entry(&self, id: &str) -> Option<(&Arc<str>, &Arc<KeyEntry>)> {
        self.keys.get_key_value(id)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn check<'a>(
        &'a self,
        keyring: &Keyring,
        token: &'a str,
        now_ms: i64,
    ) -> Result<(&'a str, &'a KeyEntry), KeyRejection> {
        let (id, secret) = parse(token).ok_or(KeyRejection::Malformed)?;
        let entry = self.keys.get(id).map(|entry| &**entry);
        let presented = hash_secret(keyring, id, secret);
        let expected = entry.map_or(&DECOY_HASH, |e| &e.secret_hash);
        let matches: bool = presented.ct_eq(expected).into();
        match entry {
            Some(entry) if matches => {
                if entry.expires_at.is_some_and(|at| at <= now_ms) {
                    Err(KeyRejection::Expired)
                } else {
                    Ok((id, entry))
                }
            }
            _ => Err(KeyRejection::NotRecognised),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_with(keyring: &Keyring, expires_at: Option<i64>) -> (KeyTable, MintedKey) {
        let key = mint(keyring).unwrap();
        let mut table = KeyTable::default();
        table.insert(
            Arc::from(key.id.as_str()),
            Arc::new(KeyEntry {
                client: Arc::from("c"),
                secret_hash: key.secret_hash,
                expires_at,
                narrowing: None,
                last_used: Arc::default(),
            }),
        );
        (table, key)
    }

    #[test]
    fn minted_keys_parse_and_verify() {
        let ring = Keyring::from_master(&[3; 32]);
        let (table, key) = table_with(&ring, None);
        assert_eq!(key.token.len(), TOKEN_LEN);
        assert!(key.token.starts_with("gth_"));
        assert!(is_gatehouse_key(&key.token));
        let (id, entry) = table.check(&ring, &key.token, 0).unwrap();
        assert_eq!(id, key.id);
        assert_eq!(&*entry.client, "c");
    }

    #[test]
    fn one_changed_character_is_caught_by_the_checksum() {
        let ring = Keyring::from_master(&[3; 32]);
        let key = mint(&ring).unwrap();
        let mut bytes = key.token.into_bytes();
        bytes[20] = if bytes[20] == b'a' { b'b' } else { b'a' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(parse(&tampered), None);
    }

    #[test]
    fn wrong_secret_with_valid_checksum_is_not_recognised() {
        let ring = Keyring::from_master(&[3; 32]);
        let (table, key) = table_with(&ring, None);
        let body = format!("{PREFIX}{}_{}", key.id, "A".repeat(SECRET_LEN));
        let forged = format!("{body}{}", checksum(&body));
        assert_eq!(
            table.check(&ring, &forged, 0).unwrap_err(),
            KeyRejection::NotRecognised
        );
        let other_ring = Keyring::from_master(&[4; 32]);
        assert_eq!(
            table.check(&other_ring, &key.token, 0).unwrap_err(),
            KeyRejection::NotRecognised
        );
    }

    #[test]
    fn expiry_is_exclusive() {
        let ring = Keyring::from_master(&[3; 32]);
        let (table, key) = table_with(&ring, Some(1_000));
        assert!(table.check(&ring, &key.token, 999).is_ok());
        assert_eq!(
            table.check(&ring, &key.token, 1_000).unwrap_err(),
            KeyRejection::Expired
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let ring = Keyring::from_master(&[3; 32]);
        let (table, _) = table_with(&ring, None);
        for bad in [
            "",
            "gth_",
            "Bearer x",
            &"gth_".repeat(20),
            "gth_ééééééééééé",
        ] {
            assert_eq!(
                table.check(&ring, bad, 0).unwrap_err(),
                KeyRejection::Malformed
            );
        }
    }
}
