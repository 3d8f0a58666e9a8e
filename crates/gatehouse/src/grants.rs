//! What a connection (client → server) grants, compiled: its tool patterns, method families,
//! and the policies and guardrails attached to it.

use gatehouse_model::tool_pattern::ToolPattern;

/// The compiled grant of one connection, intersected with an API key's narrowing at check time.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    pub tools: Vec<ToolPattern>,
    pub resources: bool,
    pub prompts: bool,
    /// Policies attached to this connection (global, server, client or pair), in evaluation
    /// order; precomputed so the decision cost does not grow with the number of connections.
    pub policies: std::sync::Arc<[std::sync::Arc<crate::policy::CompiledPolicy>]>,
    /// Content guardrails attached to this connection.
    pub guardrails: std::sync::Arc<[std::sync::Arc<crate::guardrails::Guardrail>]>,
}

impl Grant {
    pub fn allows_tool(&self, name: &str, narrowing: Option<&[ToolPattern]>) -> bool {
        self.tools.iter().any(|p| p.matches(name))
            && narrowing.is_none_or(|n| n.iter().any(|p| p.matches(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_model::tool_pattern::parse_pattern_list;

    #[test]
    fn key_narrowing_intersects_the_connection() {
        let grant = Grant {
            tools: parse_pattern_list("echo,add").unwrap(),
            ..Grant::default()
        };
        let narrowing = parse_pattern_list("echo,delete_*").unwrap();
        assert!(grant.allows_tool("echo", Some(&narrowing)));
        assert!(!grant.allows_tool("add", Some(&narrowing)));
        assert!(!grant.allows_tool("delete_all", Some(&narrowing)));
        assert!(grant.allows_tool("add", None));
    }
}
