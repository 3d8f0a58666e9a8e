//! The audit chain's own records, as the store keeps them: each chain's signed start (the
//! registry) and signed checkpoints. Signing and checking them is `audit/registry.rs` and
//! `audit/checkpoint.rs`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainStart {
    pub chain_id: i64,
    /// The hash of the entry before this one (for the first entry, chain 0's last row's, or
    /// zeros).
    pub prev: String,
    pub started_ms: i64,
    /// Which process wrote the chain (host and process id), for the operator.
    pub writer: String,
    /// HMAC with the audit key over the fields above, hex; the chain's first row links to it.
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The chain; 0 (also when absent, in checkpoints exported before chains) for the rows
    /// written before chains.
    #[serde(default)]
    pub chain_id: i64,
    /// The chain head: the last row's sequence number in the chain and its hash.
    pub seq: i64,
    pub hash: String,
    /// When the checkpoint was signed.
    pub ts_ms: i64,
    /// HMAC with the audit key over the fields above, hex.
    pub mac: String,
}
