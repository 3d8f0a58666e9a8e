//! Bounded label values: every label a request sets comes from a closed set or from the
//! configuration, never from whatever a caller sends.

/// MCP methods by name, as the `method` label; anything else is `other`.
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "subscriptions/listen",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/result",
    "tasks/cancel",
    "tasks/list",
    "tasks/update",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "notifications/message",
];

/// The `method` label of a request: a known MCP method, `batch`, `response` (the client
/// answering a server request), `-` when there was no JSON-RPC body (GET, DELETE, or a
/// refusal before the body was read), else `other`.
pub fn method_label(method: Option<&str>) -> &'static str {
    match method {
        None => "-",
        Some("response") => "response",
        Some(m) if m.starts_with("batch[") => "batch",
        Some(m) => KNOWN_METHODS
            .iter()
            .find(|known| **known == m)
            .copied()
            .unwrap_or("other"),
    }
}

/// At most this many tool names per server get a label of their own; the rest are `other`.
pub const MAX_TOOLS_PER_SERVER: usize = 100;

/// Whether a tool name may become a label value: what MCP allows in tool names, short.
/// Anything else (quotes, newlines, very long names) is counted as `other`.
pub fn tool_name_labelable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_known_set_are_other() {
        assert_eq!(method_label(Some("tools/call")), "tools/call");
        assert_eq!(method_label(Some("batch[3]")), "batch");
        assert_eq!(method_label(None), "-");
        assert_eq!(method_label(Some("x/made-up")), "other");
        assert_eq!(method_label(Some("tools/call\"")), "other");
    }

    #[test]
    fn only_plain_short_tool_names_are_labels() {
        assert!(tool_name_labelable("get_weather"));
        assert!(tool_name_labelable("fs.read-file/v2"));
        assert!(!tool_name_labelable("a\"b"));
        assert!(!tool_name_labelable(""));
        assert!(!tool_name_labelable(&"a".repeat(65)));
    }
}
