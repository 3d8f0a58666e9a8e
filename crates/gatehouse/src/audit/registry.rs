//! The chain registry: one entry per writer's chain, itself chained.
//!
//! Every writer (one per process) appends to a chain of its own, so writers sharing a
//! database never race for one head. A chain is opened by its first append: in the same
//! transaction its entry is added to the registry (table `audit_chains`), naming the writer
//! and its start, and linking to the entry before it. The chain's first row links to the
//! entry's hash. So:
//! - a registered chain always has rows and a checkpoint; one without was emptied;
//! - a chain deleted with its entry breaks the next entry's link (and leaves a gap in the
//!   chain ids), unless it was the newest: only a checkpoint exported since shows that;
//! - two writers opening chains at once both pick the next id after the newest entry: the
//!   store's unique `chain_id` and `prev` refuse the second, which re-reads and retries.
//!
//! The first entry links to the last row of chain 0 (rows written before chains), so
//! deleting those rows wholesale breaks it too.

use subtle::ConstantTimeEq as _;

use crate::secrets::Keyring;

pub use crate::store::ChainStart;

impl ChainStart {
    pub fn new(
        keyring: &Keyring,
        chain_id: i64,
        prev: &str,
        started_ms: i64,
        writer: &str,
    ) -> Self {
        ChainStart {
            chain_id,
            prev: prev.to_owned(),
            started_ms,
            writer: writer.to_owned(),
            hash: hex::encode(mac(keyring, chain_id, prev, started_ms, writer)),
        }
    }

    /// Whether the hash matches the fields: made with this master key and not edited since.
    pub fn is_authentic(&self, keyring: &Keyring) -> bool {
        let expected = mac(
            keyring,
            self.chain_id,
            &self.prev,
            self.started_ms,
            &self.writer,
        );
        let Ok(presented) = hex::decode(&self.hash) else {
            return false;
        };
        presented.len() == expected.len() && bool::from(presented.ct_eq(&expected))
    }
}

fn mac(keyring: &Keyring, chain_id: i64, prev: &str, started_ms: i64, writer: &str) -> [u8; 32] {
    // The writer's name is free text, so it goes last: nothing after it to confuse.
    let head = format!("gatehouse audit chain\n{chain_id}\n{prev}\n{started_ms}\n");
    keyring.audit_mac(&[head.as_bytes(), writer.as_bytes()])
}

/// This process as a chain's writer: its host and process id.
pub fn this_writer() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!("{host} pid {}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edited_or_foreign_entry_is_not_authentic() {
        let ring = Keyring::from_master(&[7; 32]);
        let start = ChainStart::new(&ring, 2, &"ab".repeat(32), 1_750_000_000_000, "h pid 1");
        assert!(start.is_authentic(&ring));
        for edited in [
            ChainStart {
                chain_id: 3,
                ..start.clone()
            },
            ChainStart {
                prev: "cd".repeat(32),
                ..start.clone()
            },
            ChainStart {
                writer: "other pid 1".into(),
                ..start.clone()
            },
            ChainStart {
                hash: "zz".into(),
                ..start.clone()
            },
        ] {
            assert!(!edited.is_authentic(&ring), "{edited:?}");
        }
        assert!(!start.is_authentic(&Keyring::from_master(&[8; 32])));
    }

    #[test]
    fn golden_vector() {
        let ring = Keyring::from_master(&[7; 32]);
        let start = ChainStart::new(&ring, 1, &"0".repeat(64), 1_750_000_000_000, "h pid 1");
        assert_eq!(start.hash, CHAIN_1);
    }

    const CHAIN_1: &str = "9ba2f909311ec9c2b00569c980249c5c90f3ba1ed0ab59e5ef716e564aaf8de4";
}
