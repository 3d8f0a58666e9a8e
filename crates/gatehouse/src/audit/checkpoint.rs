//! Signed checkpoints of each chain's head.
//!
//! A chain alone cannot show that its newest rows were deleted: what is left is still a
//! valid chain. So every append also moves its chain's checkpoint (the last row's chain
//! sequence number and hash, MAC'd with the audit key) in the same transaction, in a table of
//! its own. Rows deleted from the end no longer reach the checkpoint. Someone who can write
//! the database could still put back an older checkpoint they saved, so checkpoints are also
//! exported (`gatehouse audit checkpoint`, every chain's) to be kept elsewhere and checked
//! with `gatehouse audit verify --checkpoint`.

use subtle::ConstantTimeEq as _;

use crate::secrets::Keyring;

pub use crate::store::Checkpoint;

impl Checkpoint {
    pub fn sign(keyring: &Keyring, chain_id: i64, seq: i64, hash: &str, ts_ms: i64) -> Self {
        Checkpoint {
            chain_id,
            seq,
            hash: hash.to_owned(),
            ts_ms,
            mac: hex::encode(mac(keyring, chain_id, seq, hash, ts_ms)),
        }
    }

    /// Whether the MAC matches: made with this master key and not edited since.
    pub fn is_authentic(&self, keyring: &Keyring) -> bool {
        let expected = mac(keyring, self.chain_id, self.seq, &self.hash, self.ts_ms);
        let Ok(presented) = hex::decode(&self.mac) else {
            return false;
        };
        presented.len() == expected.len() && bool::from(presented.ct_eq(&expected))
    }
}

/// Chain 0's checkpoints keep the form they had before chains, so one exported then still
/// verifies; every other chain's name the chain, so one cannot stand in for another's.
fn mac(keyring: &Keyring, chain_id: i64, seq: i64, hash: &str, ts_ms: i64) -> [u8; 32] {
    let text = if chain_id == 0 {
        format!("gatehouse audit checkpoint\n{seq}\n{hash}\n{ts_ms}")
    } else {
        format!("gatehouse audit checkpoint\nchain {chain_id}\n{seq}\n{hash}\n{ts_ms}")
    };
    keyring.audit_mac(&[text.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edited_or_foreign_checkpoint_is_not_authentic() {
        let ring = Keyring::from_master(&[7; 32]);
        let signed = Checkpoint::sign(&ring, 3, 41, &"ab".repeat(32), 1_750_000_000_000);
        assert!(signed.is_authentic(&ring));
        let older = Checkpoint {
            seq: 40,
            ..signed.clone()
        };
        assert!(!older.is_authentic(&ring));
        let other_chain = Checkpoint {
            chain_id: 4,
            ..signed.clone()
        };
        assert!(!other_chain.is_authentic(&ring));
        assert!(!signed.is_authentic(&Keyring::from_master(&[8; 32])));
        let garbled = Checkpoint {
            mac: "zz".into(),
            ..signed
        };
        assert!(!garbled.is_authentic(&ring));
    }

    /// Made before chains existed (no `chain_id`): still authentic, as chain 0's.
    #[test]
    fn a_checkpoint_exported_before_chains_still_verifies() {
        let ring = Keyring::from_master(&[7; 32]);
        let text = r#"{"seq":41,"hash":"ab","ts_ms":1750000000000,
            "mac":"MAC"}"#
            .replace("MAC", &hex::encode(legacy_mac(&ring)));
        let exported: Checkpoint = serde_json::from_str(&text).unwrap();
        assert_eq!(exported.chain_id, 0);
        assert!(exported.is_authentic(&ring));
    }

    /// The MAC as the code before chains computed it.
    fn legacy_mac(ring: &Keyring) -> [u8; 32] {
        ring.audit_mac(&[b"gatehouse audit checkpoint\n41\nab\n1750000000000"])
    }
}
