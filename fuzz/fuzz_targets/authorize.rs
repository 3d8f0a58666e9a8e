//! A request body and its routing headers through `authorize`, `check_routing_headers` and
//! `protocol_era`.
//!
//! Input layout: byte 0 = flags (bit 0: send `Mcp-Method`, bit 1: send `Mcp-Name`, bit 2: send
//! `MCP-Protocol-Version`, bit 3: allow undefined methods, bit 4: narrow the grant to a key's
//! patterns), then `method NUL name NUL version NUL body` (missing parts are empty).
//!
//! Asserts, besides "never panics":
//! * `check_routing_headers` accepts only headers that repeat the single message's method and
//!   routing name (plainly or as `=?base64?…?=`), and refuses only with `HeaderMismatch`.
//! * `authorize` lets through only what the grant covers: every granted `tools/call` names an
//!   allowed tool, families follow the grant, undefined methods only when allowed; a refused
//!   tool really is refused; `lists_tools` is set exactly when a request lists tools.
//! * `protocol_era` accepts any textual version (negotiation is the upstream's), refuses only a
//!   header that is not text, and agrees with `_meta`.
#![no_main]

use base64::Engine;
use gatehouse::{
    error::GatewayError,
    gateway::{
        authorize::{self, Need, STATELESS_ERA},
        jsonrpc::{self, Envelope, Kind},
    },
    grants::{ToolPattern, parse_pattern_list},
};
use gatehouse_fuzz::grant;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fn narrowing() -> &'static [ToolPattern] {
    static NARROWING: std::sync::OnceLock<Vec<ToolPattern>> = std::sync::OnceLock::new();
    NARROWING.get_or_init(|| parse_pattern_list("echo,read_f*").unwrap_or_default())
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(4, |&b| b == 0);
    let method_header = parts.next().unwrap_or_default();
    let name_header = parts.next().unwrap_or_default();
    let version_header = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();

    let mut headers = HeaderMap::new();
    for (bit, name, value) in [
        (1, "mcp-method", method_header),
        (2, "mcp-name", name_header),
        (4, "mcp-protocol-version", version_header),
    ] {
        if flags & bit != 0 {
            let Ok(value) = HeaderValue::from_bytes(value) else {
                return;
            };
            headers.insert(name, value);
        }
    }
    let allow_undefined = flags & 8 != 0;
    let narrowing = (flags & 16 != 0).then(narrowing);

    let Ok(envelope) = jsonrpc::parse(body) else {
        return;
    };
    check_routing(&headers, &envelope);
    let era = check_era(&headers, &envelope);
    check_authorize(&envelope, narrowing, allow_undefined, era);
});

fn check_routing(headers: &HeaderMap, envelope: &Envelope) {
    let result = authorize::check_routing_headers(headers, envelope);
    let method = headers.get("mcp-method");
    let name = headers.get("mcp-name");
    match result {
        Ok(()) => {
            if method.is_none() && name.is_none() {
                return;
            }
            assert!(!envelope.batch, "routing headers accepted for a batch");
            let message = &envelope.messages[0];
            if let Some(method) = method {
                assert_eq!(method.as_bytes(), message.method().as_bytes());
            }
            if let Some(name) = name {
                let expected = message
                    .routing_name()
                    .expect("Mcp-Name accepted without a routing name");
                let value = name.as_bytes();
                let decoded = value
                    .strip_prefix(b"=?base64?")
                    .and_then(|v| v.strip_suffix(b"?="))
                    .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok());
                assert!(
                    value == expected.as_bytes() || decoded.as_deref() == Some(expected.as_bytes()),
                    "Mcp-Name {value:?} accepted for {expected:?}"
                );
            }
        }
        Err(GatewayError::HeaderMismatch { .. }) => {
            assert!(method.is_some() || name.is_some());
        }
        Err(other) => panic!("unexpected error from check_routing_headers: {other:?}"),
    }
}

fn check_era(headers: &HeaderMap, envelope: &Envelope) -> bool {
    let header = headers.get("mcp-protocol-version");
    let meta = envelope
        .messages
        .iter()
        .find_map(|m| m.meta_protocol_version());
    match authorize::protocol_era(headers, Some(envelope)) {
        Ok(era) => {
            let header = header.map(|h| h.to_str().expect("an accepted version is text"));
            if let Some(header) = header {
                if let Some(meta) = meta {
                    assert_eq!(header, meta);
                }
            }
            assert_eq!(era, header.or(meta) == Some(STATELESS_ERA));
            era
        }
        Err(GatewayError::UnsupportedProtocolVersion { .. }) => {
            assert!(header.is_some_and(|h| h.to_str().is_err()));
            false
        }
        Err(GatewayError::HeaderMismatch { .. }) => {
            assert!(header.is_some() && meta.is_some());
            false
        }
        Err(other) => panic!("unexpected error from protocol_era: {other:?}"),
    }
}

fn check_authorize(
    envelope: &Envelope,
    narrowing: Option<&[ToolPattern]>,
    allow_undefined: bool,
    era: bool,
) {
    let grant = grant();
    let allows = |name: &str| grant.allows_tool(name, narrowing);
    let result = authorize::authorize(envelope, grant, narrowing, allow_undefined, era);
    let requests = envelope
        .messages
        .iter()
        .filter(|m| m.kind != Kind::Response);
    match result {
        Ok(verdict) => {
            let mut lists_tools = false;
            for message in requests {
                let method = message.method();
                lists_tools |= method == "tools/list";
                match authorize::need(method) {
                    Need::Connection => {}
                    Need::Tool => {
                        let name = message
                            .param_str("name")
                            .expect("tools/call without a name");
                        assert!(allows(name), "tool {name:?} let through");
                    }
                    Need::Resources => assert!(grant.resources),
                    Need::Prompts => assert!(grant.prompts, "{method} let through"),
                    Need::Completion => {
                        let kind = message
                            .params
                            .as_ref()
                            .and_then(|p| p.get("ref"))
                            .and_then(|r| r.get("type"))
                            .and_then(|t| t.as_str());
                        match kind {
                            Some("ref/prompt") => assert!(grant.prompts),
                            Some("ref/resource") => assert!(grant.resources),
                            other => panic!("completion with ref {other:?} let through"),
                        }
                    }
                    Need::Undefined => assert!(allow_undefined, "{method:?} let through"),
                }
            }
            assert_eq!(verdict.lists_tools, lists_tools);
        }
        Err(GatewayError::ToolNotGranted { tool }) => {
            assert!(!allows(&tool), "granted tool {tool:?} refused");
        }
        Err(GatewayError::FamilyNotGranted { family, .. }) => {
            let granted = match family {
                "prompts" => grant.prompts,
                "resources" => grant.resources,
                other => panic!("unknown family {other}"),
            };
            assert!(!granted);
        }
        Err(GatewayError::MethodNotFound {
            method,
            stateless_era,
        }) => {
            assert!(!allow_undefined);
            assert_eq!(authorize::need(&method), Need::Undefined);
            assert_eq!(stateless_era, era);
        }
        Err(GatewayError::InvalidRequest(_)) => {}
        Err(other) => panic!("unexpected error from authorize: {other:?}"),
    }
}
