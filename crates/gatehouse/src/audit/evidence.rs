//! Evidence bundles: a range of the trail in one file that anyone can check offline, without
//! the database or the master key (docs/adr/0009-evidence-bundles.md).
//!
//! The rows' chain hashes are HMACs with the audit key, which an auditor does not hold. So the
//! exporter, which does, checks every row's hash and then signs what it checked with the
//! evidence key (Ed25519, derived from the master key; its public half is published by
//! `gatehouse audit public-key` and named in the bundle):
//! - every row line carries a public digest, `d(n) = SHA-256(d(n-1) ‖ canonical row)`, chained
//!   per chain from a start value that names the chain and the row before the bundle;
//! - the manifest (the last line) names, per chain, the first and last row, the hash before
//!   the first and of the last, and the last digest; every chain's head after the bundle; the
//!   registry entries of chains opened in it; the stored checkpoints; and the previous
//!   bundle's file digest, so consecutive bundles chain. The manifest is signed.
//!
//! A verifier recomputes each digest (an edited row shows as that row), checks each chain's
//! rows are complete and in order against the manifest (a deleted row, two swapped, the last
//! rows dropped), and checks the signature (an edited manifest, a swapped key).

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use gatehouse_model::audit::{AuditRow, ChainStart, Checkpoint};

mod export;
mod verify;

pub use export::{ExportRange, Exported, export};
pub use verify::{BundleProblem, BundleReport, verify_bundle, verify_sequence};

/// Names the file format in the manifest.
pub const FORMAT: &str = "gatehouse-audit-bundle";
pub const VERSION: u32 = 1;

/// One row of the bundle and its public digest (hex).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowLine {
    pub row: AuditRow,
    pub digest: String,
}

/// The last line: what the exporter signs, and the signature (hex, Ed25519).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestLine {
    pub manifest: Manifest,
    pub signature: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub created_ms: i64,
    /// The bundle holds the rows with `after_seq < seq <= upto_seq` (table order).
    pub after_seq: i64,
    pub upto_seq: i64,
    pub rows: u64,
    /// Each chain's part of the bundle.
    pub chains: Vec<Segment>,
    /// Every chain's last row at `upto_seq` (this bundle's and those before it): where each
    /// chain continues in the next bundle.
    pub heads: Vec<Head>,
    /// Registry entries of the chains whose first row is in the bundle.
    pub registry: Vec<ChainStart>,
    /// The stored checkpoints of the bundle's chains when it was made (MAC'd with the audit
    /// key: a holder of the master key can check them too).
    pub checkpoints: Vec<Checkpoint>,
    /// The bundle before this one, when exported as its continuation.
    pub previous: Option<Previous>,
    /// The evidence key's public half (hex) that signed this manifest.
    pub public_key: String,
}

/// One chain's rows in a bundle: `first_seq..=last_seq` of its `chain_seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub chain_id: i64,
    pub first_seq: i64,
    pub last_seq: i64,
    /// The chain hash the first row links to.
    pub prev_hash: String,
    pub last_hash: String,
    /// The public digest of the last row.
    pub digest: String,
}

/// Where a chain stands: its last row's `chain_seq` and chain hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub chain_id: i64,
    pub seq: i64,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Previous {
    /// SHA-256 (hex) of the previous bundle's file.
    pub digest: String,
    pub upto_seq: i64,
}

/// The digest a chain's first row in a bundle chains from: names the chain and the row
/// before, so a segment cannot be passed off as another chain's or another place's.
pub fn start_digest(chain_id: i64, first_seq: i64, prev_hash: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(format!(
            "gatehouse audit bundle v1\nchain {chain_id}\nafter {}\n{prev_hash}",
            first_seq.saturating_sub(1)
        ))
        .finalize()
        .into()
}

/// `d(n) = SHA-256(d(n-1) ‖ canonical row)`; the canonical row is its serde JSON (the
/// model's field order), so whitespace or key order in the file do not matter but every value
/// does.
pub fn row_digest(prev: &[u8; 32], row: &AuditRow) -> [u8; 32] {
    let canonical = serde_json::to_vec(row).unwrap_or_default();
    Sha256::new()
        .chain_update(prev)
        .chain_update(&canonical)
        .finalize()
        .into()
}

/// The evidence public key as bundles name it and auditors pin it (hex).
pub fn public_key_hex(keyring: &crate::secrets::Keyring) -> String {
    hex::encode(keyring.evidence_public_key())
}

/// What the signature covers: a domain line, then the manifest's JSON.
pub fn signed_bytes(manifest: &Manifest) -> Vec<u8> {
    let mut bytes = b"gatehouse audit bundle manifest v1\n".to_vec();
    bytes.extend(serde_json::to_vec(manifest).unwrap_or_default());
    bytes
}

/// Whether `signature` (hex) is the evidence key `public_key`'s (hex) over `message`.
pub fn signature_verifies(public_key: &str, message: &[u8], signature: &str) -> bool {
    let (Ok(key), Ok(signature)) = (hex::decode(public_key), hex::decode(signature)) else {
        return false;
    };
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
        .verify(message, &signature)
        .is_ok()
}

/// SHA-256 of a file, hex: how a bundle is named by the next one and by a retention seal.
pub fn file_digest(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..read]);
    }
}

/// Why an export could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A row fails its keyed hash: the trail must be verified (and repaired) first; nothing
    /// unverified is signed.
    #[error(
        "chain {chain_id}: row {seq} does not verify with this master key; nothing was exported (run `gatehouse audit verify`)"
    )]
    Unverified { chain_id: i64, seq: i64 },
    #[error("previous bundle {path}: {why}")]
    Previous { path: String, why: String },
}

impl EvidenceError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        EvidenceError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
