//! Admin tokens: the credentials of the admin API. Same format as API keys
//! (`gth_<id>_<secret><checksum>`, so leak scanners and guardrails recognise them too) and the
//! same keyed hash, over a material of their own (`admin:<id>:<secret>`), so an API key's
//! stored hash can never verify as an admin token nor the other way round.

use subtle::ConstantTimeEq;

use crate::{
    secrets::{self, Keyring, SecretError},
    tokens::api_key::{ID_LEN, PREFIX, SECRET_LEN, checksum, parse},
};
use gatehouse_model::records::AdminTokenRecord;

/// A freshly minted admin token: `token` is shown once and then dropped.
pub struct MintedAdminToken {
    pub id: String,
    pub token: String,
    pub secret_hash: [u8; 32],
}

impl std::fmt::Debug for MintedAdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedAdminToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

pub fn mint(keyring: &Keyring) -> Result<MintedAdminToken, SecretError> {
    let id = secrets::random_id(ID_LEN)?;
    let secret = secrets::random_base62(SECRET_LEN)?;
    let body = format!("{PREFIX}{id}_{secret}");
    let token = format!("{body}{}", checksum(&body));
    let secret_hash = hash_secret(keyring, &id, &secret);
    Ok(MintedAdminToken {
        id,
        token,
        secret_hash,
    })
}

fn hash_secret(keyring: &Keyring, id: &str, secret: &str) -> [u8; 32] {
    keyring.hash_secret(format!("admin:{id}:{secret}").as_bytes())
}

/// Why a presented admin token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminTokenRejection {
    /// Not shaped like a token, unknown, wrong secret, or revoked: one answer for all.
    NotRecognised,
    Expired,
}

/// `(id, secret)` of a presented token, or `None` when it is not shaped like one (no lookup
/// is needed to refuse it).
pub fn split(token: &str) -> Option<(&str, &str)> {
    parse(token)
}

/// Checks `secret` against `stored` (the record of the presented id, or `None` when no token
/// has that id: compared against a decoy then, so unknown and known ids cost the same).
pub fn check(
    keyring: &Keyring,
    id: &str,
    secret: &str,
    stored: Option<&AdminTokenRecord>,
    now_ms: i64,
) -> Result<(), AdminTokenRejection> {
    const DECOY: [u8; 32] = [0xa5; 32];
    let presented = hash_secret(keyring, id, secret);
    let expected = stored.map_or(&DECOY[..], |t| &t.secret_hash[..]);
    let matches: bool = presented.as_slice().ct_eq(expected).into();
    match stored {
        Some(token) if matches && token.revoked_at.is_none() => {
            if token.expires_at.is_some_and(|at| at <= now_ms) {
                Err(AdminTokenRejection::Expired)
            } else {
                Ok(())
            }
        }
        _ => Err(AdminTokenRejection::NotRecognised),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_model::records::AdminRole;

    fn record(minted: &MintedAdminToken) -> AdminTokenRecord {
        AdminTokenRecord {
            id: minted.id.clone(),
            name: "ci".into(),
            role: AdminRole::Operator,
            secret_hash: minted.secret_hash.to_vec(),
            created_at: 0,
            created_by: "test".into(),
            expires_at: Some(1_000),
            revoked_at: None,
            last_used_at: None,
        }
    }

    #[test]
    fn a_minted_token_verifies_until_it_expires_or_is_revoked() {
        let ring = Keyring::from_master(&[7; 32]);
        let minted = mint(&ring).unwrap();
        let (id, secret) = split(&minted.token).unwrap();
        let mut stored = record(&minted);
        assert_eq!(check(&ring, id, secret, Some(&stored), 999), Ok(()));
        assert_eq!(
            check(&ring, id, secret, Some(&stored), 1_000),
            Err(AdminTokenRejection::Expired)
        );
        stored.revoked_at = Some(1);
        assert_eq!(
            check(&ring, id, secret, Some(&stored), 0),
            Err(AdminTokenRejection::NotRecognised)
        );
        assert_eq!(
            check(&ring, id, secret, None, 0),
            Err(AdminTokenRejection::NotRecognised)
        );
    }

    #[test]
    fn an_api_key_hash_never_verifies_as_an_admin_token() {
        let ring = Keyring::from_master(&[7; 32]);
        let key = crate::identity::api_keys::mint(&ring).unwrap();
        let (id, secret) = split(&key.token).unwrap();
        let minted = mint(&ring).unwrap();
        let mut stored = record(&minted);
        stored.id = key.id.clone();
        stored.secret_hash = key.secret_hash.to_vec();
        assert_eq!(
            check(&ring, id, secret, Some(&stored), 0),
            Err(AdminTokenRejection::NotRecognised)
        );
    }
}
