//! Access-token signing keys: which key signs now, which are published, and their rotation.
//!
//! Lifecycle of a key (columns of `signing_keys`): published in the JWKS from `created_at`,
//! signs from `active_at`, stops signing at `retired_at` (set when a successor is created),
//! and stays published until every token it signed has expired. A scheduled rotation creates
//! the successor `key_publish_lead` before it signs, so verifiers that cache the JWKS already
//! know it; `gatehouse signing-keys rotate --now` switches at once (for a suspected leak, with
//! `--revoke-previous` to kill what the old key signed).

use serde_json::Value;
use std::{sync::Arc, time::Duration};

use crate::{
    secrets::Keyring,
    store::{DynStore, StoreError},
    tokens::keys::{SigningKey, VerificationKey, VerifierSet},
};
use gatehouse_model::{algorithm::Algorithm, records::SigningKeyRecord};

fn seal_context(kid: &str) -> String {
    format!("signing-key:{kid}")
}

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing key {kid:?}: {reason}")]
    Key { kid: String, reason: String },
}

/// The keys of one snapshot.
#[derive(Debug, Default)]
pub struct SigningKeys {
    /// Keys that may sign, by `active_at` ascending; the signer is the last already active.
    signers: Vec<(i64, Option<i64>, Arc<SigningKey>)>,
    /// Every published key.
    pub verifiers: VerifierSet,
    /// The JWKS document, serialised once.
    pub jwks: Arc<str>,
}

impl SigningKeys {
    /// Decrypts the stored keys. A key that does not decrypt stops the build: signing with a
    /// key nobody can verify, or failing to verify valid tokens, is worse than not starting.
    pub fn build(records: &[SigningKeyRecord], keyring: &Keyring) -> Result<Self, SigningError> {
        let mut signers = Vec::new();
        let mut verifiers = VerifierSet::new();
        for record in records {
            let fail = |reason: String| SigningError::Key {
                kid: record.kid.clone(),
                reason,
            };
            let alg = Algorithm::parse(&record.alg).ok_or_else(|| fail("unknown alg".into()))?;
            let der = keyring
                .decrypt(&record.private_sealed, &seal_context(&record.kid))
                .map_err(|e| fail(e.to_string()))?;
            let key = SigningKey::from_pkcs8_der(alg, Some(&record.kid), &der)
                .map_err(|e| fail(e.to_string()))?;
            verifiers.insert(key.verification_key());
            signers.push((record.active_at, record.retired_at, Arc::new(key)));
        }
        signers.sort_by_key(|(active_at, _, _)| *active_at);
        let jwks = verifiers.jwks().to_string();
        Ok(Self {
            signers,
            verifiers,
            jwks: Arc::from(jwks),
        })
    }

    /// The key that signs at `now_ms`: the most recently activated one not yet retired.
    pub fn signer(&self, now_ms: i64) -> Option<&Arc<SigningKey>> {
        self.signers
            .iter()
            .rev()
            .find(|(active_at, retired_at, _)| {
                *active_at <= now_ms && retired_at.is_none_or(|at| at > now_ms)
            })
            .map(|(_, _, key)| key)
    }

    pub fn verifier(&self, kid: &str) -> Option<&VerificationKey> {
        self.verifiers.get(kid)
    }
}

/// Creates a key that signs from `active_at`; the keys signing before then retire at that
/// moment.
pub async fn create_key(
    store: &DynStore,
    keyring: &Keyring,
    alg: Algorithm,
    now_ms: i64,
    active_at: i64,
) -> Result<SigningKeyRecord, SigningError> {
    let key = SigningKey::generate(alg).map_err(|e| SigningError::Key {
        kid: String::new(),
        reason: e.to_string(),
    })?;
    let kid = key.kid().to_owned();
    let private_sealed = keyring
        .encrypt(key.to_pkcs8_der(), &seal_context(&kid))
        .map_err(|e| SigningError::Key {
            kid: kid.clone(),
            reason: e.to_string(),
        })?;
    let record = SigningKeyRecord {
        kid: kid.clone(),
        alg: alg.as_str().to_owned(),
        private_sealed,
        public_jwk: key.public_jwk().to_string(),
        created_at: now_ms,
        active_at,
        retired_at: None,
    };
    store.insert_signing_key(&record).await?;
    store.retire_signing_keys(&kid, active_at).await?;
    Ok(record)
}

/// At start: make sure some key signs (the first start creates one, active at once).
pub async fn ensure_key(
    store: &DynStore,
    keyring: &Keyring,
    alg: Algorithm,
) -> Result<(), SigningError> {
    let now = crate::now_ms();
    let keys = store.list_signing_keys().await?;
    let signing = keys
        .iter()
        .any(|k| k.retired_at.is_none_or(|at| at > now) || k.active_at > now);
    if !signing {
        create_key(store, keyring, alg, now, now).await?;
    }
    Ok(())
}

/// One pass of automatic rotation: publishes a successor `lead` before the newest key is
/// `interval` old, and forgets keys retired longer ago than `keep_after_retire` (the longest
/// token lifetime plus clock skew). Returns whether anything changed.
pub async fn rotate_if_due(
    store: &DynStore,
    keyring: &Keyring,
    alg: Algorithm,
    interval: Duration,
    lead: Duration,
    keep_after_retire: Duration,
) -> Result<bool, SigningError> {
    let now = crate::now_ms();
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let mut changed = store
        .purge_signing_keys(now - ms(keep_after_retire))
        .await?
        > 0;
    if interval.is_zero() {
        return Ok(changed);
    }
    let keys = store.list_signing_keys().await?;
    let newest = keys.iter().map(|k| k.active_at).max();
    let due = newest.is_none_or(|active_at| active_at + ms(interval) <= now + ms(lead));
    if due {
        let active_at = match newest {
            Some(active_at) => (active_at + ms(interval)).max(now + ms(lead)),
            None => now,
        };
        create_key(store, keyring, alg, now, active_at).await?;
        changed = true;
    }
    Ok(changed)
}

/// The published keys as a JWKS value (for tests and the CLI).
pub fn jwks_value(keys: &SigningKeys) -> Value {
    keys.verifiers.jwks()
}
