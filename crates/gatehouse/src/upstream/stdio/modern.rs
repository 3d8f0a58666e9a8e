//! The 2026-07-28 transport's HTTP statuses for a stdio server's answers. An HTTP upstream
//! sets them itself; a program cannot, so Gatehouse does, from the JSON-RPC error it wrote:
//! a method the request's version does not have is 404 (`initialize`, `ping`, … were removed),
//! and a request the version rejects (its `_meta` lacks a required field, the version is not
//! supported, headers and body disagree) is 400. Requests of earlier versions keep 200 (a 404
//! would tell a legacy client its session is gone).

use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";
/// The last version with sessions; a request naming a later one is of the modern transport.
const LAST_SESSION_ERA: &str = "2025-11-25";
const META: [&str; 2] = [
    "io.modelcontextprotocol/protocolVersion",
    "io.modelcontextprotocol/clientCapabilities",
];
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
/// Invalid request, header mismatch, missing client capability, unsupported version.
const REJECTED: [i64; 4] = [-32600, -32020, -32021, -32022];

/// Whether the request names a protocol version after the session era (header or `_meta`).
pub(super) fn is_modern(headers: &HeaderMap, message: &Value) -> bool {
    let header = headers
        .get(PROTOCOL_VERSION_HEADER)
        .and_then(|v| v.to_str().ok());
    let meta = message
        .pointer("/params/_meta")
        .and_then(|m| m.get(META[0]))
        .and_then(Value::as_str);
    header.or(meta).is_some_and(|v| v > LAST_SESSION_ERA)
}

/// Whether the request's `_meta` lacks a field the modern transport requires.
pub(super) fn meta_incomplete(request: &Value) -> bool {
    let meta = request.pointer("/params/_meta");
    !META
        .iter()
        .all(|field| meta.and_then(|m| m.get(field)).is_some())
}

/// The status of a modern request's JSON answer (`meta_incomplete`: of the request).
pub(super) fn status(meta_incomplete: bool, response: &Value) -> StatusCode {
    let Some(code) = response.pointer("/error/code").and_then(Value::as_i64) else {
        return StatusCode::OK;
    };
    match code {
        METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        INVALID_PARAMS if meta_incomplete => StatusCode::BAD_REQUEST,
        code if REJECTED.contains(&code) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

/// Whether `response` is a program's "method not found" for a modern `server/discover`: a
/// program of an earlier generation, which Gatehouse answers for from its `initialize`.
pub(super) fn discover_unknown(request: &Value, response: &Value) -> bool {
    request.get("method").and_then(Value::as_str) == Some("server/discover")
        && response.pointer("/error/code").and_then(Value::as_i64) == Some(METHOD_NOT_FOUND)
}

/// A `DiscoverResult` built from the program's `InitializeResult` (what Gatehouse learnt when
/// it started it): its capabilities, instructions and identity, and as supported versions only
/// the program's own. Gatehouse does not translate a 2025 program's results into the modern
/// shapes, so it advertises the handshake era, as the Go SDK's stateful servers do; clients
/// then fall back to `initialize` knowing what the server offers.
pub(super) fn discover_result(id: Option<&Value>, initialized: &Value) -> Value {
    let versions = vec![
        initialized
            .get("protocolVersion")
            .cloned()
            .unwrap_or_else(|| Value::from(LAST_SESSION_ERA)),
    ];
    let mut result = json!({
        "resultType": "complete",
        "supportedVersions": versions,
        "capabilities": initialized.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": {"io.modelcontextprotocol/serverInfo": initialized.get("serverInfo")},
    });
    if let Some(instructions) = initialized.get("instructions") {
        result["instructions"] = instructions.clone();
    }
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// The answer to a modern `initialize`, which that version removed.
pub(super) fn initialize_removed(request: &Value) -> Value {
    json!({"jsonrpc": "2.0", "id": request.get("id"), "error": {
        "code": METHOD_NOT_FOUND,
        "message": "Method not found: initialize is not part of this protocol version",
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: i64) -> Value {
        json!({"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": "x"}})
    }

    #[test]
    fn removed_methods_are_404_rejections_400_and_a_tools_own_errors_200() {
        let full = json!({"params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}}});
        let bare = json!({"params": {}});
        let (full, bare) = (meta_incomplete(&full), meta_incomplete(&bare));
        assert!(!full && bare);
        assert_eq!(status(full, &error(-32601)), StatusCode::NOT_FOUND);
        assert_eq!(status(full, &error(-32022)), StatusCode::BAD_REQUEST);
        assert_eq!(status(bare, &error(-32602)), StatusCode::BAD_REQUEST);
        assert_eq!(
            status(full, &error(-32602)),
            StatusCode::OK,
            "the tool's own"
        );
        assert_eq!(status(full, &error(-32000)), StatusCode::OK);
        let result = json!({"jsonrpc": "2.0", "id": 1, "result": {}});
        assert_eq!(status(bare, &result), StatusCode::OK);
    }

    #[test]
    fn only_versions_after_the_session_era_are_modern() {
        let mut headers = HeaderMap::new();
        let body = json!({"params": {}});
        assert!(!is_modern(&headers, &body), "no version: 2025-03-26");
        headers.insert(PROTOCOL_VERSION_HEADER, "2025-11-25".parse().unwrap());
        assert!(!is_modern(&headers, &body));
        headers.insert(PROTOCOL_VERSION_HEADER, "2026-07-28".parse().unwrap());
        assert!(is_modern(&headers, &body));
        let meta =
            json!({"params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "v999.0.0"}}});
        assert!(
            is_modern(&HeaderMap::new(), &meta),
            "an unknown later version too"
        );
    }
}
