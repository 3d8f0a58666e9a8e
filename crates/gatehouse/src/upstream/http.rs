//! Streamable HTTP behind [`Upstream`]: an exchange becomes a POST (a message), GET (a
//! stream) or DELETE (end the session) to the server's URL over the pooled client, and the
//! response's status and headers become a [`Reply`]. Every HTTP name the hop needs is here.

use ::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::Full;

use super::{
    Action, Exchange, Reply, ReplyBody, ReplyHead, ReplyKind, SessionChange, SessionId, Upstream,
};
use crate::{
    error::GatewayError,
    upstream::client::{
        UpstreamClient, ask_for_identity, forward_request_headers, forward_response_headers,
    },
};

/// The Streamable HTTP session header (MCP 2025-03-26 and later, until the stateless era).
const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");

/// One server's HTTP endpoint, borrowed for one call: the snapshot's URL and credential, the
/// process's connection pool.
pub struct HttpUpstream<'a> {
    pub client: &'a UpstreamClient,
    pub uri: &'a Uri,
    /// Injected into every request; the client's own credentials are never forwarded.
    pub credential: Option<&'a (HeaderName, HeaderValue)>,
    /// This caller's headers: an upstream token, the identity assertion. Set last, so no
    /// forwarded header can stand in for them.
    pub injected: &'a [(HeaderName, HeaderValue)],
}

impl Upstream for HttpUpstream<'_> {
    async fn send(&self, exchange: Exchange<'_>) -> Result<Reply, GatewayError> {
        let Exchange {
            action,
            session,
            headers: incoming,
        } = exchange;
        let asked = Asked {
            session: session.is_some(),
            initializes: action.initializes(),
            ends: matches!(action, Action::End),
        };
        // The bytes move into the request: the authorised body is never copied.
        let (method, body) = match action {
            Action::Send { bytes, .. } => (Method::POST, Full::new(bytes)),
            Action::Listen => (Method::GET, Full::default()),
            Action::End => (Method::DELETE, Full::default()),
        };
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        *headers = forward_request_headers(incoming);
        // The session travels as data: only the one the request path checked goes out.
        headers.remove(SESSION_HEADER);
        if let Some(session) = session {
            headers.insert(SESSION_HEADER, session.header_value().clone());
        }
        ask_for_identity(headers);
        if let Some((name, value)) = self.credential {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in self.injected {
            headers.insert(name.clone(), value.clone());
        }
        let response = self.client.send(request).await?;
        let (parts, body) = response.into_parts();
        Ok(Reply {
            kind: kind_of(parts.status, &parts.headers),
            session: session_change(&asked, parts.status, &parts.headers),
            encoded: !is_identity_encoded(&parts.headers),
            head: ReplyHead {
                status: parts.status,
                headers: forward_response_headers(&parts.headers, false),
            },
            body: ReplyBody::Http(body),
        })
    }
}

/// What the exchange asked that decides what the reply means for its session.
struct Asked {
    session: bool,
    initializes: bool,
    ends: bool,
}

/// The body's kind, by its media type first: a JSON-RPC error answered with a 4xx status is
/// still JSON a client reads.
fn kind_of(status: StatusCode, headers: &HeaderMap) -> ReplyKind {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if media_type_is(content_type, "text/event-stream") {
        ReplyKind::Events
    } else if media_type_is(content_type, "application/json") {
        ReplyKind::Json
    } else if status == StatusCode::ACCEPTED {
        ReplyKind::Accepted
    } else if status.is_success() {
        ReplyKind::Unknown
    } else {
        ReplyKind::Failed
    }
}

/// A session is issued by the `Mcp-Session-Id` of a successful `initialize`; it is over when
/// a DELETE succeeds, or when the upstream answers 404 to a request that named it (MCP:
/// "the server MUST respond to requests containing that session ID with HTTP 404").
fn session_change(asked: &Asked, status: StatusCode, headers: &HeaderMap) -> SessionChange {
    if asked.session && (status == StatusCode::NOT_FOUND || (status.is_success() && asked.ends)) {
        return SessionChange::Ended;
    }
    if status.is_success()
        && asked.initializes
        && let Some(id) = headers.get(SESSION_HEADER).and_then(SessionId::from_client)
    {
        return SessionChange::Issued(id);
    }
    SessionChange::None
}

/// Whether the upstream sent its body as is: no `Content-Encoding`, or only `identity`.
fn is_identity_encoded(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .all(|value| {
            value.to_str().is_ok_and(|codings| {
                codings.split(',').all(|coding| {
                    let coding = coding.trim();
                    coding.is_empty() || coding.eq_ignore_ascii_case("identity")
                })
            })
        })
}

/// A media-type check without lowercasing a copy of the header.
fn media_type_is(content_type: &str, prefix: &str) -> bool {
    content_type
        .as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
