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
