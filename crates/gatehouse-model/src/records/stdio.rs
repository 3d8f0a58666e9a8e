//! A server that is a local program (ADR 0006 §1–3): what to run and how it is shared. The
//! environment's values are credentials: they are sealed like an injected header's value, and
//! only their names are kept in the clear.

use serde::{Deserialize, Serialize};

/// How clients share the program.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sharing {
    /// One child for every client, multiplexed.
    #[default]
    Shared,
    /// One child per principal (client and person), for servers that keep per-user state.
    PerPrincipal,
}

impl Sharing {
    pub fn as_str(self) -> &'static str {
        match self {
            Sharing::Shared => "shared",
            Sharing::PerPrincipal => "per_principal",
        }
    }
}

impl std::str::FromStr for Sharing {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "shared" => Ok(Sharing::Shared),
            "per_principal" => Ok(Sharing::PerPrincipal),
            other => Err(format!(
                "sharing {other:?} is not one of shared, per_principal"
            )),
        }
    }
}

/// Operating-system limits on the child; an unset one stays as Gatehouse's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StdioLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_files: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<u64>,
}

impl StdioLimits {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What a stdio server runs. Stored as JSON beside the server row; `env_sealed` in a column
/// of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StdioSettings {
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// The names of the child's environment variables; their values are sealed.
    #[serde(default)]
    pub env_names: Vec<String>,
    /// The values, as a sealed JSON object `{name: value}`.
    #[serde(skip)]
    pub env_sealed: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default)]
    pub sharing: Sharing,
    /// Per-principal children at most (`per_principal` only); a new principal beyond it is
    /// refused, never a busy child evicted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_children: Option<u32>,
    /// A per-principal child unused this long (seconds) is stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "StdioLimits::is_empty")]
    pub limits: StdioLimits,
}

/// Whether `[gateway] stdio_commands` lets `command` run: an entry matches the command
/// exactly, or, ending in `*`, every command that starts with what precedes it. An empty list
/// allows nothing; no list at all (`None`) is the caller's decision.
pub fn command_allowed(patterns: &[String], command: &str) -> bool {
    patterns
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            // A prefix never lets `..` climb out of the directory it names.
            Some(prefix) => command.starts_with(prefix) && !command.contains(".."),
            None => pattern == command,
        })
}

/// An environment variable's name as POSIX shells accept it.
pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_match_exactly_or_by_a_trailing_star() {
        let allow = vec!["npx".to_owned(), "/opt/mcp/bin/*".to_owned()];
        assert!(command_allowed(&allow, "npx"));
        assert!(!command_allowed(&allow, "npx2"));
        assert!(!command_allowed(&allow, "/usr/bin/npx"));
        assert!(command_allowed(&allow, "/opt/mcp/bin/files"));
        assert!(!command_allowed(&allow, "/opt/mcp/bin/../../../bin/sh"));
        assert!(!command_allowed(&[], "npx"));
    }

    #[test]
    fn sharing_reads_its_two_names_only() {
        assert_eq!("shared".parse(), Ok(Sharing::Shared));
        assert_eq!("per_principal".parse(), Ok(Sharing::PerPrincipal));
        assert!("per-user".parse::<Sharing>().is_err());
    }

    #[test]
    fn env_names_are_shell_names() {
        assert!(valid_env_name("API_KEY"));
        assert!(valid_env_name("_x1"));
        assert!(!valid_env_name("1X"));
        assert!(!valid_env_name("A=B"));
        assert!(!valid_env_name(""));
    }
}
