//! Every way the gateway refuses or fails a request, and the one place they become HTTP.
//!
//! Each denial is its own variant with a stable `reason` code (recorded in the audit trail and
//! returned in the JSON-RPC error's `data`). [`GatewayError::into_response`] is the only
//! mapping to status codes, headers and bodies; it is an exhaustive match so a new variant
//! cannot ship without a decision about what the client sees. Messages never carry secrets.

use axum::{
    body::Body,
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use serde_json::{Value, json};

mod assertion;
mod oauth;
mod rule;
pub use assertion::{AssertionRefusal, AssertionRole};
pub use oauth::OAuthError;

/// JSON-RPC error codes. The -32700…-32600 block is JSON-RPC's own; -32020/-32022 are the
/// MCP 2026-07-28 transport's; -32011…-32018 are Gatehouse's (documented in docs/errors.md).
pub mod codes {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const HEADER_MISMATCH: i64 = -32020;
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
    pub const UNAUTHENTICATED: i64 = -32011;
    pub const FORBIDDEN: i64 = -32012;
    pub const NOT_FOUND: i64 = -32013;
    pub const PAYLOAD_TOO_LARGE: i64 = -32014;
    pub const UPSTREAM_UNAVAILABLE: i64 = -32015;
    pub const UPSTREAM_TIMEOUT: i64 = -32016;
    pub const RATE_LIMITED: i64 = -32017;
    pub const OVERLOADED: i64 = -32018;
    /// MCP 2025-11-25 `URLElicitationRequiredError`.
    pub const URL_ELICITATION_REQUIRED: i64 = -32042;
}

/// Protocol versions Gatehouse understands (and can therefore govern).
pub const SUPPORTED_PROTOCOL_VERSIONS: &[&str] = &[
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];

/// How a URL elicitation for upstream consent is put to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentAnswer {
    /// 2025-11-25: the `-32042` URL elicitation error.
    UrlElicitationError,
    /// 2026-07-28 `tools/call`, `prompts/get`, `resources/read`: an `input_required` result.
    InputRequired,
    /// 2026-07-28 methods that cannot answer `input_required` (and -32042 is retired there):
    /// refused, the link in the error.
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("unknown server")]
    UnknownServer,
    #[error("Host header not allowed")]
    HostNotAllowed,
    #[error("Origin not allowed")]
    OriginNotAllowed,
    /// RFC 9112 §3.2: no `Host`, two, or an unusable request-target authority.
    #[error("invalid Host: {0}")]
    InvalidHostHeader(&'static str),
    #[error("authentication required")]
    MissingCredential,
    #[error("invalid credential: {0}")]
    InvalidCredential(CredentialProblem),
    /// A DPoP proof that fails a check (RFC 9449 §4.3), is replayed, or comes with a token
    /// not bound to a key.
    #[error("invalid DPoP proof: {problem}")]
    InvalidDpopProof { problem: String },
    /// A DPoP-bound access token presented without its proof (as a bearer token).
    #[error("this access token is bound to a key: send it with the DPoP scheme and a proof")]
    DpopProofRequired,
    /// RFC 9449 §9: the proof must carry the nonce in `DPoP-Nonce`.
    #[error("the DPoP proof needs the nonce this response carries")]
    UseDpopNonce { nonce: String },
    #[error("no connection grants this client access to this server")]
    NoConnection,
    #[error("tool {tool:?} is not granted")]
    ToolNotGranted { tool: String },
    #[error("{family} are not granted on this connection")]
    FamilyNotGranted {
        method: String,
        family: &'static str,
    },
    /// The connection allows the operation but the access token's scope does not: the client
    /// can step up by asking for `scope`.
    #[error("the access token's scope does not cover this; it needs {scope:?}")]
    InsufficientScope { scope: String },
    #[error("method {method:?} is not supported")]
    MethodNotFound { method: String, stateless_era: bool },
    #[error("parse error: {0}")]
    ParseError(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("header {header} does not match the request body")]
    HeaderMismatch { header: &'static str },
    /// A stateless-era request without a header that era requires (`Mcp-Method`, or `Mcp-Name`
    /// for a method that names its target): answered like a mismatch, since an upstream that
    /// routes on the header cannot tell the two apart.
    #[error("header {header} is required in this protocol version")]
    HeaderMissing { header: &'static str },
    #[error("unsupported protocol version {version:?}")]
    UnsupportedProtocolVersion { version: String },
    #[error("Mcp-Session-Id header required")]
    SessionRequired,
    #[error("session not found")]
    SessionNotFound,
    /// A task of another principal, or one Gatehouse never saw created (one answer, so ids
    /// cannot be probed).
    #[error("task not found")]
    TaskNotFound,
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("batch of more than {limit} messages")]
    BatchTooLarge { limit: usize },
    /// The body is within its byte limit, but parsing it would take more memory than allowed.
    #[error("request too complex: parsing it would take more than {limit} bytes")]
    RequestTooComplex { limit: usize },
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("HTTP method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("denied by {} policy {:?}: {}", .0.kind.as_str(), .0.rule, .0.message)]
    PolicyDenied(crate::policy::Denial),
    #[error("tool {tool:?} changed its definition and waits for an operator's approval")]
    ToolPendingApproval { tool: String },
    #[error("request blocked by guardrail {rule:?} (detector {detector})")]
    GuardrailBlocked { rule: String, detector: String },
    /// A guardrail refused a body of notifications or answers only (no request to answer).
    #[error("message blocked by guardrail {rule:?} (detector {detector})")]
    GuardrailBlockedAnswer { rule: String, detector: String },
    #[error("upstream unavailable")]
    UpstreamUnavailable,
    /// The server's upstream tokens are per person and the caller acts for none (a client
    /// credential or API key of its own).
    #[error("this server is reached as a person: use a token a person delegated")]
    UpstreamNeedsUser,
    /// The person has not authorized Gatehouse at this upstream yet (or that grant ended):
    /// a URL elicitation leading them through the upstream's OAuth flow (ADR 0006 §5).
    #[error("this server needs your authorization: open {url} to connect your account, then retry")]
    UpstreamConsentRequired {
        url: String,
        elicitation_id: String,
        /// How the request's protocol era asks (set by [`GatewayError::in_era`]).
        answer: ConsentAnswer,
    },
    /// The upstream's authorization server gave no usable token for Gatehouse's call.
    #[error("no token for the upstream could be obtained")]
    UpstreamCredentialUnavailable,
    #[error("upstream timed out")]
    UpstreamTimeout,
    #[error("upstream response too large")]
    UpstreamResponseTooLarge,
    /// Response rules apply but the upstream answered in a type they cannot read.
    #[error("the upstream answered in a content type Gatehouse cannot filter")]
    UpstreamContentUnfilterable,
    /// The upstream compressed its answer although Gatehouse asked for `identity`.
    #[error("the upstream answered with a content encoding Gatehouse cannot read")]
    UpstreamEncodingUnfilterable,
    /// The server's stored configuration could not be loaded (`crate::snapshot::records`).
    #[error("server unavailable: its configuration could not be loaded")]
    ServerUnavailable,
    /// A policy or guardrail in scope could not be loaded, so it refuses everything it covers.
    #[error("rule {rule:?} could not be loaded; calls it covers are refused until it is fixed")]
    RuleUnavailable { rule: String },
    #[error("the request body did not arrive within the time allowed")]
    RequestBodyTimeout,
    #[error("Gatehouse is busy; try again")]
    Overloaded,
    /// The upstream's body broke off or was malformed before Gatehouse could read it whole.
    #[error("upstream response broken off")]
    UpstreamResponseBroken,
    /// Shutdown's grace period ended before the answer was ready.
    #[error("gatehouse is shutting down")]
    ShuttingDown,
    /// The upstream failed repeatedly: its circuit breaker answers for it until `retry_after`
    /// (`upstream/breaker.rs`).
    #[error("upstream unavailable: it failed repeatedly and is not called for now")]
    UpstreamCircuitOpen { retry_after: std::time::Duration },
    /// Shared runtime state (a policy's counter, a session) could not be reached; refused
    /// rather than decided without it.
    #[error("shared state unavailable; try again")]
    StateUnavailable,
    /// The audit trail cannot take the request's event (its database is failing in durable
    /// mode, or the queue stayed full for `audit.queue_wait`): refused before forwarding
    /// rather than answered unrecorded.
    #[error("the audit trail is unavailable; try again")]
    AuditUnavailable,
    /// A stdio server's program exited before answering (ADR 0006 §2); it is restarted.
    #[error("the upstream server process exited before answering; it is being restarted")]
    UpstreamCrashed,
    /// A `per_principal` stdio server runs `max_children` children already, none of them the
    /// caller's; a busy child is never evicted for a new one.
    #[error("the upstream runs as many per-principal processes as it may; try again later")]
    UpstreamChildrenExhausted,
    /// A JSON-RPC batch to a stdio server: its child is spoken to one message at a time.
    #[error("this server does not accept JSON-RPC batches; send the messages one by one")]
    BatchUnsupported,
    /// A `GET` with a `Last-Event-ID` that names no stream Gatehouse keeps for the session
    /// (expired, dropped, another session's), or one whose events after it were dropped.
    #[error("the stream named by Last-Event-ID cannot be resumed")]
    StreamNotResumable,
    /// A virtual server's tool, prompt or resource that none of its members serves under
    /// that name (ADR 0006 §4).
    #[error("no member of this virtual server has {kind} {name:?}")]
    VirtualTargetUnknown { kind: &'static str, name: String },
}

impl From<crate::policy::Denial> for GatewayError {
    fn from(denial: crate::policy::Denial) -> Self {
        if denial.unloadable {
            GatewayError::RuleUnavailable {
                rule: denial.rule.to_string(),
            }
        } else if denial.unavailable {
            GatewayError::StateUnavailable
        } else {
            GatewayError::PolicyDenied(denial)
        }
    }
}

impl From<gatehouse_model::jsonrpc::EnvelopeError> for GatewayError {
    fn from(refused: gatehouse_model::jsonrpc::EnvelopeError) -> Self {
        use gatehouse_model::jsonrpc::EnvelopeError as E;
        match refused {
            E::ParseError(text) => GatewayError::ParseError(text),
            E::InvalidRequest(text) => GatewayError::InvalidRequest(text),
            E::BatchTooLarge { limit } => GatewayError::BatchTooLarge { limit },
            E::RequestTooComplex { limit } => GatewayError::RequestTooComplex { limit },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialProblem {
    /// Not a credential Gatehouse issues, or damaged (checksum).
    Malformed,
    /// Unknown, revoked, or of a disabled client: deliberately one answer.
    NotRecognised,
    Expired,
    /// Sent in the query string, where it leaks into logs.
    InQueryString,
    /// `Authorization` and `X-API-Key` both present with different values.
    Conflicting,
}

impl std::fmt::Display for CredentialProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CredentialProblem::Malformed => "not a valid Gatehouse credential",
            CredentialProblem::NotRecognised => "credential not recognised",
            CredentialProblem::Expired => "credential expired",
            CredentialProblem::InQueryString => "credentials are not accepted in the query string",
            CredentialProblem::Conflicting => "two different credentials were sent",
        })
    }
}

/// What the edge needs besides the error itself.
#[derive(Debug, Default)]
pub struct ErrorContext<'a> {
    /// The JSON-RPC id of the refused request, echoed in the error body.
    pub rpc_id: Option<&'a Value>,
    pub server: Option<&'a str>,
    /// Protected Resource Metadata URL for `WWW-Authenticate`.
    pub resource_metadata: Option<&'a str>,
}

impl GatewayError {
    /// What the audit trail records as the reason: the code, and for policies the rule too
    /// (`rate_limit:analysts`).
    pub fn audit_reason(&self) -> String {
        match self {
            GatewayError::PolicyDenied(d) => format!("{}:{}", d.kind.as_str(), d.rule),
            GatewayError::GuardrailBlocked { rule, detector }
            | GatewayError::GuardrailBlockedAnswer { rule, detector } => {
                format!("guardrail:{rule}:{detector}:block")
            }
            GatewayError::RuleUnavailable { rule } => format!("rule_unavailable:{rule}"),
            other => other.reason().to_owned(),
        }
    }

    /// Stable machine-readable code: error `data.reason`, metrics label.
    pub fn reason(&self) -> &'static str {
        match self {
            GatewayError::PolicyDenied(d) if d.kind.is_throttle() => "rate_limited",
            GatewayError::PolicyDenied(_) => "policy_denied",
            GatewayError::GuardrailBlocked { .. } => "guardrail_blocked",
            GatewayError::GuardrailBlockedAnswer { .. } => "guardrail_blocked",
            GatewayError::ToolPendingApproval { .. } => "tool_pending_approval",
            GatewayError::UnknownServer => "unknown_server",
            GatewayError::HostNotAllowed => "host_not_allowed",
            GatewayError::OriginNotAllowed => "origin_not_allowed",
            GatewayError::InvalidHostHeader(_) => "invalid_host_header",
            GatewayError::MissingCredential => "missing_credential",
            GatewayError::InvalidCredential(CredentialProblem::Expired) => "expired_credential",
            GatewayError::InvalidCredential(_) => "invalid_credential",
            GatewayError::InvalidDpopProof { .. } => "invalid_dpop_proof",
            GatewayError::DpopProofRequired => "dpop_proof_required",
            GatewayError::UseDpopNonce { .. } => "use_dpop_nonce",
            GatewayError::NoConnection => "no_connection",
            GatewayError::ToolNotGranted { .. } => "tool_not_granted",
            GatewayError::FamilyNotGranted { .. } => "method_not_granted",
            GatewayError::InsufficientScope { .. } => "insufficient_scope",
            GatewayError::MethodNotFound { .. } => "unknown_method",
            GatewayError::ParseError(_) => "parse_error",
            GatewayError::InvalidRequest(_) => "invalid_request",
            GatewayError::HeaderMismatch { .. } => "header_mismatch",
            GatewayError::HeaderMissing { .. } => "header_missing",
            GatewayError::UnsupportedProtocolVersion { .. } => "unsupported_protocol_version",
            GatewayError::SessionRequired => "session_required",
            GatewayError::SessionNotFound => "session_not_found",
            GatewayError::TaskNotFound => "task_not_found",
            GatewayError::PayloadTooLarge { .. } => "payload_too_large",
            GatewayError::BatchTooLarge { .. } => "batch_too_large",
            GatewayError::RequestTooComplex { .. } => "request_too_complex",
            GatewayError::UnsupportedMediaType => "unsupported_media_type",
            GatewayError::MethodNotAllowed { .. } => "http_method_not_allowed",
            GatewayError::UpstreamUnavailable => "upstream_unavailable",
            GatewayError::UpstreamCredentialUnavailable => "upstream_credential_unavailable",
            GatewayError::UpstreamNeedsUser => "upstream_needs_user",
            GatewayError::UpstreamConsentRequired { .. } => "upstream_consent_required",
            GatewayError::UpstreamTimeout => "upstream_timeout",
            GatewayError::UpstreamResponseTooLarge => "upstream_response_too_large",
            GatewayError::UpstreamContentUnfilterable => "upstream_content_unfilterable",
            GatewayError::UpstreamEncodingUnfilterable => "upstream_encoding_unfilterable",
            GatewayError::ServerUnavailable => "server_unavailable",
            GatewayError::RuleUnavailable { .. } => "rule_unavailable",
            GatewayError::RequestBodyTimeout => "request_body_timeout",
            GatewayError::Overloaded => "overloaded",
            GatewayError::UpstreamResponseBroken => "upstream_response_broken",
            GatewayError::ShuttingDown => "shutting_down",
            GatewayError::UpstreamCircuitOpen { .. } => "upstream_circuit_open",
            GatewayError::StateUnavailable => "state_unavailable",
            GatewayError::AuditUnavailable => "audit_unavailable",
            GatewayError::UpstreamCrashed => "upstream_crashed",
            GatewayError::UpstreamChildrenExhausted => "upstream_children_exhausted",
            GatewayError::BatchUnsupported => "batch_unsupported",
            GatewayError::StreamNotResumable => "stream_not_resumable",
            GatewayError::VirtualTargetUnknown { .. } => "virtual_target_unknown",
        }
    }

    /// The refusal as the request's protocol era asks for it (a URL elicitation differs);
    /// `method` is the request's when the body holds one request.
    pub fn in_era(self, stateless: bool, method: Option<&str>) -> Self {
        match self {
            GatewayError::UpstreamConsentRequired {
                url,
                elicitation_id,
                ..
            } => GatewayError::UpstreamConsentRequired {
                url,
                elicitation_id,
                answer: match (stateless, method) {
                    (false, _) => ConsentAnswer::UrlElicitationError,
                    (true, Some("tools/call" | "prompts/get" | "resources/read")) => {
                        ConsentAnswer::InputRequired
                    }
                    (true, _) => ConsentAnswer::Refused,
                },
            },
            other => other,
        }
    }

    /// Whether the upstream failed (an `error` decision) rather than Gatehouse refusing.
    pub fn is_upstream_failure(&self) -> bool {
        matches!(
            self,
            GatewayError::UpstreamUnavailable
                | GatewayError::UpstreamCredentialUnavailable
                | GatewayError::UpstreamTimeout
                | GatewayError::UpstreamResponseTooLarge
                | GatewayError::UpstreamContentUnfilterable
                | GatewayError::UpstreamEncodingUnfilterable
                | GatewayError::UpstreamResponseBroken
                | GatewayError::UpstreamCircuitOpen { .. }
                | GatewayError::UpstreamCrashed
                | GatewayError::UpstreamChildrenExhausted
        )
    }

    pub fn into_response(self, ctx: &ErrorContext<'_>) -> Response {
        use GatewayError as E;
        let server = ctx.server.unwrap_or("");
        let rm = ctx.resource_metadata.unwrap_or("");
        let mut data = json!({ "reason": self.reason() });
        let mut www_authenticate = None;
        let mut allow = None;
        let mut retry_after = None;
        let mut connection_close = false;
        let mut dpop_nonce: Option<String> = None;
        let (status, code) = match &self {
            E::UnknownServer => (StatusCode::NOT_FOUND, codes::NOT_FOUND),
            E::HostNotAllowed | E::OriginNotAllowed => (StatusCode::FORBIDDEN, codes::FORBIDDEN),
            E::InvalidHostHeader(_) => (StatusCode::BAD_REQUEST, codes::INVALID_REQUEST),
            E::MissingCredential => {
                www_authenticate = Some(format!(
                    "Bearer resource_metadata=\"{rm}\", scope=\"mcp:{server}\""
                ));
                (StatusCode::UNAUTHORIZED, codes::UNAUTHENTICATED)
            }
            E::InvalidCredential(_) => {
                www_authenticate = Some(format!(
                    "Bearer error=\"invalid_token\", resource_metadata=\"{rm}\", scope=\"mcp:{server}\""
                ));
                (StatusCode::UNAUTHORIZED, codes::UNAUTHENTICATED)
            }
            E::InvalidDpopProof { problem } => {
                // Problems are Gatehouse's fixed descriptions, never proof contents.
                www_authenticate = Some(crate::tokens::dpop::challenge(
                    "invalid_dpop_proof",
                    problem,
                ));
                (StatusCode::UNAUTHORIZED, codes::UNAUTHENTICATED)
            }
            E::DpopProofRequired => {
                www_authenticate = Some(crate::tokens::dpop::challenge(
                    "invalid_token",
                    "the token is DPoP-bound",
                ));
                (StatusCode::UNAUTHORIZED, codes::UNAUTHENTICATED)
            }
            E::UseDpopNonce { nonce } => {
                www_authenticate = Some(crate::tokens::dpop::challenge(
                    "use_dpop_nonce",
                    "send the proof again with the nonce in DPoP-Nonce",
                ));
                dpop_nonce = Some(nonce.clone());
                (StatusCode::UNAUTHORIZED, codes::UNAUTHENTICATED)
            }
            // Refusals by the connection are not `insufficient_scope`: no token the client
            // could ask for would change them, and a challenge would send OAuth clients on a
            // re-authorization that must fail (RFC 6750 §3.1 ties that error to the token).
            E::NoConnection => (StatusCode::FORBIDDEN, codes::FORBIDDEN),
            E::ToolNotGranted { tool } => {
                data["tool"] = json!(tool);
                (StatusCode::FORBIDDEN, codes::FORBIDDEN)
            }
            E::FamilyNotGranted { method, family } => {
                data["method"] = json!(method);
                data["family"] = json!(family);
                (StatusCode::FORBIDDEN, codes::FORBIDDEN)
            }
            E::InsufficientScope { scope } => {
                data["scope"] = json!(scope);
                // Scopes are built by Gatehouse from validated names, so they are header-safe.
                www_authenticate = Some(format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{rm}\""
                ));
                (StatusCode::FORBIDDEN, codes::FORBIDDEN)
            }
            E::MethodNotFound {
                method,
                stateless_era,
            } => {
                data["method"] = json!(method);
                // A legacy client reads HTTP 404 as "session expired", so only the stateless
                // era, which defines 404 for unknown methods, gets it.
                let status = if *stateless_era {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::OK
                };
                (status, codes::METHOD_NOT_FOUND)
            }
            E::ParseError(_) => (StatusCode::BAD_REQUEST, codes::PARSE_ERROR),
            E::InvalidRequest(_) | E::SessionRequired => {
                (StatusCode::BAD_REQUEST, codes::INVALID_REQUEST)
            }
            E::HeaderMismatch { header } => {
                data["header"] = json!(header);
                (StatusCode::BAD_REQUEST, codes::HEADER_MISMATCH)
            }
            E::HeaderMissing { header } => {
                data["header"] = json!(header);
                (StatusCode::BAD_REQUEST, codes::HEADER_MISMATCH)
            }
            E::UnsupportedProtocolVersion { version } => {
                data["supported"] = json!(SUPPORTED_PROTOCOL_VERSIONS);
                data["requested"] = json!(version);
                (StatusCode::BAD_REQUEST, codes::UNSUPPORTED_PROTOCOL_VERSION)
            }
            E::SessionNotFound => (StatusCode::NOT_FOUND, codes::NOT_FOUND),
            // What the tasks specification answers for an unknown task id: an answer to the
            // JSON-RPC request (HTTP 404 would read as "session expired" to a legacy client).
            E::TaskNotFound => (StatusCode::OK, codes::INVALID_PARAMS),
            E::PayloadTooLarge { limit } => {
                data["limit_bytes"] = json!(limit);
                (StatusCode::PAYLOAD_TOO_LARGE, codes::PAYLOAD_TOO_LARGE)
            }
            E::BatchTooLarge { limit } => {
                data["limit_messages"] = json!(limit);
                (StatusCode::PAYLOAD_TOO_LARGE, codes::PAYLOAD_TOO_LARGE)
            }
            E::RequestTooComplex { limit } => {
                data["limit_bytes"] = json!(limit);
                (StatusCode::PAYLOAD_TOO_LARGE, codes::PAYLOAD_TOO_LARGE)
            }
            E::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, codes::INVALID_REQUEST),
            E::MethodNotAllowed { allow: methods } => {
                allow = Some(*methods);
                (StatusCode::METHOD_NOT_ALLOWED, codes::INVALID_REQUEST)
            }
            E::PolicyDenied(denial) => {
                data["policy"] = json!({ "kind": denial.kind.as_str(), "rule": &*denial.rule });
                if let Some(wait) = denial.retry_after {
                    // Whole seconds, rounded up: never invite a retry that would be refused.
                    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                    data["retry_after"] = json!(secs);
                    retry_after = Some(secs);
                }
                if denial.kind.is_throttle() {
                    (StatusCode::TOO_MANY_REQUESTS, codes::RATE_LIMITED)
                } else {
                    (StatusCode::FORBIDDEN, codes::FORBIDDEN)
                }
            }
            E::ToolPendingApproval { tool } => {
                data["tool"] = json!(tool);
                (StatusCode::FORBIDDEN, codes::FORBIDDEN)
            }
            E::GuardrailBlocked { rule, detector } => {
                data["guardrail"] =
                    json!({ "rule": rule, "detector": detector, "direction": "request" });
                // A content refusal is an answer to the JSON-RPC request, not an HTTP failure.
                (StatusCode::OK, codes::FORBIDDEN)
            }
            E::GuardrailBlockedAnswer { rule, detector } => {
                data["guardrail"] =
                    json!({ "rule": rule, "detector": detector, "direction": "request" });
                // Notifications and answers get no JSON-RPC response: the status refuses them.
                (StatusCode::FORBIDDEN, codes::FORBIDDEN)
            }
            E::UpstreamUnavailable | E::UpstreamResponseTooLarge => {
                (StatusCode::BAD_GATEWAY, codes::UPSTREAM_UNAVAILABLE)
            }
            E::UpstreamCredentialUnavailable => {
                (StatusCode::BAD_GATEWAY, codes::UPSTREAM_UNAVAILABLE)
            }
            E::UpstreamNeedsUser => (StatusCode::FORBIDDEN, codes::FORBIDDEN),
            E::UpstreamConsentRequired {
                url,
                elicitation_id,
                answer,
            } => {
                let elicitation = json!({
                    "mode": "url",
                    "elicitationId": elicitation_id,
                    "url": url,
                    "message": "Connect your account at this server to Gatehouse, then retry.",
                });
                if *answer == ConsentAnswer::InputRequired && ctx.rpc_id.is_some() {
                    return consent_input_required(ctx, elicitation_id, elicitation);
                }
                data["elicitations"] = json!([elicitation]);
                if *answer == ConsentAnswer::Refused || ctx.rpc_id.is_none() {
                    // No request that can carry the question (a stream, a notification, or a
                    // 2026-07-28 method without input_required): refused, the link in `data`.
                    (StatusCode::FORBIDDEN, codes::FORBIDDEN)
                } else {
                    // An answer to the JSON-RPC request, so clients read the elicitation.
                    (StatusCode::OK, codes::URL_ELICITATION_REQUIRED)
                }
            }
            E::UpstreamContentUnfilterable | E::UpstreamEncodingUnfilterable => {
                (StatusCode::BAD_GATEWAY, codes::UPSTREAM_UNAVAILABLE)
            }
            E::UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, codes::UPSTREAM_TIMEOUT),
            // Gatehouse's own configuration is at fault, not the caller: "try later", like an
            // unreachable upstream, until an operator fixes the record.
            E::ServerUnavailable => (StatusCode::SERVICE_UNAVAILABLE, codes::UPSTREAM_UNAVAILABLE),
            E::RuleUnavailable { rule } => {
                data["rule"] = json!(rule);
                (StatusCode::SERVICE_UNAVAILABLE, codes::UPSTREAM_UNAVAILABLE)
            }
            E::RequestBodyTimeout => {
                connection_close = true;
                (StatusCode::REQUEST_TIMEOUT, codes::INVALID_REQUEST)
            }
            E::Overloaded => {
                retry_after = Some(1);
                (StatusCode::SERVICE_UNAVAILABLE, codes::OVERLOADED)
            }
            E::UpstreamResponseBroken => (StatusCode::BAD_GATEWAY, codes::UPSTREAM_UNAVAILABLE),
            E::UpstreamCrashed => (StatusCode::BAD_GATEWAY, codes::UPSTREAM_UNAVAILABLE),
            E::UpstreamChildrenExhausted => {
                retry_after = Some(1);
                (StatusCode::SERVICE_UNAVAILABLE, codes::UPSTREAM_UNAVAILABLE)
            }
            E::BatchUnsupported => (StatusCode::BAD_REQUEST, codes::INVALID_REQUEST),
            // Not 404: that tells a legacy client its session is gone.
            E::StreamNotResumable => (StatusCode::BAD_REQUEST, codes::INVALID_REQUEST),
            // A JSON-RPC answer about the params, as an MCP server answers an unknown tool.
            E::VirtualTargetUnknown { kind, name } => {
                data[*kind] = json!(name);
                (StatusCode::OK, codes::INVALID_PARAMS)
            }
            E::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, codes::UPSTREAM_UNAVAILABLE),
            E::UpstreamCircuitOpen { retry_after: wait } => {
                // Whole seconds, rounded up, at least 1: a retry sooner would be refused too.
                let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
                data["retry_after"] = json!(secs);
                retry_after = Some(secs);
                (StatusCode::SERVICE_UNAVAILABLE, codes::UPSTREAM_UNAVAILABLE)
            }
            E::StateUnavailable => {
                retry_after = Some(1);
                (StatusCode::SERVICE_UNAVAILABLE, codes::UPSTREAM_UNAVAILABLE)
            }
            E::AuditUnavailable => {
                retry_after = Some(1);
                (StatusCode::SERVICE_UNAVAILABLE, codes::UPSTREAM_UNAVAILABLE)
            }
        };
        let body = json!({
            "jsonrpc": "2.0",
            "id": ctx.rpc_id.cloned().unwrap_or(Value::Null),
            "error": { "code": code, "message": self.to_string(), "data": data },
        });
        let mut response = Response::new(Body::from(body.to_string()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(value) = dpop_nonce.and_then(|v| HeaderValue::try_from(v).ok()) {
            headers.insert("dpop-nonce", value);
        }
        if let Some(value) = www_authenticate.and_then(|v| HeaderValue::try_from(v).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(methods) = allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(methods));
        }
        if connection_close {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// MCP 2026-07-28: a URL elicitation is an `input_required` result the client answers by
/// retrying the request (SEP-2322); the id and `elicitationId` fields are gone from the
/// request, so the key names it.
fn consent_input_required(ctx: &ErrorContext<'_>, key: &str, mut elicitation: Value) -> Response {
    if let Some(fields) = elicitation.as_object_mut() {
        fields.remove("elicitationId");
    }
    let body = json!({
        "jsonrpc": "2.0",
        "id": ctx.rpc_id.cloned().unwrap_or(Value::Null),
        "result": {
            "resultType": "input_required",
            "inputRequests": {
                key: { "method": "elicitation/create", "params": elicitation },
            },
            "_meta": { "io.gatehouse/reason": "upstream_consent_required" },
        },
    });
    let mut response = Response::new(Body::from(body.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
