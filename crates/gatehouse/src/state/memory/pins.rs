//! Held tool definitions in process memory: server → tool → the held hash.

use parking_lot::RwLock;
use std::collections::HashMap;

use crate::{pinning::ServerPins, state::PinHolds};

#[derive(Debug, Default)]
pub struct MemoryPinHolds {
    held: RwLock<HashMap<String, HashMap<String, String>>>,
}

impl PinHolds for MemoryPinHolds {
    fn hold(&self, server: &str, tool: &str, hash: &str) {
        self.held
            .write()
            .entry(server.to_owned())
            .or_default()
            .insert(tool.to_owned(), hash.to_owned());
    }

    fn is_held(&self, server: &str, tool: &str, pins: &ServerPins) -> bool {
        let held = self.held.read();
        match held.get(server).and_then(|tools| tools.get(tool)) {
            Some(hash) => {
                !matches!(pins.approved.get(tool), Some(Some(approved)) if approved == hash)
            }
            None => false,
        }
    }

    fn forget_recorded(&self, server: &str, pins: &ServerPins) {
        if !self.held.read().contains_key(server) {
            return;
        }
        let mut held = self.held.write();
        if let Some(tools) = held.get_mut(server) {
            tools.retain(|tool, hash| {
                !(pins.pending.contains(tool)
                    || matches!(pins.approved.get(tool), Some(Some(approved)) if approved == hash))
            });
            if tools.is_empty() {
                held.remove(server);
            }
        }
    }

    fn len(&self) -> usize {
        self.held.read().values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_lasts_until_the_snapshot_records_or_approves_the_definition() {
        let holds = MemoryPinHolds::default();
        let mut pins = ServerPins::default();
        holds.hold("demo", "echo", "new");
        holds.hold("demo", "sum", "new");
        holds.hold("other", "echo", "new");
        assert!(holds.is_held("demo", "echo", &pins));
        assert!(!holds.is_held("demo", "time", &pins));
        pins.approved.insert("echo".into(), Some("new".into()));
        assert!(
            !holds.is_held("demo", "echo", &pins),
            "approved at the held hash"
        );
        pins.pending.insert("sum".into());
        holds.forget_recorded("demo", &pins);
        assert_eq!(holds.len(), 1, "only the other server's hold is left");
        assert!(holds.is_held("other", "echo", &ServerPins::default()));
    }
}
