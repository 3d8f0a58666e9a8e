//! May this principal send these messages to this server? Deny by default.
//!
//! Every message of a body is judged, whatever its framing (single, batch, notification,
//! response). Methods are grouped by what a connection grants: lifecycle methods come with
//! any connection; `tools/call` needs the tool; `resources/*` and `prompts/*` need their
//! family; anything the specification does not define is refused unless the server allows it.

use http::{HeaderMap, HeaderName};

use crate::{error::GatewayError, grants::Grant};
use gatehouse_model::{
    jsonrpc::{Envelope, Kind, Message},
    scope::{ScopeItem, ServerScope},
    tool_pattern::ToolPattern,
};

pub const STATELESS_ERA: &str = "2026-07-28";

// A `HeaderName`, not a `&str`: a lookup by `&str` parses and lower-cases the name each time.
const PROTOCOL_VERSION_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");
const METHOD_HEADER: HeaderName = HeaderName::from_static("mcp-method");
const NAME_HEADER: HeaderName = HeaderName::from_static("mcp-name");

/// What a method needs from the grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Comes with the connection itself.
    Connection,
    Tool,
    Resources,
    Prompts,
    /// `completion/complete`: resources or prompts, depending on its `ref`.
    Completion,
    /// `subscriptions/listen`: each family the filter opts in to.
    Listen,
    Undefined,
}

pub fn need(method: &str) -> Need {
    match method {
        "initialize" | "ping" | "server/discover" | "logging/setLevel" | "tools/list"
        | "tasks/get" | "tasks/list" | "tasks/cancel" | "tasks/result" | "tasks/update" => {
            Need::Connection
        }
        "subscriptions/listen" => Need::Listen,
        m if m.starts_with("notifications/") => Need::Connection,
        "tools/call" => Need::Tool,
        "resources/list"
        | "resources/templates/list"
        | "resources/read"
        | "resources/subscribe"
        | "resources/unsubscribe" => Need::Resources,
        "prompts/list" | "prompts/get" => Need::Prompts,
        "completion/complete" => Need::Completion,
        _ => Need::Undefined,
    }
}

/// Requests of the 2025-11-25 tasks API that the stateless era (2026-07-28) removed when it
/// moved tasks to an extension (SEP-2663: poll with `tasks/get`, no `tasks/result`, no
/// `tasks/list`). In that era they are unknown methods, answered here: passed on, they would
/// meet Gatehouse's task ownership check (`task_not_found`, -32602) or a stdio program that
/// speaks 2025-11-25 and still has them, where the client must get "method not found".
const REMOVED_IN_STATELESS_ERA: [&str; 2] = ["tasks/result", "tasks/list"];

pub struct Verdict {
    /// Whether a `tools/list` result will need filtering.
    pub lists_tools: bool,
}

/// `scope` is an access token's scope on this server (with the server's name): checked after
/// the grant, so a refusal says whether the connection or only the token falls short.
pub fn authorize(
    envelope: &Envelope,
    grant: &Grant,
    narrowing: Option<&[ToolPattern]>,
    scope: Option<(&str, &ServerScope)>,
    allow_undefined_methods: bool,
    stateless_era: bool,
) -> Result<Verdict, GatewayError> {
    if let Some((server, scope)) = scope
        && !scope.any
    {
        return Err(GatewayError::InsufficientScope {
            scope: format!("mcp:{server}"),
        });
    }
    let needs_read = |server: &str, scope: &ServerScope| GatewayError::InsufficientScope {
        scope: scope.step_up(server, ScopeItem::Read(server.to_owned())),
    };
    let mut verdict = Verdict { lists_tools: false };
    for message in &envelope.messages {
        if message.kind == Kind::Response {
            continue;
        }
        let method = message.method();
        if stateless_era && REMOVED_IN_STATELESS_ERA.contains(&method) {
            return Err(GatewayError::MethodNotFound {
                method: method.to_owned(),
                stateless_era,
            });
        }
        match need(method) {
            Need::Connection => verdict.lists_tools |= method == "tools/list",
            Need::Tool => {
                let name = message.param_str("name").ok_or_else(|| {
                    GatewayError::InvalidRequest("tools/call needs params.name".into())
                })?;
                if !grant.allows_tool(name, narrowing) {
                    return Err(GatewayError::ToolNotGranted {
                        tool: name.to_owned(),
                    });
                }
                if let Some((server, scope)) = scope
                    && !scope.allows_tool(name)
                {
                    return Err(GatewayError::InsufficientScope {
                        scope: scope.step_up(
                            server,
                            ScopeItem::Tool {
                                server: server.to_owned(),
                                tool: name.to_owned(),
                            },
                        ),
                    });
                }
            }
            Need::Resources => family(grant.resources, method, "resources")?,
            Need::Prompts => family(grant.prompts, method, "prompts")?,
            Need::Completion => match completion_ref(message) {
                Some("ref/prompt") => family(grant.prompts, method, "prompts")?,
                Some("ref/resource") => family(grant.resources, method, "resources")?,
                _ => {
                    return Err(GatewayError::InvalidRequest(
                        "completion/complete needs params.ref.type ref/prompt or ref/resource"
                            .into(),
                    ));
                }
            },
            Need::Listen => {
                for (opted, family_name, granted) in listen_families(message) {
                    if opted {
                        family(granted(grant), method, family_name)?;
                    }
                }
            }
            Need::Undefined if allow_undefined_methods => {}
            Need::Undefined => {
                return Err(GatewayError::MethodNotFound {
                    method: method.to_owned(),
                    stateless_era,
                });
            }
        }
        // After the grant, so a refusal names the real obstacle: the connection, or only the
        // token's scope (which the client can step up).
        if let Some((server, scope)) = scope
            && (matches!(
                need(method),
                Need::Resources | Need::Prompts | Need::Completion
            ) || (need(method) == Need::Listen && listens_to_a_family(message)))
            && !scope.allows_read()
        {
            return Err(needs_read(server, scope));
        }
    }
    Ok(verdict)
}

fn family(granted: bool, method: &str, family: &'static str) -> Result<(), GatewayError> {
    if granted {
        Ok(())
    } else {
        Err(GatewayError::FamilyNotGranted {
            method: method.to_owned(),
            family,
        })
    }
}

type FamilyGranted = fn(&Grant) -> bool;

/// What a `subscriptions/listen` filter opts in to, by family: resource and prompt
/// notifications reveal what those families hold, so each needs its family granted; tool-list
/// changes come with the connection (the list itself is filtered).
fn listen_families(message: &Message) -> [(bool, &'static str, FamilyGranted); 2] {
    let filter = message.params.as_ref().and_then(|p| p.get("notifications"));
    let flag = |key: &str| {
        filter
            .and_then(|f| f.get(key))
            .is_some_and(|v| v.as_bool() != Some(false) && !v.is_null())
    };
    let subscriptions = filter
        .and_then(|f| f.get("resourceSubscriptions"))
        .is_some_and(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()));
    [
        (
            flag("resourcesListChanged") || subscriptions,
            "resources",
            |g| g.resources,
        ),
        (flag("promptsListChanged"), "prompts", |g| g.prompts),
    ]
}

fn listens_to_a_family(message: &Message) -> bool {
    listen_families(message).iter().any(|(opted, _, _)| *opted)
}

fn completion_ref(message: &Message) -> Option<&str> {
    message.params.as_ref()?.get("ref")?.get("type")?.as_str()
}

/// Whether the request is in the stateless (2026-07-28) era.
///
/// Version negotiation is the upstream's: a version Gatehouse does not know (a future one, or
/// an older one an SDK still accepts, such as 2024-10-07) is forwarded, and the upstream either
/// serves it or answers `UnsupportedProtocolVersionError` with the versions *it* supports.
/// Governance does not depend on the version: every message is still judged by its method,
/// and such a request is treated as session-era, so a session id it carries is checked. Only
/// a header that is not text is refused here.
pub fn protocol_era(
    headers: &HeaderMap,
    envelope: Option<&Envelope>,
) -> Result<bool, GatewayError> {
    let header = match headers.get(PROTOCOL_VERSION_HEADER) {
        Some(value) => {
            Some(
                value
                    .to_str()
                    .map_err(|_| GatewayError::UnsupportedProtocolVersion {
                        version: String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    })?,
            )
        }
        None => None,
    };
    let meta = envelope.and_then(|e| e.messages.iter().find_map(Message::meta_protocol_version));
    if let (Some(header), Some(meta)) = (header, meta)
        && header != meta
    {
        return Err(GatewayError::HeaderMismatch {
            header: "MCP-Protocol-Version",
        });
    }
    Ok(header.or(meta) == Some(STATELESS_ERA))
}

/// `Mcp-Method` and `Mcp-Name` must say what the body says: upstreams may route on the
/// headers, and what is authorised must be what is executed. The stateless era requires them
/// (`Mcp-Method` on every message, `Mcp-Name` where the method names a target), so there a
/// missing one is refused as a mismatched one is; earlier eras check them only when sent, and
/// Gatehouse's own decisions always come from the body.
pub fn check_routing_headers(
    headers: &HeaderMap,
    envelope: &Envelope,
    stateless_era: bool,
) -> Result<(), GatewayError> {
    let method_header = headers.get(METHOD_HEADER);
    let name_header = headers.get(NAME_HEADER);
    if method_header.is_none() && name_header.is_none() && !stateless_era {
        return Ok(());
    }
    let message = match (envelope.batch, envelope.first()) {
        (false, Some(message)) => message,
        _ => {
            return Err(GatewayError::HeaderMismatch {
                header: "Mcp-Method",
            });
        }
    };
    if message.kind == Kind::Response && method_header.is_none() && name_header.is_none() {
        return Ok(());
    }
    match method_header {
        Some(value) if value.as_bytes() != message.method().as_bytes() => {
            return Err(GatewayError::HeaderMismatch {
                header: "Mcp-Method",
            });
        }
        None if stateless_era => {
            return Err(GatewayError::HeaderMissing {
                header: "Mcp-Method",
            });
        }
        _ => {}
    }
    match (name_header, message.routing_name()) {
        (Some(value), Some(expected)) if header_value_matches(value.as_bytes(), expected) => {}
        (Some(_), _) => return Err(GatewayError::HeaderMismatch { header: "Mcp-Name" }),
        (None, Some(_)) if stateless_era => {
            return Err(GatewayError::HeaderMissing { header: "Mcp-Name" });
        }
        (None, _) => {}
    }
    Ok(())
}

/// Plain values compare directly; non-ASCII ones arrive as `=?base64?…?=`.
fn header_value_matches(value: &[u8], expected: &str) -> bool {
    use base64::Engine;
    if value == expected.as_bytes() {
        return true;
    }
    let Some(encoded) = value
        .strip_prefix(b"=?base64?")
        .and_then(|v| v.strip_suffix(b"?="))
    else {
        return false;
    };
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .is_ok_and(|decoded| decoded == expected.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_model::{jsonrpc::parse, tool_pattern::parse_pattern_list};
    use http::HeaderValue;

    fn grant() -> Grant {
        Grant {
            tools: parse_pattern_list("echo,add").unwrap(),
            resources: true,
            prompts: false,
            ..Grant::default()
        }
    }

    fn check(body: &str) -> Result<Verdict, GatewayError> {
        authorize(
            &parse(body.as_bytes()).unwrap(),
            &grant(),
            None,
            None,
            false,
            false,
        )
    }

    fn check_scoped(body: &str, scope: &str) -> Result<Verdict, GatewayError> {
        let scope = gatehouse_model::scope::Scope::parse(scope)
            .unwrap()
            .for_server("s");
        authorize(
            &parse(body.as_bytes()).unwrap(),
            &grant(),
            None,
            Some(("s", &scope)),
            false,
            false,
        )
    }

    #[test]
    fn a_token_scope_narrows_within_the_grant() {
        let call = |tool: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}"}}}}"#
            )
        };
        let read = r#"{"jsonrpc":"2.0","id":1,"method":"resources/list"}"#;
        let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        assert!(check_scoped(&call("echo"), "mcp:s").is_ok());
        assert!(check_scoped(&call("echo"), "mcp:s:tool:echo").is_ok());
        assert!(check_scoped(list, "mcp:s:tool:echo").is_ok());
        // The challenge keeps what the token had, for clients that replace their scope.
        assert_eq!(
            check_scoped(&call("add"), "mcp:s:tool:echo").err(),
            Some(GatewayError::InsufficientScope {
                scope: "mcp:s:tool:add mcp:s:tool:echo".into()
            })
        );
        // The grant decides first: a tool the connection lacks is not a scope problem.
        assert!(matches!(
            check_scoped(&call("rm"), "mcp:s:tool:echo"),
            Err(GatewayError::ToolNotGranted { .. })
        ));
        assert_eq!(
            check_scoped(read, "mcp:s:tool:echo").err(),
            Some(GatewayError::InsufficientScope {
                scope: "mcp:s:read mcp:s:tool:echo".into()
            })
        );
        assert!(check_scoped(read, "mcp:s:read").is_ok());
        assert!(matches!(
            check_scoped(
                r#"{"jsonrpc":"2.0","id":1,"method":"prompts/list"}"#,
                "mcp:s:read"
            ),
            Err(GatewayError::FamilyNotGranted { .. })
        ));
        assert_eq!(
            check_scoped(list, "mcp:other").err(),
            Some(GatewayError::InsufficientScope {
                scope: "mcp:s".into()
            })
        );
    }

    #[test]
    fn tools_are_checked_by_name() {
        assert!(
            !check(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#)
                .unwrap()
                .lists_tools
        );
        assert!(matches!(
            check(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_records"}}"#),
            Err(GatewayError::ToolNotGranted { tool }) if tool == "delete_records"
        ));
        assert!(matches!(
            check(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#),
            Err(GatewayError::InvalidRequest(_))
        ));
    }

    #[test]
    fn a_batch_is_denied_if_any_element_is() {
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}},
                      {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"rm"}}]"#;
        assert!(matches!(
            check(body),
            Err(GatewayError::ToolNotGranted { .. })
        ));
    }

    #[test]
    fn families_and_undefined_methods() {
        assert!(
            check(r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"x"}}"#)
                .is_ok()
        );
        assert!(matches!(
            check(r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p"}}"#),
            Err(GatewayError::FamilyNotGranted { .. })
        ));
        assert!(matches!(
            check(
                r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt"}}}"#
            ),
            Err(GatewayError::FamilyNotGranted {
                family: "prompts",
                ..
            })
        ));
        assert!(matches!(
            check(r#"{"jsonrpc":"2.0","id":1,"method":"foo/bar"}"#),
            Err(GatewayError::MethodNotFound { .. })
        ));
        assert!(check(r#"{"jsonrpc":"2.0","method":"notifications/anything"}"#).is_ok());
        assert!(check(r#"{"jsonrpc":"2.0","id":5,"result":{"action":"accept"}}"#).is_ok());
        assert!(
            check(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
                .unwrap()
                .lists_tools
        );
    }

    #[test]
    fn routing_headers_must_match_the_body() {
        let env =
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#)
                .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("mcp-method", HeaderValue::from_static("tools/call"));
        headers.insert("mcp-name", HeaderValue::from_static("echo"));
        assert!(check_routing_headers(&headers, &env, false).is_ok());
        assert!(check_routing_headers(&headers, &env, true).is_ok());
        headers.insert("mcp-name", HeaderValue::from_static("=?base64?ZWNobw==?="));
        assert!(check_routing_headers(&headers, &env, true).is_ok());
        headers.insert("mcp-name", HeaderValue::from_static("delete_records"));
        assert_eq!(
            check_routing_headers(&headers, &env, false),
            Err(GatewayError::HeaderMismatch { header: "Mcp-Name" })
        );
        headers.insert("mcp-method", HeaderValue::from_static("tools/list"));
        assert_eq!(
            check_routing_headers(&headers, &env, false),
            Err(GatewayError::HeaderMismatch {
                header: "Mcp-Method"
            })
        );
    }

    #[test]
    fn tasks_result_and_list_are_unknown_in_the_stateless_era_only() {
        let envelope = |method: &str| {
            parse(
                format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"taskId":"t"}}}}"#
                )
                .as_bytes(),
            )
            .unwrap()
        };
        let grant = grant();
        for method in REMOVED_IN_STATELESS_ERA {
            for allow_undefined in [false, true] {
                assert!(
                    matches!(
                        authorize(&envelope(method), &grant, None, None, allow_undefined, true),
                        Err(GatewayError::MethodNotFound {
                            stateless_era: true,
                            ..
                        })
                    ),
                    "{method}"
                );
            }
            assert!(
                authorize(&envelope(method), &grant, None, None, false, false).is_ok(),
                "{method} in a 2025-11-25 session"
            );
        }
        assert!(authorize(&envelope("tasks/get"), &grant, None, None, false, true).is_ok());
    }

    #[test]
    fn the_stateless_era_requires_its_routing_headers() {
        let call =
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#)
                .unwrap();
        let list = parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap();
        let none = HeaderMap::new();
        assert!(
            check_routing_headers(&none, &call, false).is_ok(),
            "earlier eras: optional"
        );
        assert_eq!(
            check_routing_headers(&none, &call, true),
            Err(GatewayError::HeaderMissing {
                header: "Mcp-Method"
            })
        );
        let mut method_only = HeaderMap::new();
        method_only.insert("mcp-method", HeaderValue::from_static("tools/call"));
        assert_eq!(
            check_routing_headers(&method_only, &call, true),
            Err(GatewayError::HeaderMissing { header: "Mcp-Name" })
        );
        assert!(check_routing_headers(&method_only, &call, false).is_ok());
        let mut list_headers = HeaderMap::new();
        list_headers.insert("mcp-method", HeaderValue::from_static("tools/list"));
        assert!(
            check_routing_headers(&list_headers, &list, true).is_ok(),
            "tools/list names no target, so it needs no Mcp-Name"
        );
        let batch = parse(br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#).unwrap();
        assert!(check_routing_headers(&none, &batch, true).is_err());
    }

    #[test]
    fn listening_needs_each_family_it_opts_in_to() {
        let listen = |filter: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{{"notifications":{filter}}}}}"#
            )
        };
        assert!(check(&listen(r#"{"toolsListChanged":true}"#)).is_ok());
        assert!(check(&listen(r#"{"resourcesListChanged":true}"#)).is_ok());
        assert!(check(&listen(r#"{"resourceSubscriptions":["file:///a"]}"#)).is_ok());
        assert!(matches!(
            check(&listen(r#"{"promptsListChanged":true}"#)),
            Err(GatewayError::FamilyNotGranted {
                family: "prompts",
                ..
            })
        ));
        assert!(check(&listen(r#"{"promptsListChanged":false}"#)).is_ok());
        let no_resources = Grant {
            resources: false,
            ..grant()
        };
        let body = listen(r#"{"toolsListChanged":true,"resourceSubscriptions":["file:///a"]}"#);
        assert!(matches!(
            authorize(
                &parse(body.as_bytes()).unwrap(),
                &no_resources,
                None,
                None,
                false,
                true
            ),
            Err(GatewayError::FamilyNotGranted {
                family: "resources",
                ..
            })
        ));
        // Resource notifications are reads: a token without the read scope steps up.
        assert!(matches!(
            check_scoped(
                &listen(r#"{"resourcesListChanged":true}"#),
                "mcp:s:tool:echo"
            ),
            Err(GatewayError::InsufficientScope { .. })
        ));
        assert!(check_scoped(&listen(r#"{"toolsListChanged":true}"#), "mcp:s:tool:echo").is_ok());
        assert!(
            check(r#"{"jsonrpc":"2.0","id":1,"method":"tasks/update","params":{"taskId":"t"}}"#)
                .is_ok(),
            "tasks/update is a method of the tasks extension, not an undefined one"
        );
    }

    #[test]
    fn protocol_versions() {
        let mut headers = HeaderMap::new();
        assert!(!protocol_era(&headers, None).unwrap());
        headers.insert(
            "mcp-protocol-version",
            HeaderValue::from_static("2026-07-28"),
        );
        assert!(protocol_era(&headers, None).unwrap());
        headers.insert(
            "mcp-protocol-version",
            HeaderValue::from_static("2024-10-07"),
        );
        assert!(
            !protocol_era(&headers, None).unwrap(),
            "an unknown version is the upstream's to negotiate, in the session era"
        );
        headers.insert(
            "mcp-protocol-version",
            HeaderValue::from_bytes(b"2031-\xff").unwrap(),
        );
        assert!(matches!(
            protocol_era(&headers, None),
            Err(GatewayError::UnsupportedProtocolVersion { .. })
        ));
        let env = parse(br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#).unwrap();
        headers.insert(
            "mcp-protocol-version",
            HeaderValue::from_static("2025-11-25"),
        );
        assert!(matches!(
            protocol_era(&headers, Some(&env)),
            Err(GatewayError::HeaderMismatch { .. })
        ));
    }
}
