//! The pins of one server (`pinning.rs`), a value the pin-hold backends read.

use std::collections::{HashMap, HashSet};

use gatehouse_model::records::ToolPin;

/// The pins of one server, as the snapshot holds them.
#[derive(Debug, Default)]
pub struct ServerPins {
    /// Tool name → approved definition hash (`None`: never approved).
    pub approved: HashMap<String, Option<String>>,
    /// Tools with a definition waiting for approval.
    pub pending: HashSet<String>,
}

impl ServerPins {
    pub fn from_rows<'a>(rows: impl Iterator<Item = &'a ToolPin>) -> Self {
        let mut pins = ServerPins::default();
        for row in rows {
            pins.approved
                .insert(row.tool.clone(), row.approved_hash.clone());
            if row.pending_hash.is_some() {
                pins.pending.insert(row.tool.clone());
            }
        }
        pins
    }
}
