//! Helpers shared by the Gatehouse fuzz targets: the grant the targets filter with, reference
//! JSON readings and a float-tolerant comparison; SSE helpers are in [`sse`].

pub mod sse;

use std::sync::{Arc, OnceLock};

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use gatehouse::{
    gateway::{self, sse::Transform},
    grants::Grant,
};
use gatehouse_model::tool_pattern::parse_pattern_list;
use serde_json::Value;

/// The grant every target filters with: a few exact names and a glob, like a typical
/// connection (`echo`, `add`, `read_*`).
pub fn grant() -> &'static Grant {
    static GRANT: OnceLock<Grant> = OnceLock::new();
    GRANT.get_or_init(|| Grant {
        tools: parse_pattern_list("echo,add,read_*").unwrap_or_default(),
        resources: true,
        prompts: false,
        ..Grant::default()
    })
}

/// Whether the fuzzing grant admits the tool `name`.
pub fn allowed(name: &str) -> bool {
    grant().allows_tool(name, None)
}

/// The relay's response rewrite for a `tools/list` response under the fuzzing grant: the
/// production `ResponseRules::rewrite`, for JSON bodies and SSE event data alike.
pub fn tool_filter() -> Transform {
    static GRANT: OnceLock<Arc<Grant>> = OnceLock::new();
    let grant = GRANT.get_or_init(|| Arc::new(grant().clone()));
    gateway::tools_list_rewrite(grant.clone(), None)
}

/// The `result.tools` arrays of a response or of every member of a batch, as the tools-list
/// filter sees them.
pub fn tools_arrays(value: &Value) -> Vec<&Vec<Value>> {
    fn one(message: &Value) -> Option<&Vec<Value>> {
        message.get("result")?.get("tools")?.as_array()
    }
    match value {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        item => one(item).into_iter().collect(),
    }
}

/// Tools in `value`'s `tools/list` results that the grant does not admit (a tool without a
/// string name counts as not admitted: the filter drops it).
pub fn disallowed_tools(value: &Value) -> Vec<String> {
    tools_arrays(value)
        .into_iter()
        .flatten()
        .filter(|tool| {
            !tool
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(allowed)
        })
        .map(|tool| tool.to_string())
        .collect()
}

/// JSON as a typical client reads it: any valid JSON text, the last of duplicate keys wins
/// (as in `JSON.parse`, Python's `json`, Go's `encoding/json`).
///
/// Deliberately not `serde_json::from_slice::<Value>`: with serde_json's `raw_value` feature
/// (on in this workspace) `Value` treats an object whose first key is
/// `$serde_json::private::RawValue` as an embedded raw value, so `Value` and real clients can
/// disagree about valid JSON.
pub fn reference_json(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Plain>(bytes).ok().map(|p| p.0)
}

struct Plain(Value);

impl<'de> Deserialize<'de> for Plain {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PlainVisitor)
    }
}

struct PlainVisitor;

impl<'de> Visitor<'de> for PlainVisitor {
    type Value = Plain;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Plain, E> {
        Ok(Plain(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Plain, E> {
        Ok(Plain(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Plain, E> {
        Ok(Plain(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Plain, E> {
        Ok(Plain(Value::from(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Plain, E> {
        Ok(Plain(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Plain, E> {
        Ok(Plain(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<Plain, E> {
        Ok(Plain(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Plain, A::Error> {
        let mut items = Vec::new();
        while let Some(Plain(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Plain(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Plain, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some((key, Plain(value))) = map.next_entry::<String, Plain>()? {
            object.insert(key, value);
        }
        Ok(Plain(Value::Object(object)))
    }
}

/// JSON equality where floats may differ in their last bits: serde_json's default float
/// parser is not correctly rounded, so a float that went through `to_vec` and back may land
/// one or two ULPs away from where it started.
pub fn json_same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x == y {
                return true;
            }
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y))
                    if x.is_finite() && y.is_finite() && x.signum() == y.signum() =>
                {
                    x.to_bits().abs_diff(y.to_bits()) <= 2
                }
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_same(v, w)))
        }
        _ => a == b,
    }
}
