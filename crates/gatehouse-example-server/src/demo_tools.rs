//! The demo tools used by the Gatehouse quick-start.

use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};

use crate::fixtures::tool;

/// Names of the demo tools, and the one the demo deliberately does not grant.
pub const DEMO_TOOLS: &[&str] = &["echo", "add", "current_time", UNGRANTED_DEMO_TOOL];

/// The "dangerous" demo tool the demo policy does not grant.
pub const UNGRANTED_DEMO_TOOL: &str = "delete_records";

/// Definitions of the demo tools, in [`DEMO_TOOLS`] order.
pub(crate) fn tools() -> Vec<Tool> {
    vec![
        tool(
            "echo",
            "Echo the given text back unchanged.",
            json!({
                "type": "object",
                "properties": {
                    "text": { "type": "string", "description": "The text to echo back" }
                },
                "required": ["text"]
            }),
        )
        .with_annotations(read_only("Echo")),
        tool(
            "add",
            "Add two numbers and return the sum.",
            json!({
                "type": "object",
                "properties": {
                    "a": { "type": "number", "description": "First addend" },
                    "b": { "type": "number", "description": "Second addend" }
                },
                "required": ["a", "b"]
            }),
        )
        .with_annotations(read_only("Add")),
        tool(
            "current_time",
            "Return the current UTC time as an RFC 3339 timestamp.",
            json!({ "type": "object", "properties": {} }),
        )
        .with_annotations(read_only("Current time").open_world(false)),
        tool(
            UNGRANTED_DEMO_TOOL,
            "Delete every record in a table. Dangerous: the demo policy does not grant it.",
            json!({
                "type": "object",
                "properties": {
                    "table": { "type": "string", "description": "The table to empty" }
                },
                "required": ["table"]
            }),
        )
        .with_annotations(
            ToolAnnotations::with_title("Delete records")
                .read_only(false)
                .destructive(true)
                .idempotent(true)
                .open_world(false),
        ),
    ]
}

fn read_only(title: &str) -> ToolAnnotations {
    ToolAnnotations::with_title(title)
        .read_only(true)
        .destructive(false)
        .idempotent(true)
        .open_world(false)
}

/// Run the demo tool `name`, or return `None` if it is not a demo tool.
///
/// Invalid arguments produce a tool-level error result (`isError: true`), as the MCP spec
/// asks for input validation failures.
pub(crate) fn call(name: &str, args: &JsonObject) -> Option<CallToolResult> {
    let result = match name {
        "echo" => string_arg(args, "text").map(|text| text.to_owned()),
        "add" => {
            number_arg(args, "a").and_then(|a| number_arg(args, "b").map(|b| format_number(a + b)))
        }
        "current_time" => Ok(crate::time::now_rfc3339()),
        UNGRANTED_DEMO_TOOL => {
            string_arg(args, "table").map(|table| format!("deleted all records from {table}"))
        }
        _ => return None,
    };
    Some(match result {
        Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
        Err(message) => CallToolResult::error(vec![ContentBlock::text(message)]),
    })
}

/// A required string argument.
pub(crate) fn string_arg<'a>(args: &'a JsonObject, key: &str) -> Result<&'a str, String> {
    match args.get(key) {
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(format!("argument `{key}` must be a string")),
        None => Err(format!("missing required argument `{key}`")),
    }
}

fn number_arg(args: &JsonObject, key: &str) -> Result<f64, String> {
    match args.get(key) {
        Some(Value::Number(value)) => value
            .as_f64()
            .ok_or_else(|| format!("argument `{key}` is out of range")),
        Some(_) => Err(format!("argument `{key}` must be a number")),
        None => Err(format!("missing required argument `{key}`")),
    }
}

/// Integral values print without a fractional part (`5`, not `5.0`).
fn format_number(value: f64) -> String {
    const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    if value.fract() == 0.0 && value.abs() < EXACT_INTEGER_LIMIT {
        #[allow(clippy::cast_possible_truncation)] // integral and within ±2^53: exact
        let integer = value as i64;
        integer.to_string()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(value: Value) -> JsonObject {
        match value {
            Value::Object(map) => map,
            _ => JsonObject::new(),
        }
    }

    fn text_of(result: &CallToolResult) -> &str {
        result.content[0].as_text().map_or("", |t| t.text.as_str())
    }

    #[test]
    fn definitions_match_the_public_list() {
        let names: Vec<String> = tools().iter().map(|t| t.name.to_string()).collect();
        assert_eq!(names, DEMO_TOOLS);
        assert!(DEMO_TOOLS.contains(&UNGRANTED_DEMO_TOOL));
    }

    #[test]
    fn demo_tools_compute_their_results() {
        let echo = call("echo", &args(json!({"text": "hi there"}))).unwrap();
        assert_eq!(text_of(&echo), "hi there");
        assert_eq!(echo.is_error, Some(false));

        let add = call("add", &args(json!({"a": 2, "b": 3}))).unwrap();
        assert_eq!(text_of(&add), "5");
        let add = call("add", &args(json!({"a": 1.5, "b": 0.25}))).unwrap();
        assert_eq!(text_of(&add), "1.75");

        let time = call("current_time", &JsonObject::new()).unwrap();
        assert!(text_of(&time).ends_with('Z'));

        let delete = call("delete_records", &args(json!({"table": "users"}))).unwrap();
        assert_eq!(text_of(&delete), "deleted all records from users");

        assert!(call("not_a_demo_tool", &JsonObject::new()).is_none());
    }

    #[test]
    fn bad_arguments_are_tool_errors() {
        let result = call("add", &args(json!({"a": "x", "b": 1}))).unwrap();
        assert_eq!(result.is_error, Some(true));
        let result = call("echo", &JsonObject::new()).unwrap();
        assert_eq!(result.is_error, Some(true));
    }
}
