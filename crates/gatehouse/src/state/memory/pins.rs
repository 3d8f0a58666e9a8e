//! Held tool definitions in process memory: server → tool → the held hash.

use parking_lot::RwLock;
use std::collections::HashMap;

use crate::state::{PinHolds, ServerPins};

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

    #[test]
    fn concurrent_holds_and_forgets_keep_every_unrecorded_hold() {
        let holds = MemoryPinHolds::default();
        let mut recorded = ServerPins::default();
        for n in 0..100 {
            recorded.pending.insert(format!("even-{n}"));
        }
        std::thread::scope(|threads| {
            for t in 0..4 {
                let (holds, recorded) = (&holds, &recorded);
                threads.spawn(move || {
                    for n in 0..100 {
                        holds.hold("demo", &format!("even-{n}"), "h");
                        holds.hold("demo", &format!("odd-{t}-{n}"), "h");
                        holds.forget_recorded("demo", recorded);
                    }
                });
            }
        });
        holds.forget_recorded("demo", &recorded);
        let none = ServerPins::default();
        assert_eq!(holds.len(), 400, "the odd holds, none recorded, all kept");
        assert!(holds.is_held("demo", "odd-3-99", &none));
        assert!(!holds.is_held("demo", "even-0", &none));
    }
}
