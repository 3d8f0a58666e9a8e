//! Arbitrary bytes through the gateway's JSON-RPC envelope parser (the response side's
//! rewrite has its own target, `response_rewrite`).
//!
//! Asserts, besides "never panics":
//! * `parse` agrees with a reference JSON parser: it accepts only valid JSON, and a valid JSON
//!   body is refused as a parse error only for a duplicate key; any other refusal is
//!   `InvalidRequest`; a batch of more than `max_batch_messages` (100) may instead be refused
//!   as `BatchTooLarge` as soon as its 101st message is read.
//! * An accepted envelope is internally consistent: messages, batch flag, kinds, ids, methods,
//!   params and `routing_name()` say what the JSON says, and re-serialising the messages'
//!   fields parses back to the same messages.
#![no_main]

use gatehouse_fuzz::{json_same, reference_json};
use gatehouse_model::jsonrpc::{self, EnvelopeError, Kind, Message};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    check_parse(data, reference_json(data).as_ref());
});

fn check_parse(data: &[u8], reference: Option<&Value>) {
    match jsonrpc::parse(data) {
        Ok(envelope) => {
            let value = reference.expect("parse accepted invalid JSON");
            let items: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                item => vec![item],
            };
            assert_eq!(envelope.batch, value.is_array());
            assert!(
                !envelope.messages.is_empty(),
                "an accepted envelope has a message"
            );
            assert_eq!(envelope.messages.len(), items.len());
            for (message, item) in envelope.messages.iter().zip(&items) {
                check_message(message, item);
                check_round_trip(message);
            }
            assert_eq!(
                envelope.only_notifications_or_responses(),
                envelope.messages.iter().all(|m| m.kind != Kind::Request)
            );
            assert_eq!(
                envelope.first().map(|m| m.method.clone()),
                Some(envelope.messages[0].method.clone())
            );
        }
        Err(EnvelopeError::ParseError(message)) => {
            if reference.is_some() {
                assert!(
                    message.contains("duplicate key"),
                    "valid JSON refused as unparseable: {message}"
                );
            }
        }
        Err(EnvelopeError::InvalidRequest(_)) => {
            assert!(
                reference.is_some(),
                "invalid JSON reported as an invalid request"
            );
        }
        Err(EnvelopeError::BatchTooLarge { limit }) => {
            // Refused at the first message past the limit, before the rest is read (so what
            // follows may be anything); a valid body refused so is a batch over the limit.
            assert_eq!(limit, jsonrpc::Limits::default().max_batch_messages);
            if let Some(value) = reference {
                let items = value
                    .as_array()
                    .expect("only a batch is refused as too large");
                assert!(items.len() > limit, "a batch of {} refused", items.len());
            }
        }
        // `RequestTooComplex` cannot happen within libFuzzer's input sizes: the default parse
        // budget is 32 MiB, so it falls through to the panic below.
        Err(other) => panic!("unexpected error from parse: {other:?}"),
    }
}

/// What the parser extracted is what the JSON object says.
fn check_message(message: &Message, item: &Value) {
    let object = item
        .as_object()
        .expect("every accepted message is an object");
    assert_eq!(object.get("jsonrpc").and_then(Value::as_str), Some("2.0"));
    assert_eq!(message.id.as_ref(), object.get("id"));
    if let Some(id) = &message.id {
        assert!(id.is_string() || id.is_i64() || id.is_u64(), "bad id {id}");
    }
    match message.kind {
        Kind::Request | Kind::Notification => {
            assert_eq!(message.kind == Kind::Request, message.id.is_some());
            let method = object.get("method").and_then(Value::as_str);
            assert_eq!(message.method.as_deref(), method);
            assert!(message.method.is_some());
            assert_eq!(message.params.as_ref(), object.get("params"));
        }
        Kind::Response => {
            assert!(message.id.is_some(), "a response has an id");
            assert!(message.method.is_none() && message.params.is_none());
            assert!(!object.contains_key("method"));
            assert!(
                object.contains_key("result") != object.contains_key("error"),
                "a response has exactly one of result and error"
            );
        }
    }
    if let Some(params) = &message.params {
        assert!(
            params.is_object() || params.is_array(),
            "bad params {params}"
        );
    }
    assert_eq!(message.method(), message.method.as_deref().unwrap_or(""));

    let expected_name = match message.method() {
        "tools/call" | "prompts/get" => message
            .params
            .as_ref()
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str),
        "resources/read" => message
            .params
            .as_ref()
            .and_then(|p| p.get("uri"))
            .and_then(Value::as_str),
        _ => None,
    };
    assert_eq!(message.routing_name(), expected_name);
    if message.routing_name().is_some() {
        assert!(matches!(
            message.method(),
            "tools/call" | "prompts/get" | "resources/read"
        ));
    }
    let meta = message
        .params
        .as_ref()
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get("io.modelcontextprotocol/protocolVersion"))
        .and_then(Value::as_str);
    assert_eq!(message.meta_protocol_version(), meta);
}

/// Serialising the fields the gateway kept and parsing them again gives the same message.
fn check_round_trip(message: &Message) {
    let mut object = Map::new();
    object.insert("jsonrpc".into(), "2.0".into());
    if let Some(id) = &message.id {
        object.insert("id".into(), id.clone());
    }
    if let Some(method) = &message.method {
        object.insert("method".into(), method.clone().into());
    }
    if let Some(params) = &message.params {
        object.insert("params".into(), params.clone());
    }
    if message.kind == Kind::Response {
        object.insert("result".into(), Value::Null);
    }
    let bytes = serde_json::to_vec(&Value::Object(object)).expect("a Value serialises");
    let again = match jsonrpc::parse(&bytes) {
        Ok(envelope) => envelope,
        Err(err) => panic!(
            "re-serialised message refused ({err:?}): {}",
            String::from_utf8_lossy(&bytes)
        ),
    };
    assert!(!again.batch);
    assert_eq!(again.messages.len(), 1);
    let back = &again.messages[0];
    assert_eq!(back.kind, message.kind);
    assert_eq!(back.id, message.id);
    assert_eq!(back.method, message.method);
    match (&back.params, &message.params) {
        (Some(a), Some(b)) => assert!(json_same(a, b), "params changed: {a} vs {b}"),
        (None, None) => {}
        (a, b) => panic!("params changed: {a:?} vs {b:?}"),
    }
    assert_eq!(back.routing_name(), message.routing_name());
    assert_eq!(
        back.meta_protocol_version(),
        message.meta_protocol_version()
    );
}
