//! Arbitrary bytes, as an upstream's JSON body or SSE event data, through the relay's
//! production response rewrite (`ResponseRules::rewrite`, via `gateway::tools_list_rewrite`)
//! for a `tools/list` response: the grant's tool filter, alone and with a redacting response
//! guardrail.
//!
//! The oracle is a client: it decodes the bytes as UTF-8 with replacement, drops one leading
//! BOM and parses JSON with the last of duplicate keys winning (`reference_json`).
//!
//! Asserts, besides "never panics":
//! * Bytes passed on unchanged (`None`) are blank or strictly readable JSON in the form a client
//!   reads (valid UTF-8, no BOM), and a client finds in them no tool the grant refuses and no
//!   unredacted secret in a result.
//! * Rewritten bytes are valid UTF-8 JSON without a BOM, show no refused tool and no secret in
//!   a result, and rewriting them again changes nothing; or they are empty, when every message
//!   was a server-to-client one a guardrail refused (withheld: it answers nothing of the
//!   client's).
//! * Bytes the gateway cannot read strictly (not JSON, duplicate keys) are replaced by the
//!   `upstream_message_unreadable` error; readable ones, with the filter alone, come out as the
//!   client's reading with exactly the refused tools removed.
#![no_main]

use std::sync::{Arc, OnceLock};

use gatehouse::{
    gateway::{self, sse::Transform},
    guardrails::{Action, Direction, Guardrail, GuardrailSpec, NamedPattern},
};
use gatehouse_fuzz::{allowed, disallowed_tools, grant, json_same, reference_json, tools_arrays};
use gatehouse_model::jsonrpc;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const BOM: &[u8] = b"\xEF\xBB\xBF";
/// What the guardrail redacts: `secret-` and a digit (found in any string of a result).
const SECRET: &str = "secret-";

fn filter_only() -> &'static Transform {
    static REWRITE: OnceLock<Transform> = OnceLock::new();
    REWRITE.get_or_init(gatehouse_fuzz::tool_filter)
}

fn filter_and_guardrail() -> &'static Transform {
    static REWRITE: OnceLock<Transform> = OnceLock::new();
    REWRITE.get_or_init(|| {
        let spec = GuardrailSpec {
            direction: Direction::Response,
            action: Action::Redact,
            detectors: Vec::new(),
            patterns: vec![NamedPattern {
                name: "secret".into(),
                regex: format!("{SECRET}[0-9]"),
            }],
            words: Vec::new(),
            allow: Vec::new(),
            paths: Vec::new(),
        };
        let guardrail = Guardrail::compile("fuzz-secrets", None, None, None, &spec)
            .unwrap_or_else(|e| panic!("the fuzzing guardrail compiles: {e}"));
        let mut guarded = grant().clone();
        guarded.guardrails = Arc::from(vec![Arc::new(guardrail)]);
        gateway::tools_list_rewrite(Arc::new(guarded), None)
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let client = reference_json(body.as_bytes());
    let strict = jsonrpc::strict_value(body).ok();
    if let Some(strict) = &strict {
        let client = client
            .as_ref()
            .expect("strictly read JSON a client cannot read");
        assert!(
            json_same(strict, client),
            "strict and client readings differ"
        );
    }

    let readable = strict.is_some();
    let filtered = check_rewrite(filter_only(), false, data, body, client.as_ref(), readable);
    if let (Some(out), Some(input)) = (&filtered, &strict) {
        let output = reference_json(out).unwrap_or(Value::Null);
        check_only_refused_tools_removed(input, &output);
    }
    check_rewrite(
        filter_and_guardrail(),
        true,
        data,
        body,
        client.as_ref(),
        readable,
    );
});

/// The checks every rule set must pass (`redacts`: it has the secrets guardrail); returns the
/// rewritten bytes, if any.
fn check_rewrite(
    rewrite: &Transform,
    redacts: bool,
    data: &[u8],
    body: &str,
    client: Option<&Value>,
    strictly_readable: bool,
) -> Option<Vec<u8>> {
    let Some(out) = rewrite(data) else {
        if body.trim().is_empty() {
            return None;
        }
        assert!(strictly_readable, "unreadable bytes passed on unchecked");
        assert!(
            std::str::from_utf8(data).is_ok() && !data.starts_with(BOM),
            "bytes a client reads differently passed on as they are"
        );
        let client = client.expect("strictly readable bytes are JSON to a client");
        let refused = disallowed_tools(client);
        assert!(refused.is_empty(), "refused tools passed on: {refused:?}");
        assert!(
            !(redacts && has_secret(client)),
            "a secret passed on in a result"
        );
        return None;
    };
    if out.is_empty() {
        check_withheld(redacts, client);
        return Some(out);
    }
    assert!(
        std::str::from_utf8(&out).is_ok() && !out.starts_with(BOM),
        "rewritten bytes a client would read differently"
    );
    let output = reference_json(&out).expect("rewritten bytes are JSON");
    let refused = disallowed_tools(&output);
    assert!(
        refused.is_empty(),
        "refused tools in the output: {refused:?}"
    );
    assert!(
        !(redacts && has_secret(&output)),
        "a secret in the output's results"
    );
    assert!(
        rewrite(&out).is_none(),
        "rewriting the output changes it again"
    );
    if !strictly_readable {
        assert_eq!(
            output["error"]["data"]["reason"], "upstream_message_unreadable",
            "unreadable bytes not replaced by the unreadable-message error"
        );
    }
    Some(out)
}

/// Nothing passed on: allowed only for server-to-client messages (with a `method`) that a
/// guardrail refused, which answer nothing of the client's; a response is never withheld.
fn check_withheld(redacts: bool, client: Option<&Value>) {
    assert!(redacts, "the tool filter alone withheld a message");
    let client = client.expect("withheld bytes a client cannot read");
    let messages: Vec<&Value> = match client {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    assert!(
        !messages.is_empty() && messages.iter().all(|m| m.get("method").is_some()),
        "a response was withheld"
    );
}

/// With the filter alone: the output is the input with refused tools removed, nothing else.
fn check_only_refused_tools_removed(input: &Value, output: &Value) {
    let before = tools_arrays(input);
    let after = tools_arrays(output);
    assert_eq!(
        before.len(),
        after.len(),
        "tools arrays appeared or vanished"
    );
    for (before, after) in before.iter().zip(&after) {
        let kept: Vec<&Value> = before
            .iter()
            .filter(|t| t.get("name").and_then(Value::as_str).is_some_and(allowed))
            .collect();
        assert_eq!(
            kept.len(),
            after.len(),
            "the filter removed an allowed tool"
        );
        assert!(kept.iter().zip(after.iter()).all(|(a, b)| json_same(a, b)));
    }
    assert!(
        json_same(&without_tools(input), &without_tools(output)),
        "the filter changed more than the tools"
    );
}

/// `value` with every `result.tools` array emptied, to compare the rest.
fn without_tools(value: &Value) -> Value {
    let mut value = value.clone();
    let clear = |m: &mut Value| {
        if let Some(tools) = m
            .get_mut("result")
            .and_then(|r| r.get_mut("tools"))
            .and_then(Value::as_array_mut)
        {
            tools.clear();
        }
    };
    match &mut value {
        Value::Array(items) => items.iter_mut().for_each(clear),
        item => clear(item),
    }
    value
}

/// Whether a string in some message's `result` holds what the guardrail redacts.
fn has_secret(value: &Value) -> bool {
    fn any_string(value: &Value) -> bool {
        match value {
            Value::String(text) => text.match_indices(SECRET).any(|(at, _)| {
                text.as_bytes()
                    .get(at + SECRET.len())
                    .is_some_and(u8::is_ascii_digit)
            }),
            Value::Array(items) => items.iter().any(any_string),
            Value::Object(map) => map.values().any(any_string),
            _ => false,
        }
    }
    let result = |message: &Value| message.get("result").is_some_and(any_string);
    match value {
        Value::Array(items) => items.iter().any(result),
        item => result(item),
    }
}
