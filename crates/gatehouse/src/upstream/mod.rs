//! The hop to an MCP server, at the JSON-RPC level: an [`Exchange`] goes out, a [`Reply`]
//! comes back. The request path builds the one and reads the other and never learns which
//! transport carried them; session semantics are data here (`Exchange::session`,
//! `Reply::session`), not header names. Streamable HTTP (`http.rs`)
//! and stdio (`stdio/`, a local program) are the transports; `Transport` dispatches without
//! boxing.
//! `client.rs` is the pooled HTTP client and its TLS setup, shared with the authorization
//! server's outbound fetches.
//!
//! Faithfulness is part of the contract: the bytes sent are the bytes authorised
//! (`Action::Send`), a reply's body is relayed as the upstream wrote it (JSON stays JSON, SSE
//! events keep their bytes), and the head a client must see passes (`Reply::head`).

pub mod breaker;
pub mod client;
pub mod delegated;
mod http;
pub mod registration;
mod route;
pub mod stdio;
pub mod tokens;

pub use http::HttpUpstream;
pub use route::{Route, Upstreams, route};

use ::http::{HeaderMap, HeaderValue, StatusCode};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use crate::error::GatewayError;
use gatehouse_model::jsonrpc::Envelope;

/// The error a relayed body may end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One MCP server as the request path sees it.
pub trait Upstream {
    /// Sends one exchange and resolves once the reply's head is in; its body follows as the
    /// upstream writes it.
    fn send(
        &self,
        exchange: Exchange<'_>,
    ) -> impl Future<Output = Result<Reply, GatewayError>> + Send;
}

/// The transports a route can name. An enum rather than `dyn Upstream`: the hop costs no
/// allocation, and `match` keeps every transport's future on the caller's stack.
pub enum Transport<'a> {
    Http(HttpUpstream<'a>),
    Stdio(stdio::StdioUpstream<'a>),
}

impl Upstream for Transport<'_> {
    async fn send(&self, exchange: Exchange<'_>) -> Result<Reply, GatewayError> {
        match self {
            Transport::Http(http) => http.send(exchange).await,
            Transport::Stdio(stdio) => stdio.send(exchange).await,
        }
    }
}

/// What goes to the upstream.
pub struct Exchange<'a> {
    pub action: Action<'a>,
    /// The session the request runs in, already checked to belong to the caller. `None`
    /// sends no session, whatever the client's request carried.
    pub session: Option<&'a SessionId>,
    /// The client's request headers. A transport that has headers passes those an upstream
    /// may act on (protocol version, `Accept`, `Last-Event-ID`, …) and never the client's
    /// credentials; one that has none ignores them.
    pub headers: &'a HeaderMap,
}

/// What the exchange asks of the upstream.
pub enum Action<'a> {
    /// One message or batch: the bytes that were authorised, with their parse.
    Send {
        bytes: Bytes,
        envelope: &'a Envelope,
    },
    /// Open a stream of the server's own messages (a resumed one, given `Last-Event-ID`).
    Listen,
    /// End the session.
    End,
}

impl Action<'_> {
    /// Whether this is a single `initialize`: the request whose success opens a session.
    pub fn initializes(&self) -> bool {
        matches!(self, Action::Send { envelope, .. }
            if !envelope.batch && envelope.first().is_some_and(|m| m.method() == "initialize"))
    }
}

/// A session id as the upstream issued it. Cloning shares its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionId(HeaderValue);

impl SessionId {
    /// A session id the client sent; `None` when it is not visible ASCII, which no upstream
    /// issues.
    pub fn from_client(value: &HeaderValue) -> Option<Self> {
        value.to_str().ok().map(|_| Self(value.clone()))
    }

    pub fn as_str(&self) -> &str {
        // Checked when made: every constructor keeps only visible ASCII.
        self.0.to_str().unwrap_or_default()
    }

    fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

/// How the reply's body reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// One JSON-RPC message or batch.
    Json,
    /// A stream of server-sent events, each carrying one message (or none: priming).
    Events,
    /// Accepted, nothing to say (a notification or a response the client sent).
    Accepted,
    /// Refused: the head's status says how; a body, if any, in no type rules can read.
    Failed,
    /// A success in a type Gatehouse cannot read.
    Unknown,
}

/// What the reply means for the exchange's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionChange {
    None,
    /// The upstream opened this session (a successful `initialize`).
    Issued(SessionId),
    /// The session the exchange named is over: ended on request, or no longer known.
    Ended,
}

/// What the client is answered with, as the upstream gave it: the status and the headers
/// that pass (connection-level ones already removed).
pub struct ReplyHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

/// What came back.
pub struct Reply {
    pub kind: ReplyKind,
    pub session: SessionChange,
    pub head: ReplyHead,
    /// The body is compressed although Gatehouse asked for it uncompressed: neither rules nor
    /// the audit trail can read it, and relabelling it would corrupt it.
    pub encoded: bool,
    pub body: ReplyBody,
}

/// The whole of a reply's body, for rules that rewrite a JSON reply: at most `max` bytes,
/// within `timeout`.
pub async fn read_whole<B>(body: B, max: usize, timeout: Duration) -> Result<Bytes, GatewayError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let read = Limited::new(body, max).collect();
    match tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| GatewayError::UpstreamTimeout)?
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(GatewayError::UpstreamResponseTooLarge)
        }
        Err(_) => Err(GatewayError::UpstreamResponseBroken),
    }
}

/// A reply's body as it arrives, whatever the transport.
pub enum ReplyBody {
    Http(hyper::body::Incoming),
    /// Built by Gatehouse from a stdio child's messages.
    Channel(stdio::ChannelBody),
}

impl HttpBody for ReplyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ReplyBody::Http(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            ReplyBody::Channel(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReplyBody::Http(body) => body.is_end_stream(),
            ReplyBody::Channel(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReplyBody::Http(body) => body.size_hint(),
            ReplyBody::Channel(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_model::jsonrpc;

    fn send(body: &'static str, run: impl FnOnce(&Action<'_>)) {
        let bytes = Bytes::from_static(body.as_bytes());
        let envelope = jsonrpc::parse(&bytes).unwrap();
        run(&Action::Send {
            bytes: bytes.clone(),
            envelope: &envelope,
        });
    }

    #[test]
    fn only_a_single_initialize_opens_a_session() {
        send(r#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#, |a| {
            assert!(a.initializes())
        });
        send(r#"[{"jsonrpc":"2.0","id":1,"method":"initialize"}]"#, |a| {
            assert!(!a.initializes(), "a batch cannot initialize")
        });
        send(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, |a| {
            assert!(!a.initializes())
        });
        assert!(!Action::Listen.initializes());
        assert!(!Action::End.initializes());
    }

    #[test]
    fn a_session_id_is_visible_ascii_or_nothing() {
        let id = SessionId::from_client(&HeaderValue::from_static("a1-B2_c3")).unwrap();
        assert_eq!(id.as_str(), "a1-B2_c3");
        let opaque = HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap();
        assert!(SessionId::from_client(&opaque).is_none());
    }
}
