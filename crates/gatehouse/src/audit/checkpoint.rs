//! Signed checkpoints of the chain head.
//!
//! The chain alone cannot show that its newest rows were deleted: what is left is still a
//! valid chain. So every append also moves a checkpoint (the last row's `seq` and `hash`,
//! MAC'd with the audit key) in the same transaction, in a table of its own. Rows deleted
//! from the end no longer reach the checkpoint, and the writer continues numbering after the
//! checkpoint, not after the last row left. Someone who can write the database could still
//! put back an older checkpoint they saved, so checkpoints are also exported
//! (`gatehouse audit checkpoint`) to be kept elsewhere and checked with
//! `gatehouse audit verify --checkpoint`.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use crate::secrets::Keyring;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The chain head: the last row's sequence number and hash.
    pub seq: i64,
    pub hash: String,
    /// When the checkpoint was signed.
    pub ts_ms: i64,
    /// HMAC with the audit key over the three fields above, hex.
    pub mac: String,
}

impl Checkpoint {
    pub fn sign(keyring: &Keyring, seq: i64, hash: &str, ts_ms: i64) -> Self {
        Checkpoint {
            seq,
            hash: hash.to_owned(),
            ts_ms,
            mac: hex::encode(mac(keyring, seq, hash, ts_ms)),
        }
    }

    /// Whether the MAC matches: made with this master key and not edited since.
    pub fn is_authentic(&self, keyring: &Keyring) -> bool {
        let expected = mac(keyring, self.seq, &self.hash, self.ts_ms);
        let Ok(presented) = hex::decode(&self.mac) else {
            return false;
        };
        presented.len() == expected.len() && bool::from(presented.ct_eq(&expected))
    }
}

fn mac(keyring: &Keyring, seq: i64, hash: &str, ts_ms: i64) -> [u8; 32] {
    let text = format!("gatehouse audit checkpoint\n{seq}\n{hash}\n{ts_ms}");
    keyring.audit_mac(&[text.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edited_or_foreign_checkpoint_is_not_authentic() {
        let ring = Keyring::from_master(&[7; 32]);
        let signed = Checkpoint::sign(&ring, 41, &"ab".repeat(32), 1_750_000_000_000);
        assert!(signed.is_authentic(&ring));
        let older = Checkpoint {
            seq: 40,
            ..signed.clone()
        };
        assert!(!older.is_authentic(&ring));
        assert!(!signed.is_authentic(&Keyring::from_master(&[8; 32])));
        let garbled = Checkpoint {
            mac: "zz".into(),
            ..signed
        };
        assert!(!garbled.is_authentic(&ring));
    }
}
