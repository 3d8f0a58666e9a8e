//! The JSON-RPC envelope as the gateway sees it.
//!
//! The body is parsed once, strictly: duplicate object keys anywhere are refused, so the
//! message Gatehouse authorises is exactly the one every conforming upstream parser reads
//! (no "first key wins here, last key wins there" smuggling). The original bytes are then
//! forwarded untouched, which keeps numbers, key order and unknown fields faithful.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::GatewayError;

/// A `serde_json::Value` that refuses duplicate keys while deserialising.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Strict(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Strict(Value::Object(object)))
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
    serde_json::from_str::<Strict>(text).map(|Strict(value)| value)
}

pub fn parse(body: &[u8]) -> Result<Envelope, GatewayError> {
    let Strict(value) =
        serde_json::from_slice(body).map_err(|e| GatewayError::ParseError(parse_error_text(&e)))?;
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(GatewayError::InvalidRequest("empty batch".into()));
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

fn message(value: Value) -> Result<Message, GatewayError> {
    let Value::Object(mut object) = value else {
        return Err(GatewayError::InvalidRequest(
            "a JSON-RPC message must be an object".into(),
        ));
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(GatewayError::InvalidRequest(
            "\"jsonrpc\" must be \"2.0\"".into(),
        ));
    }
    let id = object.remove("id");
    if let Some(id) = &id
        && !(id.is_string() || id.is_i64() || id.is_u64())
    {
        return Err(GatewayError::InvalidRequest(
            "\"id\" must be a string or an integer".into(),
        ));
    }
    let params = object.remove("params");
    if let Some(p) = &params
        && !(p.is_object() || p.is_array())
    {
        return Err(GatewayError::InvalidRequest(
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
        }),
        Some(_) => Err(GatewayError::InvalidRequest(
            "\"method\" must be a string".into(),
        )),
        None => {
            let has_result = object.contains_key("result");
            let has_error = object.contains_key("error");
            if id.is_none() || has_result == has_error {
                return Err(GatewayError::InvalidRequest(
                    "a message needs a method, or an id with exactly one of result and error"
                        .into(),
                ));
            }
            Ok(Message {
                kind: Kind::Response,
                id,
                method: None,
                params: None,
            })
        }
    }
}

pub(crate) fn filter_one(message: &mut Value, allowed: &dyn Fn(&str) -> bool) -> bool {
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
        assert!(matches!(err, GatewayError::ParseError(m) if m.contains("duplicate key")));
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
                matches!(parse(body), Err(GatewayError::InvalidRequest(_))),
                "{:?}",
                std::str::from_utf8(body)
            );
        }
        assert!(matches!(
            parse(b"{not json"),
            Err(GatewayError::ParseError(_))
        ));
    }
}
