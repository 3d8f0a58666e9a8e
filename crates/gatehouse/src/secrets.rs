//! Secret material: the master key, keys derived from it, encryption at rest, randomness.
//!
//! One 256-bit master key (from `GATEHOUSE_MASTER_KEY` or a 0600 file in the data directory,
//! generated on first start) is the root. Purpose-specific keys are derived from it with
//! HMAC-SHA-256 so that, say, the API-key pepper can never decrypt an upstream credential.

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::{io::Write, path::Path};

pub type HmacSha256 = Hmac<Sha256>;

const MASTER_KEY_FILE: &str = "master.key";
const MASTER_KEY_ENV: &str = "GATEHOUSE_MASTER_KEY";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("could not decrypt a stored secret (wrong master key or corrupted data)")]
    Decrypt,
    #[error("operating system randomness unavailable: {0}")]
    Random(String),
}

/// The keys Gatehouse derives from its master key. Cheap to clone.
#[derive(Clone)]
pub struct Keyring {
    /// HMAC states keyed once (pepper, audit key): each use clones the state instead of
    /// hashing the key again, on the request path (key checks) and per audit row.
    pepper: HmacSha256,
    encryption: [u8; 32],
    audit: HmacSha256,
    /// Seed of the Ed25519 key that signs evidence bundles and retention seals: its public
    /// half lets anyone check them without the master key.
    evidence_seed: [u8; 32],
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(..)")
    }
}

impl Keyring {
    pub fn from_master(master: &[u8; 32]) -> Self {
        Self {
            pepper: keyed(&derive(master, b"gatehouse/v1/api-key-pepper")),
            encryption: derive(master, b"gatehouse/v1/encryption-at-rest"),
            audit: keyed(&derive(master, b"gatehouse/v1/audit-chain")),
            evidence_seed: derive(master, b"gatehouse/v1/audit-evidence-ed25519"),
        }
    }

    /// Loads the master key from the environment, else from `data_dir/master.key`, creating
    /// that file (mode 0600) with a fresh random key when it does not exist.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, SecretError> {
        if let Ok(hex_key) = std::env::var(MASTER_KEY_ENV) {
            return Ok(Self::from_master(&parse_master(hex_key.trim())?));
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Self::from_master(&parse_master(text.trim())?)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let master: [u8; 32] = random_array()?;
                write_private_file(&path, hex::encode(master).as_bytes())
                    .map_err(|e| SecretError::MasterKey(format!("{}: {e}", path.display())))?;
                Ok(Self::from_master(&master))
            }
            Err(err) => Err(SecretError::MasterKey(format!("{}: {err}", path.display()))),
        }
    }

    /// HMAC-SHA-256 of an API-key secret under the pepper: what the store keeps.
    pub fn hash_secret(&self, secret: &[u8]) -> [u8; 32] {
        finish(self.pepper.clone(), &[secret])
    }

    /// Keyed hash for the audit chain: without the master key a rewritten chain cannot be
    /// made to verify.
    pub fn audit_mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        finish(self.audit.clone(), parts)
    }

    /// The public half of the evidence signing key (Ed25519, 32 bytes): what an auditor pins
    /// to check bundles and seals offline.
    pub fn evidence_public_key(&self) -> [u8; 32] {
        let mut public = [0; 32];
        if let Ok(pair) = ring::signature::Ed25519KeyPair::from_seed_unchecked(&self.evidence_seed)
        {
            public.copy_from_slice(ring::signature::KeyPair::public_key(&pair).as_ref());
        }
        public
    }

    /// An Ed25519 signature over `message` with the evidence key (64 bytes).
    pub fn sign_evidence(&self, message: &[u8]) -> [u8; 64] {
        let mut signature = [0; 64];
        // A 32-byte seed is always accepted; the zero signature is unreachable and would fail
        // every verification rather than pass one.
        if let Ok(pair) = ring::signature::Ed25519KeyPair::from_seed_unchecked(&self.evidence_seed)
        {
            signature.copy_from_slice(pair.sign(message).as_ref());
        }
        signature
    }

    /// AES-256-GCM; output is `nonce || ciphertext`. `context` is bound as associated data so
    /// a ciphertext moved to another row does not decrypt.
    pub fn encrypt(&self, plaintext: &[u8], context: &str) -> Result<Vec<u8>, SecretError> {
        let cipher = Aes256Gcm::new((&self.encryption).into());
        let nonce_bytes: [u8; 12] = random_array()?;
        let nonce = Nonce::from(nonce_bytes);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Decrypt)?;
        let mut out = Vec::with_capacity(12 + sealed.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn decrypt(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < 12 {
            return Err(SecretError::Decrypt);
        }
        let (nonce_bytes, body) = sealed.split_at(12);
        let nonce_array: [u8; 12] = nonce_bytes.try_into().map_err(|_| SecretError::Decrypt)?;
        let cipher = Aes256Gcm::new((&self.encryption).into());
        cipher
            .decrypt(
                &Nonce::from(nonce_array),
                Payload {
                    msg: body,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Decrypt)
    }
}

fn derive(master: &[u8; 32], label: &[u8]) -> [u8; 32] {
    mac(master, &[label])
}

fn keyed(key: &[u8; 32]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail for our 32-byte keys; the
    // fallback (an all-zero key) is unreachable.
    <HmacSha256 as hmac::KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <HmacSha256 as hmac::KeyInit>::new(&Default::default()))
}

fn mac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    finish(keyed(key), parts)
}

fn finish(mut mac: HmacSha256, parts: &[&[u8]]) -> [u8; 32] {
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn parse_master(text: &str) -> Result<[u8; 32], SecretError> {
    let bytes = hex::decode(text)
        .map_err(|_| SecretError::MasterKey("expected 64 hexadecimal characters".into()))?;
    bytes
        .try_into()
        .map_err(|_| SecretError::MasterKey("expected 64 hexadecimal characters".into()))
}

/// Creates a file readable only by its owner; fails if it already exists.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Creates the data directory readable only by its owner (it holds the master key and the
/// database). An existing directory is left as it is.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

pub fn random_array<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| SecretError::Random(e.to_string()))?;
    Ok(out)
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE32_LOWER: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// `len` characters drawn uniformly from the 62 alphanumerics (rejection sampling, no bias).
pub fn random_base62(len: usize) -> Result<String, SecretError> {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let chunk: [u8; 64] = random_array()?;
        for byte in chunk {
            // 248 = 4 × 62: bytes at or above it would bias the low characters.
            if byte < 248 && out.len() < len {
                out.push(BASE62[(byte % 62) as usize] as char);
            }
        }
    }
    Ok(out)
}

/// Lower-case base32 id (5 bits per character): used for key ids and request ids.
pub fn random_id(len: usize) -> Result<String, SecretError> {
    let bytes: [u8; 32] = random_array()?;
    Ok(bytes
        .iter()
        .take(len.min(32))
        .map(|b| BASE32_LOWER[(b & 31) as usize] as char)
        .collect())
}

/// Fixed-width base62 rendering of a 32-bit value (6 characters), used for key checksums.
pub fn base62_u32(value: u32) -> String {
    base62_u32_bytes(value).iter().map(|&b| b as char).collect()
}

/// [`base62_u32`] as ASCII bytes.
pub fn base62_u32_bytes(mut value: u32) -> [u8; 6] {
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_round_trips_and_binds_context() {
        let ring = Keyring::from_master(&[7; 32]);
        let sealed = ring
            .encrypt(b"Bearer upstream-secret", "server:demo")
            .unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"Bearer"));
        assert_eq!(
            ring.decrypt(&sealed, "server:demo").unwrap(),
            b"Bearer upstream-secret"
        );
        assert!(ring.decrypt(&sealed, "server:other").is_err());
        assert!(
            Keyring::from_master(&[8; 32])
                .decrypt(&sealed, "server:demo")
                .is_err()
        );
    }

    #[test]
    fn derived_keys_differ_by_purpose() {
        let master = [1; 32];
        let pepper = derive(&master, b"gatehouse/v1/api-key-pepper");
        let audit = derive(&master, b"gatehouse/v1/audit-chain");
        let ring = Keyring::from_master(&master);
        assert_ne!(pepper, ring.encryption);
        assert_ne!(pepper, audit);
        // The keyed states are the derived keys: the same input, different MACs.
        assert_eq!(ring.hash_secret(b"probe"), mac(&pepper, &[b"probe"]));
        assert_eq!(ring.audit_mac(&[b"probe"]), mac(&audit, &[b"probe"]));
    }

    #[test]
    fn master_key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let first = Keyring::load_or_create(dir.path()).unwrap();
        let second = Keyring::load_or_create(dir.path()).unwrap();
        assert_eq!(first.hash_secret(b"probe"), second.hash_secret(b"probe"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(MASTER_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn base62_is_fixed_width() {
        assert_eq!(base62_u32(0), "000000");
        assert_eq!(base62_u32(u32::MAX).len(), 6);
        assert_eq!(random_base62(43).unwrap().len(), 43);
    }
}
