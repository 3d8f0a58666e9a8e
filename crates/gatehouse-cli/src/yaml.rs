//! `--output yaml`: the JSON output as block-style YAML. Strings that could read as another
//! type or need escapes are written double-quoted with JSON's escapes, which YAML's
//! double-quoted style accepts, so no value changes its type or content on the way.

use serde_json::Value;

/// One YAML document (ends with a newline).
pub fn document(value: &Value) -> String {
    let mut out = String::new();
    block(&mut out, value, 0);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// `value` as one item of a top-level sequence (`- …`), for output written a row at a time.
pub fn sequence_item(value: &Value) -> String {
    let mut out = String::new();
    item(&mut out, value, 0);
    out
}

fn block(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, field) in map {
                out.push_str(&" ".repeat(indent));
                out.push_str(&scalar_text(key));
                out.push(':');
                if is_inline(field) {
                    out.push(' ');
                    out.push_str(&inline(field));
                    out.push('\n');
                } else {
                    out.push('\n');
                    block(out, field, indent + 2);
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for value in items {
                item(out, value, indent);
            }
        }
        other => {
            out.push_str(&" ".repeat(indent));
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

fn item(out: &mut String, value: &Value, indent: usize) {
    if is_inline(value) {
        out.push_str(&format!("{}- {}\n", " ".repeat(indent), inline(value)));
        return;
    }
    // The nested block two columns in, its first line's indentation replaced by the dash.
    let mut nested = String::new();
    block(&mut nested, value, indent + 2);
    out.push_str(&" ".repeat(indent));
    out.push_str("- ");
    out.push_str(&nested[indent + 2..]);
}

fn is_inline(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => true,
    }
}

fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar_text(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
    }
}

/// A string plain when it cannot be read as anything else, else double-quoted.
fn scalar_text(text: &str) -> String {
    let plain_chars = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
    let starts_well = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '/');
    let reserved = matches!(
        text.to_ascii_lowercase().as_str(),
        "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "nan" | "inf"
    );
    if plain_chars && starts_well && !reserved {
        text.to_owned()
    } else {
        serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_keep_their_type_and_nesting() {
        let value = json!({
            "name": "demo",
            "url": "http://127.0.0.1:9/mcp",
            "count": 3,
            "on": true,
            "none": null,
            "looks_like_bool": "yes",
            "number_text": "123",
            "empty": [],
            "tools": ["echo", "a b"],
            "nested": {"k": [{"a": 1, "b": "x"}, []]},
        });
        // serde_json's maps keep their keys sorted.
        let expected = "\
count: 3
empty: []
looks_like_bool: \"yes\"
name: demo
nested:
  k:
    - a: 1
      b: x
    - []
none: null
number_text: \"123\"
\"on\": true
tools:
  - echo
  - \"a b\"
url: \"http://127.0.0.1:9/mcp\"
";
        assert_eq!(document(&value), expected);
        assert_eq!(document(&json!([])), "[]\n");
        assert_eq!(
            sequence_item(&json!({"seq": 1, "x": "y"})),
            "- seq: 1\n  x: \"y\"\n"
        );
    }
}
