//! Tool pinning: a server's tool definitions (name, description, input schema) are hashed the
//! first time Gatehouse sees them in a `tools/list` result and trusted from then on — unless
//! the description carries prompt-injection markers, in which case the tool waits for an
//! operator. A definition that later changes (a "rug pull": same name, new behaviour) is held
//! as pending: with the `block` action the tool disappears from `tools/list` and its calls are
//! refused until `gatehouse servers approve-tools`; with `warn` it passes and is recorded.

use parking_lot::RwLock;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};
use tokio::sync::mpsc;

use crate::{
    guardrails::{self, Direction, Guardrail, GuardrailSpec},
    store::{DynStore, ToolObservation, ToolPin},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinAction {
    Block,
    Warn,
    Off,
}

impl PinAction {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "block" => Some(PinAction::Block),
            "warn" => Some(PinAction::Warn),
            "off" => Some(PinAction::Off),
            _ => None,
        }
    }
}

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

/// Hex SHA-256 of the canonical JSON (sorted keys) of what a tool is: its name, description
/// and input schema. Titles and annotations may change without a new approval.
pub fn definition_hash(tool: &Value) -> (String, String) {
    let definition = json!({
        "name": tool.get("name"),
        "description": tool.get("description"),
        "inputSchema": tool.get("inputSchema"),
    });
    let canonical = definition.to_string();
    (hex::encode(Sha256::digest(canonical.as_bytes())), canonical)
}

/// Shared between requests: observations on their way to the store, and tools known to have
/// changed since the last snapshot (so a call right after the change is already refused).
pub struct PinWatch {
    tx: mpsc::UnboundedSender<ToolObservation>,
    /// Definitions held back since the last snapshot: (server, tool) → the held hash.
    held: RwLock<HashMap<(String, String), String>>,
    injection: Arc<Guardrail>,
}

impl PinWatch {
    pub fn start(store: DynStore) -> Result<Arc<PinWatch>, String> {
        let (tx, mut rx) = mpsc::unbounded_channel::<ToolObservation>();
        let spec = GuardrailSpec {
            direction: Direction::Response,
            action: guardrails::Action::Warn,
            detectors: vec!["prompt_injection".into()],
            patterns: Vec::new(),
            words: Vec::new(),
            allow: Vec::new(),
            paths: Vec::new(),
        };
        let injection = Arc::new(Guardrail::compile(
            "tool-description",
            None,
            None,
            None,
            &spec,
        )?);
        tokio::spawn(async move {
            while let Some(seen) = rx.recv().await {
                if let Err(err) = store.observe_tool(&seen).await {
                    tracing::error!(error = %err, server = %seen.server, tool = %seen.tool, "could not record a tool definition");
                }
            }
        });
        Ok(Arc::new(PinWatch {
            tx,
            held: RwLock::default(),
            injection,
        }))
    }

    /// Held here and not (yet) approved in the snapshot.
    pub fn is_held(&self, server: &str, tool: &str, pins: &ServerPins) -> bool {
        match self.held.read().get(&(server.to_owned(), tool.to_owned())) {
            Some(hash) => pins.approved.get(tool) != Some(&Some(hash.clone())),
            None => false,
        }
    }

    /// Whether a call to `tool` must wait for an operator.
    pub fn blocks_call(
        &self,
        server: &str,
        tool: &str,
        pins: &ServerPins,
        action: PinAction,
    ) -> bool {
        action == PinAction::Block
            && (pins.pending.contains(tool)
                || pins.approved.get(tool) == Some(&None)
                || self.is_held(server, tool, pins))
    }

    /// Checks every tool of a `tools/list` result against the pins; returns the tools that
    /// must be hidden and notes for the audit trail.
    pub fn review(
        &self,
        server: &str,
        pins: &ServerPins,
        action: PinAction,
        tools: &[Value],
    ) -> (HashSet<String>, Vec<String>) {
        let mut hidden = HashSet::new();
        let mut notes = Vec::new();
        if action == PinAction::Off {
            return (hidden, notes);
        }
        for tool in tools {
            let Some(name) = tool.get("name").and_then(Value::as_str) else {
                continue;
            };
            let (hash, definition) = definition_hash(tool);
            let approved = pins.approved.get(name);
            let suspicious = approved.is_none() && {
                let mut description = tool.get("description").cloned().unwrap_or(Value::Null);
                let outcome = guardrails::apply(
                    std::slice::from_ref(&self.injection),
                    Direction::Response,
                    None,
                    &mut description,
                );
                !outcome.findings.is_empty()
            };
            let trusted = match approved {
                Some(Some(approved)) => *approved == hash,
                Some(None) => false,
                None => !suspicious,
            };
            let settled = matches!(approved, Some(Some(h)) if *h == hash)
                && !pins.pending.contains(name)
                && !self.is_held(server, name, pins);
            if !trusted && action == PinAction::Block {
                self.held
                    .write()
                    .insert((server.to_owned(), name.to_owned()), hash.clone());
            }
            if !settled {
                let _ = self.tx.send(ToolObservation {
                    server: server.to_owned(),
                    tool: name.to_owned(),
                    hash,
                    definition,
                    suspicious: suspicious
                        .then(|| "prompt-injection markers in the description".to_owned()),
                    at: crate::now_ms(),
                });
            }
            if !trusted {
                let verdict = if action == PinAction::Block {
                    "held"
                } else {
                    "changed"
                };
                notes.push(format!("tool_pin:{name}:{verdict}"));
                if action == PinAction::Block {
                    hidden.insert(name.to_owned());
                }
            }
        }
        (hidden, notes)
    }
}
