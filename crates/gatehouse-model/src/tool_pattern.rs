//! Tool name patterns: what a connection (client → server), an API key or a policy names.
//!
//! Patterns are deliberately small globs (`*` any run, `?` one character) over the MCP tool
//! name alphabet, so an operator can read a grant at a glance and a typo is an error, not a
//! pattern that silently matches nothing.

use serde::{Deserialize, Serialize};

/// A validated tool-name glob.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ToolPattern(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad tool pattern {pattern:?}: {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: &'static str,
}

impl ToolPattern {
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        let err = |reason| PatternError {
            pattern: pattern.to_owned(),
            reason,
        };
        if pattern.is_empty() {
            return Err(err("empty"));
        }
        if pattern.len() > 128 {
            return Err(err("longer than 128 characters"));
        }
        for c in pattern.chars() {
            match c {
                'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '-' | '.' | '/' | '*' | '?' => {}
                '[' | ']' | '{' | '}' | '!' | '\\' => {
                    return Err(err(
                        "only `*` and `?` are supported as wildcards (no classes or alternatives)",
                    ));
                }
                _ => return Err(err("tool names use letters, digits, `_`, `-`, `.` and `/`")),
            }
        }
        Ok(Self(pattern.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.0.as_bytes(), name.as_bytes())
    }
}

impl TryFrom<String> for ToolPattern {
    type Error = PatternError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ToolPattern> for String {
    fn from(value: ToolPattern) -> Self {
        value.0
    }
}

impl std::fmt::Display for ToolPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a comma-separated list such as `echo,read_*`.
pub fn parse_pattern_list(list: &str) -> Result<Vec<ToolPattern>, PatternError> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(ToolPattern::parse)
        .collect()
}

/// Linear-time glob match with single-star backtracking (no exponential blow-up).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_documented() {
        let p = |s| ToolPattern::parse(s).unwrap();
        assert!(p("echo").matches("echo"));
        assert!(!p("echo").matches("echo2"));
        assert!(p("read_*").matches("read_file"));
        assert!(p("read_*").matches("read_"));
        assert!(!p("read_*").matches("write_file"));
        assert!(p("*").matches("anything"));
        assert!(p("a?c").matches("abc"));
        assert!(!p("a?c").matches("ac"));
        assert!(p("*_*_x").matches("a_b_c_x"));
        assert!(!p("*a*a*a*a*b").matches(&"a".repeat(100)));
    }

    #[test]
    fn bad_patterns_say_why() {
        assert!(ToolPattern::parse("").is_err());
        assert!(
            ToolPattern::parse("[ab]")
                .unwrap_err()
                .reason
                .contains("wildcards")
        );
        assert!(ToolPattern::parse("no spaces").is_err());
        assert_eq!(parse_pattern_list("a, b*,").unwrap().len(), 2);
    }
}
