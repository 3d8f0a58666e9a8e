//! A stdio server behind [`Upstream`] (ADR 0006 §1–2): the exchange goes to the child that
//! serves the caller, and the [`Reply`] is built by Gatehouse from what the child writes. Its
//! head resolves at the first message for the request: the response itself → `Json`; a
//! server request or a notification first → `Events`, one SSE event per message, the response
//! last. The rest of the request path reads it as it reads an HTTP upstream's.
//!
//! The child has one MCP client, Gatehouse, which initialised it; a client's `initialize` is
//! answered with the child's `InitializeResult`, and a legacy-era session is minted here. The
//! session id carries the client capabilities the client declared (sampling, elicitation,
//! roots), so the child's requests reach only a client that can answer them, on any replica;
//! the session map binds the id to its owner as for an HTTP upstream, so it cannot be forged.

use ::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use serde_json::{Value, json};
use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};
use tokio::sync::mpsc;

use super::{
    modern,
    pool::{ChildRefused, StdioChildren},
    resumable::{self, EventBytes},
    supervisor::{FromChild, StdioError, Supervisor},
};
use crate::{
    error::GatewayError,
    snapshot::stdio::StdioLaunch,
    state::{
        Owner,
        event_streams::{EventStreams, StreamKey},
    },
    upstream::{
        Action, BoxError, Exchange, Reply, ReplyBody, ReplyHead, ReplyKind, SessionChange,
        SessionId, Upstream,
    },
};
use gatehouse_model::jsonrpc::Kind;

const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
/// Where a 2026-07-28 request names the client's capabilities.
const CAPABILITIES_META: &str = "io.modelcontextprotocol/clientCapabilities";
/// The client capabilities a child's request may need, and their letters in a session id.
const ROUTED: [(&str, char); 3] = [("sampling", 's'), ("elicitation", 'e'), ("roots", 'r')];
/// The letter of a session whose streams resume (SEP-1699, `resumable.rs`).
const RESUMABLE: char = 'p';

/// How long a call waits.
#[derive(Debug, Clone, Copy)]
pub struct StdioTimeouts {
    /// For the child to start and answer Gatehouse's `initialize`.
    pub start: Duration,
    /// For the first message of a request's answer (the head of the reply).
    pub head: Duration,
    /// In a session that resumes, how long a POST stream waits for its answer before
    /// Gatehouse closes it and the client resumes with `GET` (`None`: it stays open).
    pub poll_after: Option<Duration>,
    /// The `retry` hint of a priming event: how long a client waits before resuming.
    pub retry: Duration,
}

/// One stdio server, borrowed for one call.
pub struct StdioUpstream<'a> {
    pub children: &'a dyn StdioChildren,
    pub server: &'a str,
    pub launch: &'a Arc<StdioLaunch>,
    pub owner: Owner<'a>,
    pub timeouts: StdioTimeouts,
    /// Where the events of resumable streams are kept.
    pub streams: &'a Arc<dyn EventStreams>,
}

impl Upstream for StdioUpstream<'_> {
    async fn send(&self, exchange: Exchange<'_>) -> Result<Reply, GatewayError> {
        match exchange.action {
            // The session is Gatehouse's: ending it needs no program (and starts none), but
            // a running one drops the session's subscriptions.
            Action::End => {
                if let (Some(session), Some(child)) = (
                    exchange.session,
                    self.children.running_child(self.server, self.owner),
                ) {
                    child.end_session(session.as_str()).await;
                }
                Ok(reply(
                    ReplyKind::Accepted,
                    StatusCode::OK,
                    None,
                    ChannelBody::empty(),
                )
                .with_session(SessionChange::Ended))
            }
            Action::Listen => {
                if let Some(last) = resumable::last_event(exchange.headers) {
                    return self.resume(exchange.session, last);
                }
                let child = self.ready_child().await?;
                let messages = child.listen_in(exchange.session.map(SessionId::as_str));
                Ok(reply(
                    ReplyKind::Events,
                    StatusCode::OK,
                    Some("text/event-stream"),
                    ChannelBody::events(None, messages, None),
                ))
            }
            Action::Send { bytes, envelope } => {
                if envelope.batch {
                    return Err(GatewayError::BatchUnsupported);
                }
                let first = envelope.first().ok_or(GatewayError::BatchUnsupported)?;
                let message: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| GatewayError::InvalidRequest(e.to_string()))?;
                let modern = modern::is_modern(exchange.headers, &message);
                if modern && first.kind == Kind::Request && first.method() == "initialize" {
                    let body = modern::initialize_removed(&message);
                    return Ok(reply(
                        ReplyKind::Json,
                        StatusCode::NOT_FOUND,
                        Some("application/json"),
                        ChannelBody::whole(body.to_string().into()),
                    ));
                }
                let child = self.ready_child().await?;
                match first.kind {
                    Kind::Request if first.method() == "initialize" => {
                        self.initialize(&child, &message)
                    }
                    Kind::Request => {
                        if let Some(answered) = subscription(&child, exchange.session, &message) {
                            return Ok(answered);
                        }
                        let capabilities = declared(exchange.session, &message);
                        let stream = exchange
                            .session
                            .filter(|s| resumes(s) && resumable::accepts_events(exchange.headers))
                            .and_then(|s| {
                                let tools = resumable::tools_of(&message);
                                self.streams.open(self.server, s.as_str(), tools)
                            });
                        match stream {
                            Some(key) => self.call_resumable(&child, message, &capabilities, key),
                            None => {
                                // A modern client that accepts SSE gets it, as from an HTTP
                                // server that streams every answer; errors keep their status.
                                let events = modern && resumable::accepts_events(exchange.headers);
                                self.call(&child, message, &capabilities, modern, events)
                                    .await
                            }
                        }
                    }
                    Kind::Notification | Kind::Response => {
                        if first.method() != "notifications/initialized" {
                            // Not the caller's to know whether it matched one of its requests.
                            let _ = child.answer(&self.tag(), message);
                        }
                        Ok(reply(
                            ReplyKind::Accepted,
                            StatusCode::ACCEPTED,
                            None,
                            ChannelBody::empty(),
                        ))
                    }
                }
            }
        }
    }
}

impl StdioUpstream<'_> {
    /// The caller's child, started if need be, once it has answered Gatehouse's `initialize`.
    async fn ready_child(&self) -> Result<Supervisor, GatewayError> {
        let child = self
            .children
            .child(self.server, self.launch, self.owner)
            .map_err(|refused| match refused {
                ChildRefused::CommandNotAllowed(command) => {
                    tracing::error!(server = %self.server, %command,
                        "stdio server refused: its command is not in gateway.stdio_commands");
                    GatewayError::ServerUnavailable
                }
                ChildRefused::Full(_) => GatewayError::UpstreamChildrenExhausted,
            })?;
        child
            .wait_ready(self.timeouts.start)
            .await
            .map_err(|_| GatewayError::UpstreamUnavailable)?;
        Ok(child)
    }

    /// The principal's key among the child's callers.
    fn tag(&self) -> String {
        format!(
            "{}\u{0}{}",
            self.owner.client.unwrap_or(""),
            self.owner.subject.unwrap_or("")
        )
    }

    /// Answers a client's `initialize` with the child's own result and a session of
    /// Gatehouse's, which remembers what the client can answer.
    fn initialize(&self, child: &Supervisor, message: &Value) -> Result<Reply, GatewayError> {
        let result = child
            .initialize_result()
            .ok_or(GatewayError::UpstreamUnavailable)?;
        let declared = message
            .pointer("/params/capabilities")
            .and_then(Value::as_object);
        let mut session = crate::secrets::random_id(16).map_err(|_| GatewayError::Overloaded)?;
        session.push('.');
        for (capability, letter) in ROUTED {
            if declared.is_some_and(|d| d.contains_key(capability)) {
                session.push(letter);
            }
        }
        if resumable::resumable_versions(
            message
                .pointer("/params/protocolVersion")
                .and_then(Value::as_str),
            result.get("protocolVersion").and_then(Value::as_str),
        ) {
            session.push(RESUMABLE);
        }
        let id = SessionId::from_client(
            &HeaderValue::try_from(session).map_err(|_| GatewayError::Overloaded)?,
        )
        .ok_or(GatewayError::Overloaded)?;
        let body = json!({"jsonrpc": "2.0", "id": message.get("id"), "result": result});
        let mut answer = reply(
            ReplyKind::Json,
            StatusCode::OK,
            Some("application/json"),
            ChannelBody::whole(body.to_string().into()),
        );
        answer
            .head
            .headers
            .insert(SESSION_HEADER, id.header_value().clone());
        Ok(answer.with_session(SessionChange::Issued(id)))
    }

    /// A request in a session that resumes: its messages go to a kept stream (written by a
    /// pump task of their own), and the answer is a reader of it, which opens with a priming
    /// event and closes after `poll_after` without the response.
    fn call_resumable(
        &self,
        child: &Supervisor,
        message: Value,
        capabilities: &[&str],
        key: StreamKey,
    ) -> Result<Reply, GatewayError> {
        let call = child
            .request_as(&self.tag(), message, capabilities)
            .map_err(|err| match err {
                StdioError::Unavailable => GatewayError::UpstreamUnavailable,
                StdioError::Refused(why) => GatewayError::InvalidRequest(why.to_string()),
            })?;
        let forget = Forget {
            child: child.clone(),
            key: call.key,
        };
        let following = self
            .streams
            .attach(&key, 0)
            .map_err(|_| GatewayError::Overloaded)?;
        tokio::spawn(resumable::pump(
            self.streams.clone(),
            key.clone(),
            call.messages,
            forget,
        ));
        let first = resumable::priming(&key.stream, self.timeouts.retry);
        let close_at = self
            .timeouts
            .poll_after
            .map(|after| tokio::time::Instant::now() + after);
        let events = resumable::reader(
            self.streams.clone(),
            key,
            Some(first),
            (0, following),
            close_at,
        );
        Ok(reply(
            ReplyKind::Events,
            StatusCode::OK,
            Some("text/event-stream"),
            ChannelBody::kept(events),
        ))
    }

    /// A `GET` with `Last-Event-ID`: the events of a kept stream after that one, then the
    /// rest as they come. Needs no program: the stream outlives a restarted child.
    fn resume(
        &self,
        session: Option<&SessionId>,
        last: Option<(String, u64)>,
    ) -> Result<Reply, GatewayError> {
        let (Some(session), Some((stream, after))) = (session, last) else {
            return Err(GatewayError::StreamNotResumable);
        };
        let key = StreamKey {
            server: self.server.into(),
            session: session.as_str().into(),
            stream: stream.into(),
        };
        let following = self
            .streams
            .attach(&key, after)
            .map_err(|_| GatewayError::StreamNotResumable)?;
        let events = resumable::reader(self.streams.clone(), key, None, (after, following), None);
        Ok(reply(
            ReplyKind::Events,
            StatusCode::OK,
            Some("text/event-stream"),
            ChannelBody::kept(events),
        ))
    }

    async fn call(
        &self,
        child: &Supervisor,
        message: Value,
        capabilities: &[&str],
        modern: bool,
        events: bool,
    ) -> Result<Reply, GatewayError> {
        let meta_incomplete = modern && modern::meta_incomplete(&message);
        // Kept only for a modern `server/discover`, which a program may not know.
        let discover = (modern
            && message.get("method").and_then(Value::as_str) == Some("server/discover"))
        .then(|| message.clone());
        let status_of = |response: &Value| {
            if modern {
                modern::status(meta_incomplete, response)
            } else {
                StatusCode::OK
            }
        };
        let mut call = child
            .request_as(&self.tag(), message, capabilities)
            .map_err(|err| match err {
                StdioError::Unavailable => GatewayError::UpstreamUnavailable,
                StdioError::Refused(why) => GatewayError::InvalidRequest(why.to_string()),
            })?;
        let guard = Forget {
            child: child.clone(),
            key: call.key,
        };
        let first = tokio::time::timeout(self.timeouts.head, call.messages.recv())
            .await
            .map_err(|_| GatewayError::UpstreamTimeout)?;
        let first = match (first, &discover) {
            (Some(FromChild::Message(answer)), Some(request))
                if modern::discover_unknown(request, &answer) =>
            {
                let initialized = child
                    .initialize_result()
                    .ok_or(GatewayError::UpstreamUnavailable)?;
                Some(FromChild::Message(modern::discover_result(
                    request.get("id"),
                    &initialized,
                )))
            }
            (first, _) => first,
        };
        match first {
            None => Err(GatewayError::UpstreamResponseBroken),
            Some(FromChild::Crashed(_)) => Err(GatewayError::UpstreamCrashed),
            Some(FromChild::Message(message))
                if is_response(&message) && !(events && status_of(&message) == StatusCode::OK) =>
            {
                Ok(reply(
                    ReplyKind::Json,
                    status_of(&message),
                    Some("application/json"),
                    ChannelBody::whole(message.to_string().into()),
                ))
            }
            Some(FromChild::Message(message)) => Ok(reply(
                ReplyKind::Events,
                StatusCode::OK,
                Some("text/event-stream"),
                ChannelBody::events(Some(message), call.messages, Some(guard)),
            )),
        }
    }
}

/// Keeps a legacy session's resource subscriptions: the child is subscribed once per URI and
/// unsubscribed when no session wants it any more; a subscription it already has, or an
/// unsubscription others still need, is answered here (`None`: the child is to be asked).
fn subscription(child: &Supervisor, session: Option<&SessionId>, message: &Value) -> Option<Reply> {
    let session = session?.as_str();
    let uri = message.pointer("/params/uri").and_then(Value::as_str)?;
    let ask_child = match message.get("method").and_then(Value::as_str)? {
        "resources/subscribe" => child.subscribe(session, uri),
        "resources/unsubscribe" => child.unsubscribe(session, uri),
        _ => return None,
    };
    if ask_child {
        return None;
    }
    let body = json!({"jsonrpc": "2.0", "id": message.get("id"), "result": {}});
    Some(reply(
        ReplyKind::Json,
        StatusCode::OK,
        Some("application/json"),
        ChannelBody::whole(body.to_string().into()),
    ))
}

/// The client capabilities the caller declared: in its session id (legacy era) or in the
/// request's `_meta` (2026-07-28).
fn declared(session: Option<&SessionId>, message: &Value) -> Vec<&'static str> {
    if let Some(session) = session {
        let letters = session.as_str().rsplit_once('.').map_or("", |(_, l)| l);
        return ROUTED
            .iter()
            .filter(|(_, letter)| letters.contains(*letter))
            .map(|(name, _)| *name)
            .collect();
    }
    let meta = message
        .pointer("/params/_meta")
        .and_then(|m| m.get(CAPABILITIES_META))
        .and_then(Value::as_object);
    ROUTED
        .iter()
        .filter(|(name, _)| meta.is_some_and(|m| m.contains_key(*name)))
        .map(|(name, _)| *name)
        .collect()
}

/// Whether the session's streams resume (its id carries the letter).
fn resumes(session: &SessionId) -> bool {
    session
        .as_str()
        .rsplit_once('.')
        .is_some_and(|(_, letters)| letters.contains(RESUMABLE))
}

fn is_response(message: &Value) -> bool {
    message.get("method").is_none() && message.get("id").is_some()
}

fn reply(
    kind: ReplyKind,
    status: StatusCode,
    content_type: Option<&'static str>,
    body: ChannelBody,
) -> Reply {
    let mut headers = HeaderMap::new();
    if let Some(content_type) = content_type {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    if kind == ReplyKind::Events {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    Reply {
        kind,
        session: SessionChange::None,
        head: ReplyHead { status, headers },
        encoded: false,
        body: ReplyBody::Channel(body),
    }
}

impl Reply {
    fn with_session(mut self, change: SessionChange) -> Self {
        self.session = change;
        self
    }
}

/// Tells the child's multiplexer that a caller went away (its client disconnected before the
/// response): its response is dropped, and requests of the child's it held are answered.
struct Forget {
    child: Supervisor,
    key: u64,
}

impl Drop for Forget {
    fn drop(&mut self) {
        self.child.forget(self.key);
    }
}

/// A reply's body built by Gatehouse: one JSON message, or SSE events from a bounded channel.
pub struct ChannelBody {
    first: Option<Bytes>,
    messages: Option<mpsc::Receiver<FromChild>>,
    /// The events of a kept stream (resumable), already framed.
    kept: Option<EventBytes>,
    _forget: Option<Forget>,
}

impl ChannelBody {
    fn empty() -> Self {
        Self {
            first: None,
            messages: None,
            kept: None,
            _forget: None,
        }
    }

    fn whole(bytes: Bytes) -> Self {
        Self {
            first: Some(bytes),
            ..Self::empty()
        }
    }

    fn kept(events: EventBytes) -> Self {
        Self {
            kept: Some(events),
            ..Self::empty()
        }
    }

    fn events(
        first: Option<Value>,
        messages: mpsc::Receiver<FromChild>,
        forget: Option<Forget>,
    ) -> Self {
        Self {
            first: first.map(|m| event(&m)),
            messages: Some(messages),
            kept: None,
            _forget: forget,
        }
    }
}

/// One SSE event carrying one message.
fn event(message: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if let Some(kept) = this.kept.as_mut() {
            return match kept.as_mut().poll_next(cx) {
                Poll::Ready(Some(bytes)) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                Poll::Ready(None) => {
                    this.kept = None;
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            };
        }
        let Some(messages) = this.messages.as_mut() else {
            return Poll::Ready(None);
        };
        match messages.poll_recv(cx) {
            // A crash's error is the request's clean last message.
            Poll::Ready(Some(m)) => Poll::Ready(Some(Ok(Frame::data(event(&m.into_value()))))),
            Poll::Ready(None) => {
                this.messages = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.messages.is_none() && self.kept.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.kept.is_some() {
            return SizeHint::default();
        }
        match (&self.first, &self.messages) {
            (Some(first), None) => SizeHint::with_exact(first.len() as u64),
            (None, None) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
