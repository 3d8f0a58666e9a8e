//! The scope language: what an access token may do, always within the client's connections.
//!
//! | scope | grants (never beyond the connection) |
//! |---|---|
//! | `mcp:{server}` | everything the connection to `server` grants |
//! | `mcp:{server}:read` | lifecycle and listing methods, `resources/*`, `prompts/*`, completion |
//! | `mcp:{server}:tool:{name}` | lifecycle and listing methods, and `tools/call` of `name` |
//!
//! `offline_access` asks for a refresh token. Anything else is `invalid_scope`: an unknown scope
//! is more likely a typo than something to ignore silently.

use std::{collections::BTreeSet, fmt};

/// One scope token.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScopeItem {
    Server(String),
    Read(String),
    Tool { server: String, tool: String },
    OfflineAccess,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScopeError {
    #[error("unknown scope {0:?}")]
    Unknown(String),
    #[error("scope {0:?} is beyond what this client is granted")]
    NotGranted(String),
    #[error("scope string longer than {MAX_SCOPE_LEN} bytes")]
    TooLong,
}

pub const MAX_SCOPE_LEN: usize = 4096;

/// A parsed, de-duplicated scope set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope(BTreeSet<ScopeItem>);

fn valid_server(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Exact tool names only (no wildcards): a scope names what a token can do, plainly.
fn valid_tool(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./".contains(&b))
}

impl ScopeItem {
    pub fn parse(token: &str) -> Result<Self, ScopeError> {
        let unknown = || ScopeError::Unknown(token.to_owned());
        if token == "offline_access" {
            return Ok(ScopeItem::OfflineAccess);
        }
        let rest = token.strip_prefix("mcp:").ok_or_else(unknown)?;
        let (server, tail) = match rest.split_once(':') {
            Some((server, tail)) => (server, Some(tail)),
            None => (rest, None),
        };
        if !valid_server(server) {
            return Err(unknown());
        }
        let server = server.to_owned();
        match tail {
            None => Ok(ScopeItem::Server(server)),
            Some("read") => Ok(ScopeItem::Read(server)),
            Some(tail) => match tail.strip_prefix("tool:") {
                Some(tool) if valid_tool(tool) => Ok(ScopeItem::Tool {
                    server,
                    tool: tool.to_owned(),
                }),
                _ => Err(unknown()),
            },
        }
    }

    pub fn server(&self) -> Option<&str> {
        match self {
            ScopeItem::Server(s) | ScopeItem::Read(s) | ScopeItem::Tool { server: s, .. } => {
                Some(s)
            }
            ScopeItem::OfflineAccess => None,
        }
    }
}

impl fmt::Display for ScopeItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeItem::Server(s) => write!(f, "mcp:{s}"),
            ScopeItem::Read(s) => write!(f, "mcp:{s}:read"),
            ScopeItem::Tool { server, tool } => write!(f, "mcp:{server}:tool:{tool}"),
            ScopeItem::OfflineAccess => f.write_str("offline_access"),
        }
    }
}

impl Scope {
    /// Parses a space-separated scope string (RFC 6749 §3.3).
    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        if text.len() > MAX_SCOPE_LEN {
            return Err(ScopeError::TooLong);
        }
        text.split(' ')
            .filter(|t| !t.is_empty())
            .map(ScopeItem::parse)
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Scope)
    }

    pub fn from_items(items: impl IntoIterator<Item = ScopeItem>) -> Self {
        Scope(items.into_iter().collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn items(&self) -> impl Iterator<Item = &ScopeItem> {
        self.0.iter()
    }

    pub fn contains(&self, item: &ScopeItem) -> bool {
        self.0.contains(item)
    }

    /// The servers the scope names, in order.
    pub fn servers(&self) -> BTreeSet<&str> {
        self.0.iter().filter_map(ScopeItem::server).collect()
    }

    /// Whether every item of `self` is also in `other` (refresh may narrow, never widen).
    pub fn is_subset(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    /// What this scope allows on one server.
    pub fn for_server(&self, server: &str) -> ServerScope {
        let mut out = ServerScope::default();
        for item in &self.0 {
            match item {
                ScopeItem::Server(s) if s == server => out.all = true,
                ScopeItem::Read(s) if s == server => out.read = true,
                ScopeItem::Tool { server: s, tool } if s == server => {
                    out.tools.push(tool.clone());
                }
                _ => continue,
            }
            out.any = true;
        }
        out
    }
}

impl fmt::Display for Scope {
    /// Space-separated, sorted as text, so equal scopes print identically.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        items.sort();
        f.write_str(&items.join(" "))
    }
}

/// A token's scope on the server it is presented to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerScope {
    /// Some scope names this server.
    pub any: bool,
    pub all: bool,
    pub read: bool,
    pub tools: Vec<String>,
}

impl ServerScope {
    pub fn everything() -> Self {
        ServerScope {
            any: true,
            all: true,
            read: true,
            tools: Vec::new(),
        }
    }

    pub fn allows_tool(&self, name: &str) -> bool {
        self.all || self.tools.iter().any(|t| t == name)
    }

    pub fn allows_read(&self) -> bool {
        self.all || self.read
    }

    /// The scope to ask for in an `insufficient_scope` challenge: what the token already has
    /// on this server plus `needed`. Some clients replace their scope with the challenged
    /// one, others merge; naming both keeps the first kind from losing what it had.
    pub fn step_up(&self, server: &str, needed: ScopeItem) -> String {
        let mut items: BTreeSet<ScopeItem> = self
            .tools
            .iter()
            .map(|tool| ScopeItem::Tool {
                server: server.to_owned(),
                tool: tool.clone(),
            })
            .collect();
        if self.read {
            items.insert(ScopeItem::Read(server.to_owned()));
        }
        items.insert(needed);
        Scope(items).to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let scope =
            Scope::parse("mcp:fin mcp:fin:read  mcp:crm:tool:get_contact offline_access").unwrap();
        assert_eq!(
            scope.to_string(),
            "mcp:crm:tool:get_contact mcp:fin mcp:fin:read offline_access"
        );
        assert_eq!(
            scope.servers().into_iter().collect::<Vec<_>>(),
            ["crm", "fin"]
        );
        let crm = scope.for_server("crm");
        assert!(crm.any && !crm.all && !crm.allows_read());
        assert!(crm.allows_tool("get_contact") && !crm.allows_tool("delete_contact"));
        assert!(scope.for_server("fin").all);
        assert!(!scope.for_server("other").any);
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        for bad in [
            "openid",
            "mcp:",
            "mcp:Fin",
            "mcp:fin:write",
            "mcp:fin:tool:",
            "mcp:fin:tool:a*",
            "mcp:fin:tool:a b",
            "MCP:fin",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Scope::parse(&"a".repeat(5000)), Err(ScopeError::TooLong));
        assert!(Scope::parse("").unwrap().is_empty());
    }

    #[test]
    fn subset_is_itemwise() {
        let wide = Scope::parse("mcp:a mcp:a:read").unwrap();
        assert!(Scope::parse("mcp:a").unwrap().is_subset(&wide));
        assert!(!Scope::parse("mcp:a:tool:x").unwrap().is_subset(&wide));
    }
}
