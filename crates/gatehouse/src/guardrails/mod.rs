//! Guardrails: content rules on what crosses the gateway — tool arguments, resource URIs and
//! prompt arguments on the way in; tool results, resource contents and prompt messages
//! (including tool descriptions in `tools/list`) on the way out, in JSON and SSE alike.
//!
//! Every detector of every guardrail that applies is compiled into one `RegexSet`, so a string
//! is scanned once to learn which detectors fire; only those then locate their spans, and
//! validators (Luhn, mod-97, checksums) cut false positives. Actions: `block` (refuse, naming
//! the rule and detector, never the matched text), `redact` (replace the span, keep the JSON
//! valid and everything else intact), `warn` (pass and record).

pub mod detectors;
mod scan;

pub use scan::{Finding, Outcome, apply, apply_at, apply_for_any_tool};

use regex::{Regex, RegexSet};
use serde::{Deserialize, Serialize};
use std::{collections::HashSet, sync::Arc};

use detectors::Builtin;
use gatehouse_model::{
    names::{Name, NameKind},
    tool_pattern::ToolPattern,
};

/// Guardrails are stored beside policies (same scopes, same CLI) under this kind.
pub const GUARDRAIL_KIND: &str = "guardrail";

/// Compiles a stored guardrail; the error names the offending field.
pub fn compile_record(
    record: &gatehouse_model::records::PolicyRecord,
) -> Result<Guardrail, String> {
    Name::parse(NameKind::Guardrail, &record.id).map_err(|e| e.to_string())?;
    let spec: GuardrailSpec =
        serde_json::from_value(record.spec.clone()).map_err(|e| format!("guardrail spec: {e}"))?;
    let tools = record
        .tools
        .as_deref()
        .map(ToolPattern::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    Guardrail::compile(
        &record.id,
        record.client.clone(),
        record.server.clone(),
        tools,
        &spec,
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Request,
    Response,
    #[default]
    Both,
}

impl Direction {
    pub fn covers(self, other: Direction) -> bool {
        self == Direction::Both || self == other
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Block,
    Redact,
    Warn,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Block => "block",
            Action::Redact => "redact",
            Action::Warn => "warn",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NamedPattern {
    pub name: String,
    pub regex: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GuardrailSpec {
    #[serde(default)]
    pub direction: Direction,
    pub action: Action,
    /// Built-in detector names, or `"default"` for the default set.
    #[serde(default)]
    pub detectors: Vec<String>,
    /// Custom regular expressions, each with a name reported in findings.
    #[serde(default)]
    pub patterns: Vec<NamedPattern>,
    /// Words or phrases (case-insensitive, whole words), reported as `word_list`.
    #[serde(default)]
    pub words: Vec<String>,
    /// Exact values never reported (cuts known false positives).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Only strings under these paths (`$.query`, `$.content[0].text`) relative to the
    /// arguments (requests) or the result (responses). Empty: everything.
    #[serde(default)]
    pub paths: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct Detector {
    pub name: Arc<str>,
    pub regex: Regex,
    pub builtin: Option<Builtin>,
}

/// A compiled guardrail with its scope.
#[derive(Debug)]
pub struct Guardrail {
    pub id: Arc<str>,
    pub client: Option<String>,
    pub server: Option<String>,
    pub tools: Option<ToolPattern>,
    pub direction: Direction,
    pub action: Action,
    pub(crate) set: RegexSet,
    pub(crate) detectors: Vec<Detector>,
    pub(crate) allow: HashSet<String>,
    pub(crate) paths: Vec<CompiledPath>,
}

/// A `paths` entry, parsed once when the guardrail is compiled.
#[derive(Debug)]
pub(crate) struct CompiledPath {
    pub steps: Vec<crate::policy::arguments::Step>,
}

impl Guardrail {
    pub fn compile(
        id: &str,
        client: Option<String>,
        server: Option<String>,
        tools: Option<ToolPattern>,
        spec: &GuardrailSpec,
    ) -> Result<Self, String> {
        let mut detectors = Vec::new();
        let mut builtins: Vec<Builtin> = Vec::new();
        for name in &spec.detectors {
            if name == "default" {
                builtins.extend(Builtin::DEFAULT_SET);
            } else {
                let known: Vec<&str> = Builtin::ALL.iter().map(|b| b.name()).collect();
                builtins.push(Builtin::parse(name).ok_or_else(|| {
                    format!(
                        "unknown detector {name:?} (one of default, {})",
                        known.join(", ")
                    )
                })?);
            }
        }
        builtins.dedup();
        for builtin in builtins {
            detectors.push(Detector {
                name: Arc::from(builtin.name()),
                regex: Regex::new(builtin.pattern()).map_err(|e| e.to_string())?,
                builtin: Some(builtin),
            });
        }
        for pattern in &spec.patterns {
            let regex = Regex::new(&pattern.regex)
                .map_err(|e| format!("pattern {:?}: {e}", pattern.name))?;
            detectors.push(Detector {
                name: Arc::from(pattern.name.as_str()),
                regex,
                builtin: None,
            });
        }
        if !spec.words.is_empty() {
            let words: Vec<String> = spec.words.iter().map(|w| regex::escape(w.trim())).collect();
            let regex = Regex::new(&format!(r"(?i)\b(?:{})\b", words.join("|")))
                .map_err(|e| format!("words: {e}"))?;
            detectors.push(Detector {
                name: Arc::from("word_list"),
                regex,
                builtin: None,
            });
        }
        if detectors.is_empty() {
            return Err("a guardrail needs detectors, patterns or words".into());
        }
        let paths = spec
            .paths
            .iter()
            .map(|path| {
                crate::policy::arguments::parse_path(path).map(|steps| CompiledPath { steps })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let set =
            RegexSet::new(detectors.iter().map(|d| d.regex.as_str())).map_err(|e| e.to_string())?;
        Ok(Self {
            id: Arc::from(id),
            client,
            server,
            tools,
            direction: spec.direction,
            action: spec.action,
            set,
            detectors,
            allow: spec.allow.iter().cloned().collect(),
            paths,
        })
    }

    pub fn attached_to(&self, client: Option<&str>, server: &str) -> bool {
        self.client.as_deref().is_none_or(|c| Some(c) == client)
            && self.server.as_deref().is_none_or(|s| s == server)
    }

    pub fn applies(&self, direction: Direction, tool: Option<&str>) -> bool {
        self.direction.covers(direction)
            && self
                .tools
                .as_ref()
                .is_none_or(|p| tool.is_some_and(|t| p.matches(t)))
    }
}
