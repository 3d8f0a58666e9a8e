//! A request body and its routing headers through `authorize`, `check_routing_headers` and
//! `protocol_era`.
//!
//! Input layout: byte 0 = flags (bit 0: send `Mcp-Method`, bit 1: send `Mcp-Name`, bit 2: send
//! `MCP-Protocol-Version`, bit 3: allow undefined methods, bit 4: narrow the grant to a key's
//! patterns, bit 5: an access token with a scope), then `method NUL name NUL version NUL body`,
//! where with bit 5 the body is `scope NUL body` (missing parts are empty).
//!
//! Asserts, besides "never panics":
//! * `check_routing_headers` accepts only headers that repeat the single message's method and
//!   routing name (plainly or as `=?base64?…?=`), and refuses only with `HeaderMismatch`.
//! * `authorize` lets through only what the grant covers: every granted `tools/call` names an
//!   allowed tool, families follow the grant, undefined methods only when allowed; a refused
//!   tool really is refused; `lists_tools` is set exactly when a request lists tools.
//! * With a token's scope on the server (`fuzz`), nothing beyond the scope passes either: a tool
//!   call needs the tool (or the whole server) in the scope, the resource and prompt families
//!   and completion need `read`; `InsufficientScope` comes only when the grant would allow and
//!   the scope falls short, and asks for a parseable scope that keeps what the token had and
//!   adds what is missing.
//! * `protocol_era` accepts any textual version (negotiation is the upstream's), refuses only a
//!   header that is not text, and agrees with `_meta`.
#![no_main]

use base64::Engine;
use gatehouse::{
    error::GatewayError,
    gateway::authorize::{self, Need, STATELESS_ERA},
};
use gatehouse_fuzz::grant;
use gatehouse_model::{
    jsonrpc::{self, Envelope, Kind},
    scope::{Scope, ServerScope},
    tool_pattern::{ToolPattern, parse_pattern_list},
};
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
    let mut body = parts.next().unwrap_or_default();
    let scope = if flags & 32 != 0 {
        let (scope, rest) = body
            .iter()
            .position(|&b| b == 0)
            .map_or((body, &[][..]), |at| (&body[..at], &body[at + 1..]));
        body = rest;
        let Some(scope) = std::str::from_utf8(scope)
            .ok()
            .and_then(|s| Scope::parse(s).ok())
        else {
            return;
        };
        Some(scope.for_server(SERVER))
    } else {
        None
    };

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
    let era = check_era(&headers, &envelope);
    check_routing(&headers, &envelope, era);
    check_authorize(&envelope, narrowing, scope.as_ref(), allow_undefined, era);
});

/// The server the access token's scope is read for.
const SERVER: &str = "fuzz";

fn check_routing(headers: &HeaderMap, envelope: &Envelope, era: bool) {
    let result = authorize::check_routing_headers(headers, envelope, era);
    let method = headers.get("mcp-method");
    let name = headers.get("mcp-name");
    match result {
        Ok(()) => {
            if method.is_none() && name.is_none() {
                assert!(
                    !era || envelope.messages[0].kind == Kind::Response,
                    "a stateless-era request accepted without Mcp-Method"
                );
                return;
            }
            assert!(!envelope.batch, "routing headers accepted for a batch");
            let message = &envelope.messages[0];
            if era && message.kind != Kind::Response {
                assert!(method.is_some(), "stateless era without Mcp-Method");
                if message.routing_name().is_some() {
                    assert!(name.is_some(), "stateless era without Mcp-Name");
                }
            }
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
            assert!(method.is_some() || name.is_some() || era);
        }
        Err(GatewayError::HeaderMissing { .. }) => {
            assert!(era, "a header required outside the stateless era");
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
    scope: Option<&ServerScope>,
    allow_undefined: bool,
    era: bool,
) {
    let grant = grant();
    let allows = |name: &str| grant.allows_tool(name, narrowing);
    let result = authorize::authorize(
        envelope,
        grant,
        narrowing,
        scope.map(|s| (SERVER, s)),
        allow_undefined,
        era,
    );
    let requests = envelope
        .messages
        .iter()
        .filter(|m| m.kind != Kind::Response);
    match result {
        Ok(verdict) => {
            if let Some(scope) = scope {
                assert!(
                    scope.any,
                    "a token without a scope on the server let through"
                );
            }
            let scope_reads = scope.is_none_or(ServerScope::allows_read);
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
                        assert!(
                            scope.is_none_or(|s| s.allows_tool(name)),
                            "tool {name:?} let through beyond the token's scope"
                        );
                    }
                    Need::Resources => assert!(grant.resources && scope_reads),
                    Need::Prompts => {
                        assert!(grant.prompts, "{method} let through");
                        assert!(scope_reads, "{method} let through without read scope");
                    }
                    Need::Completion => {
                        assert!(scope_reads, "completion let through without read scope");
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
                    Need::Listen => {
                        // Each family the filter opts in to must be granted, and read.
                        let filter = message.params.as_ref().and_then(|p| p.get("notifications"));
                        let opted = |key: &str| {
                            filter
                                .and_then(|f| f.get(key))
                                .is_some_and(|v| v.as_bool() != Some(false) && !v.is_null())
                        };
                        if opted("promptsListChanged") {
                            assert!(
                                grant.prompts && scope_reads,
                                "prompt notifications let through"
                            );
                        }
                        if opted("resourcesListChanged") {
                            assert!(
                                grant.resources && scope_reads,
                                "resource notifications let through"
                            );
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
        Err(GatewayError::InsufficientScope { scope: wanted }) => {
            let token = scope.expect("InsufficientScope without a token scope");
            check_step_up(envelope, grant, narrowing, token, &wanted);
        }
        Err(other) => panic!("unexpected error from authorize: {other:?}"),
    }
}

/// An `insufficient_scope` refusal asks for a valid scope that keeps what the token had and adds
/// what some message the grant allows really lacks.
fn check_step_up(
    envelope: &Envelope,
    grant: &gatehouse::grants::Grant,
    narrowing: Option<&[ToolPattern]>,
    token: &ServerScope,
    wanted: &str,
) {
    let wanted = Scope::parse(wanted)
        .unwrap_or_else(|e| panic!("step-up scope {wanted:?} does not parse: {e}"))
        .for_server(SERVER);
    assert!(wanted.any, "step-up scope does not name the server");
    if !token.any {
        return;
    }
    assert!(
        token.tools.iter().all(|t| wanted.allows_tool(t)) && (!token.read || wanted.allows_read()),
        "the step-up scope drops what the token had"
    );
    let granted_family =
        |message: &gatehouse_model::jsonrpc::Message| match authorize::need(message.method()) {
            Need::Resources => grant.resources,
            Need::Prompts => grant.prompts,
            Need::Completion => true,
            _ => false,
        };
    let short = envelope
        .messages
        .iter()
        .filter(|m| m.kind != Kind::Response)
        .any(|message| match authorize::need(message.method()) {
            Need::Tool => message.param_str("name").is_some_and(|name| {
                grant.allows_tool(name, narrowing)
                    && !token.allows_tool(name)
                    && wanted.allows_tool(name)
            }),
            _ => granted_family(message) && !token.allows_read() && wanted.allows_read(),
        });
    assert!(short, "insufficient_scope for a request the scope covers");
}
