//! The JSON-RPC envelope as the gateway sees it.
//!
//! The body is parsed once, strictly: duplicate object keys anywhere are refused, so the
//! message Gatehouse authorises is exactly the one every conforming upstream parser reads
//! (no "first key wins here, last key wins there" smuggling). The original bytes are then
//! forwarded untouched, which keeps numbers, key order and unknown fields faithful.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use std::cell::Cell;

/// Why a body is not a JSON-RPC envelope the gateway accepts; the library maps each variant
/// to its gateway error (and so to its HTTP status and JSON-RPC code) once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("parse error: {0}")]
    ParseError(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("batch of more than {limit} messages")]
    BatchTooLarge { limit: usize },
    /// The body is within its byte limit, but parsing it would take more memory than allowed.
    #[error("request too complex: parsing it would take more than {limit} bytes")]
    RequestTooComplex { limit: usize },
}

/// What one request's parse may cost: messages per batch, and the estimated memory of the
/// parsed tree. A JSON body can take tens of times its size once parsed (every `{"a":1}` is a
/// map node of several hundred bytes), so the body limit alone does not bound the parse.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_batch_messages: usize,
    pub max_parsed_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_batch_messages: 100,
            max_parsed_bytes: 32 * 1024 * 1024,
        }
    }
}

/// What the parse has spent; exceeding a limit stops it at once, before the rest is built.
struct Budget {
    remaining: Cell<usize>,
    exceeded: Cell<bool>,
}

impl Budget {
    fn new(bytes: usize) -> Self {
        Self {
            remaining: Cell::new(bytes),
            exceeded: Cell::new(false),
        }
    }

    fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        match self.remaining.get().checked_sub(bytes) {
            Some(left) => {
                self.remaining.set(left);
                Ok(())
            }
            None => {
                self.exceeded.set(true);
                Err(E::custom("parsed request exceeds its memory budget"))
            }
        }
    }
}

/// Estimated heap bytes of parsed values: a `Value` slot in an array or map, and a B-tree node
/// of a map, charged when a map starts and again every few entries (nodes split half full).
const VALUE_SLOT: usize = std::mem::size_of::<Value>();
const MAP_NODE: usize = 11 * (std::mem::size_of::<String>() + VALUE_SLOT) + 16;
const ENTRIES_PER_NODE: usize = 6;

/// Deserialises a `serde_json::Value`, refusing duplicate keys and charging what it builds to
/// a budget.
#[derive(Clone, Copy)]
struct Strict<'b>(&'b Budget);

impl<'de> de::DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.0.charge(v.len())?;
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.0.charge(v.len())?;
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        self.0.charge(items.capacity() * VALUE_SLOT)?;
        while let Some(item) = seq.next_element_seed(self)? {
            if items.len() == items.capacity() {
                // The vector doubles: charge what the new allocation holds beyond the old.
                self.0.charge(items.capacity().max(4) * VALUE_SLOT)?;
            }
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.len().is_multiple_of(ENTRIES_PER_NODE) {
                self.0.charge(MAP_NODE)?;
            }
            self.0.charge(key.len())?;
            // One search of the map per key, not one to refuse a duplicate and one to insert.
            match object.entry(key) {
                serde_json::map::Entry::Occupied(taken) => {
                    let key = taken.key();
                    return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
                }
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(map.next_value_seed(self)?);
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// The top level of a request: one message, or a batch whose length is checked as it is read.
struct TopLevel<'b> {
    budget: &'b Budget,
    max_batch: usize,
    batch_too_large: &'b Cell<bool>,
}

impl<'de> de::DeserializeSeed<'de> for TopLevel<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON-RPC message or batch")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict(self.budget))? {
            if items.len() == self.max_batch {
                self.batch_too_large.set(true);
                return Err(de::Error::custom("batch too large"));
            }
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        Strict(self.budget).visit_map(map)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Strict(self.budget).visit_str(v)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    /// The client's answer to a server-initiated request (sampling, elicitation, roots).
    Response,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub kind: Kind,
    pub id: Option<Value>,
    pub method: Option<String>,
    pub params: Option<Value>,
    /// A response's `result` or `error` (guardrails read the client's answers too).
    pub outcome: Option<(&'static str, Value)>,
}

impl Message {
    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("")
    }

    /// A string member of `params`.
    pub fn param_str(&self, key: &str) -> Option<&str> {
        self.params.as_ref()?.get(key)?.as_str()
    }

    /// `params._meta["io.modelcontextprotocol/protocolVersion"]`, set by stateless-era clients.
    pub fn meta_protocol_version(&self) -> Option<&str> {
        self.params
            .as_ref()?
            .get("_meta")?
            .get("io.modelcontextprotocol/protocolVersion")?
            .as_str()
    }

    /// The name the 2026-07-28 `Mcp-Name` header must repeat.
    pub fn routing_name(&self) -> Option<&str> {
        match self.method() {
            "tools/call" | "prompts/get" => self.param_str("name"),
            "resources/read" => self.param_str("uri"),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct Envelope {
    pub messages: Vec<Message>,
    pub batch: bool,
}

impl Envelope {
    pub fn first(&self) -> Option<&Message> {
        self.messages.first()
    }

    pub fn only_notifications_or_responses(&self) -> bool {
        self.messages.iter().all(|m| m.kind != Kind::Request)
    }
}

/// Any JSON value, refusing duplicate keys at every depth (parsers disagree on which one wins).
pub fn strict_value(text: &str) -> Result<Value, serde_json::Error> {
    let budget = Budget::new(usize::MAX);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = de::DeserializeSeed::deserialize(Strict(&budget), &mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// [`parse_with`] under the default [`Limits`].
pub fn parse(body: &[u8]) -> Result<Envelope, EnvelopeError> {
    parse_with(body, Limits::default())
}

/// Parses a request body strictly, within `limits`.
pub fn parse_with(body: &[u8], limits: Limits) -> Result<Envelope, EnvelopeError> {
    let budget = Budget::new(limits.max_parsed_bytes);
    let batch_too_large = Cell::new(false);
    let top = TopLevel {
        budget: &budget,
        max_batch: limits.max_batch_messages,
        batch_too_large: &batch_too_large,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = de::DeserializeSeed::deserialize(top, &mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    let value = match parsed {
        Ok(value) => value,
        Err(_) if batch_too_large.get() => {
            return Err(EnvelopeError::BatchTooLarge {
                limit: limits.max_batch_messages,
            });
        }
        Err(_) if budget.exceeded.get() => {
            return Err(EnvelopeError::RequestTooComplex {
                limit: limits.max_parsed_bytes,
            });
        }
        Err(e) => return Err(EnvelopeError::ParseError(parse_error_text(&e))),
    };
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(EnvelopeError::InvalidRequest("empty batch".into()));
            }
            let messages = items.into_iter().map(message).collect::<Result<_, _>>()?;
            Ok(Envelope {
                messages,
                batch: true,
            })
        }
        other => Ok(Envelope {
            messages: vec![message(other)?],
            batch: false,
        }),
    }
}

fn parse_error_text(err: &serde_json::Error) -> String {
    // serde_json's messages describe the position, not the content: safe to return.
    err.to_string()
}

fn message(value: Value) -> Result<Message, EnvelopeError> {
    let Value::Object(mut object) = value else {
        return Err(EnvelopeError::InvalidRequest(
            "a JSON-RPC message must be an object".into(),
        ));
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(EnvelopeError::InvalidRequest(
            "\"jsonrpc\" must be \"2.0\"".into(),
        ));
    }
    let id = object.remove("id");
    if let Some(id) = &id
        && !(id.is_string() || id.is_i64() || id.is_u64())
    {
        return Err(EnvelopeError::InvalidRequest(
            "\"id\" must be a string or an integer".into(),
        ));
    }
    let params = object.remove("params");
    if let Some(p) = &params
        && !(p.is_object() || p.is_array())
    {
        return Err(EnvelopeError::InvalidRequest(
            "\"params\" must be an object".into(),
        ));
    }
    match object.remove("method") {
        Some(Value::String(method)) => Ok(Message {
            kind: if id.is_some() {
                Kind::Request
            } else {
                Kind::Notification
            },
            id,
            method: Some(method),
            params,
            outcome: None,
        }),
        Some(_) => Err(EnvelopeError::InvalidRequest(
            "\"method\" must be a string".into(),
        )),
        None => {
            let has_result = object.contains_key("result");
            let has_error = object.contains_key("error");
            if id.is_none() || has_result == has_error {
                return Err(EnvelopeError::InvalidRequest(
                    "a message needs a method, or an id with exactly one of result and error"
                        .into(),
                ));
            }
            let outcome = match object.remove("result") {
                Some(result) => ("result", result),
                None => ("error", object.remove("error").unwrap_or(Value::Null)),
            };
            Ok(Message {
                kind: Kind::Response,
                id,
                method: None,
                params: None,
                outcome: Some(outcome),
            })
        }
    }
}

pub fn filter_one(message: &mut Value, allowed: &dyn Fn(&str) -> bool) -> bool {
    let Some(tools) = message
        .get_mut("result")
        .and_then(|r| r.get_mut("tools"))
        .and_then(Value::as_array_mut)
    else {
        return false;
    };
    let before = tools.len();
    tools.retain(|tool| {
        tool.get("name")
            .and_then(Value::as_str)
            .is_some_and(allowed)
    });
    tools.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_messages() {
        let env =
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#)
                .unwrap();
        assert_eq!(env.messages[0].kind, Kind::Request);
        assert_eq!(env.messages[0].routing_name(), Some("echo"));
        let env = parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert_eq!(env.messages[0].kind, Kind::Notification);
        let env = parse(br#"[{"jsonrpc":"2.0","id":"a","result":{}}]"#).unwrap();
        assert!(env.batch);
        assert_eq!(env.messages[0].kind, Kind::Response);
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let err = parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"delete_records"}}"#)
            .unwrap_err();
        assert!(matches!(err, EnvelopeError::ParseError(m) if m.contains("duplicate key")));
        assert!(parse(br#"{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}"#).is_err());
    }

    #[test]
    fn escapes_are_decoded_before_authorisation() {
        let env = parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"del\u0065te"}}"#,
        )
        .unwrap();
        assert_eq!(env.messages[0].routing_name(), Some("delete"));
    }

    #[test]
    fn malformed_envelopes() {
        for body in [
            &br#"{"jsonrpc":"1.0","id":1,"method":"x"}"#[..],
            br#"{"jsonrpc":"2.0","id":null,"method":"x"}"#,
            br#"{"jsonrpc":"2.0","id":1}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":5}"#,
            br#"[]"#,
            br#"42"#,
        ] {
            assert!(
                matches!(parse(body), Err(EnvelopeError::InvalidRequest(_))),
                "{:?}",
                std::str::from_utf8(body)
            );
        }
        assert!(matches!(
            parse(b"{not json"),
            Err(EnvelopeError::ParseError(_))
        ));
    }

    #[test]
    fn a_long_batch_is_refused_without_reading_it_all() {
        let message = r#"{"jsonrpc":"2.0","method":"notifications/progress"}"#;
        let batch = |n: usize| format!("[{}]", vec![message; n].join(","));
        let limits = Limits {
            max_batch_messages: 3,
            ..Limits::default()
        };
        assert_eq!(
            parse_with(batch(3).as_bytes(), limits)
                .unwrap()
                .messages
                .len(),
            3
        );
        assert!(matches!(
            parse_with(batch(4).as_bytes(), limits),
            Err(EnvelopeError::BatchTooLarge { limit: 3 })
        ));
        // Refused at the fourth message: what follows is never read, not even its syntax.
        let cut = format!(
            "{},{message},{message},{{broken",
            &batch(3)[..batch(3).len() - 1]
        );
        assert!(matches!(
            parse_with(cut.as_bytes(), limits),
            Err(EnvelopeError::BatchTooLarge { .. })
        ));
    }

    #[test]
    fn the_parse_of_small_objects_is_bounded_by_its_budget() {
        // 4 MiB of `{"a":1},` would be ~500 000 maps, hundreds of MB parsed.
        let rows = vec![r#"{"a":1}"#; 500_000].join(",");
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{"rows":[{rows}]}}}}}}"#
        );
        assert!(matches!(
            parse(body.as_bytes()),
            Err(EnvelopeError::RequestTooComplex { .. })
        ));
        // Strings cost their length: a body of the same size as one string passes.
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{}"}}}}}}"#,
            "a".repeat(rows.len())
        );
        assert!(parse(body.as_bytes()).is_ok());
        // Duplicate keys are still refused as parse errors, not budget refusals.
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}"#),
            Err(EnvelopeError::ParseError(_))
        ));
    }
}
