//! W3C trace context in and out: `traceparent`/`tracestate` in HTTP headers, and in a
//! message's `params._meta`, where the 2026-07-28 MCP specification carries them.

use http::HeaderMap;
use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::TraceContextExt,
};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use serde_json::{Map, Value};

const FIELDS: [&str; 2] = ["traceparent", "tracestate"];

/// The caller's context from its headers (an empty context when it sent none or a bad one).
pub fn from_headers(headers: &HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// The caller's context from a message's `params._meta`, when it carries a valid one.
pub fn from_meta(params: Option<&Value>) -> Option<Context> {
    let meta = params?.get("_meta")?.as_object()?;
    let cx = TraceContextPropagator::new().extract(&MetaExtractor(meta));
    cx.span().span_context().is_valid().then_some(cx)
}

/// Replaces whatever trace context the headers carried with `cx`'s.
pub fn to_headers(cx: &Context, headers: &mut HeaderMap) {
    for field in FIELDS {
        headers.remove(field);
    }
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(headers));
}

/// Sets `params._meta.traceparent` (and `tracestate`) to `cx`'s, keeping every other member.
pub fn to_meta(cx: &Context, params: &mut Value) {
    let Some(params) = params.as_object_mut() else {
        return;
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    for field in FIELDS {
        meta.remove(field);
    }
    TraceContextPropagator::new().inject_context(cx, &mut MetaInjector(meta));
}

struct MetaExtractor<'a>(&'a Map<String, Value>);

impl Extractor for MetaExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct MetaInjector<'a>(&'a mut Map<String, Value>);

impl Injector for MetaInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), Value::String(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn meta_context_is_read_and_replaced_keeping_other_members() {
        let mut params =
            json!({ "name": "echo", "_meta": { "traceparent": PARENT, "progressToken": 7 } });
        let cx = from_meta(Some(&params)).unwrap();
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        let mut headers = HeaderMap::new();
        to_headers(&cx, &mut headers);
        assert_eq!(headers["traceparent"], PARENT);
        to_meta(&Context::new(), &mut params);
        assert_eq!(params["_meta"], json!({ "progressToken": 7 }));
        assert!(from_meta(Some(&json!({ "_meta": { "traceparent": "garbage" } }))).is_none());
    }
}
