//! The audit event of one request, written whatever ends the request.
//!
//! [`Record`] collects what the event will say as the request progresses. It is armed from
//! the start: if the request's task is dropped before the event is handed on (the client
//! closed its connection, or shutdown cut the request), dropping the record writes the event
//! with that outcome, so a call that reached the upstream is never left unrecorded.
//!
//! A forwarded response's body carries the record on ([`AuditedBody`]): the event is written
//! when the body ends and says how it ended (complete, cut off by the upstream, left by the
//! client) and how many bytes were relayed. In durable mode the body's end waits for the
//! commit: the client never sees a complete answer whose event is not committed.

use axum::{body::Body, response::Response};
use bytes::Bytes;
use http::StatusCode;
use http_body::{Body as HttpBody, Frame, SizeHint};
use serde_json::Value;
use std::{
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};
use subtle::ConstantTimeEq as _;
use tokio_util::sync::CancellationToken;

use crate::{audit::writer::InFlight, context::AppState, gateway::sse_watch::EndedMidEvent};
use gatehouse_model::audit::{AuditEvent, BatchEntry, Decision, Outcome};

/// HTTP status recorded for a request whose client left before any response was sent
/// (the convention nginx uses for "client closed request").
pub const CLIENT_GONE_STATUS: u16 = 499;

/// What the audit event will say, filled in as the request progresses.
pub(super) struct Record {
    pub request_id: String,
    pub client_ip: IpAddr,
    pub server: String,
    pub http_method: String,
    pub client: Option<String>,
    pub credential_id: Option<String>,
    pub user: Option<String>,
    pub rpc_id: Option<Value>,
    pub rpc_method: Option<String>,
    pub tool: Option<String>,
    /// Every message of a batch.
    pub batch: Vec<BatchEntry>,
    pub upstream_status: Option<u16>,
    /// Guardrail findings that did not refuse the request (warn, redact).
    pub notes: Vec<String>,
    /// The rule that refused the request (`GatewayError::audit_rule`), once one has.
    pub rule: Option<String>,
    /// Set when the request is handed to the upstream: from then on the call may run there.
    pub forwarded: bool,
    /// The server's name as metrics label it, once it is known to exist.
    pub metrics_server: Option<Arc<str>>,
    /// How long the upstream took to send its response head, once it has.
    pub upstream_elapsed: Option<Duration>,
    /// The request's spans, when traces are on; ended with the event.
    pub trace: Option<Box<crate::telemetry::RequestTrace>>,
    /// Set when the upstream's SSE body ended cleanly but inside an event (`SseWatch`).
    pub ended_mid_event: Option<EndedMidEvent>,
    /// Present until the event has been handed on.
    armed: Option<Armed>,
    /// Cancelled when shutdown cuts the requests still running (this connection's token).
    cut: CancellationToken,
}

struct Armed {
    state: AppState,
    started: Instant,
    /// Shutdown waits for in-flight requests to record their events.
    _in_flight: InFlight,
}

/// How the request ended as far as the gateway decided it (the body may still end otherwise).
#[derive(Clone)]
pub(super) struct Ending {
    pub decision: Decision,
    pub reason: Option<String>,
    /// The metrics reason label.
    pub code: &'static str,
    pub status: u16,
    /// Time to the response head (the metrics histogram).
    pub head: Duration,
}

impl Record {
    pub fn new(
        state: &AppState,
        started: Instant,
        request_id: String,
        client_ip: IpAddr,
        server: String,
        http_method: String,
        cut: CancellationToken,
    ) -> Record {
        Record {
            request_id,
            client_ip,
            server,
            http_method,
            client: None,
            credential_id: None,
            user: None,
            rpc_id: None,
            rpc_method: None,
            tool: None,
            batch: Vec::new(),
            upstream_status: None,
            notes: Vec::new(),
            rule: None,
            forwarded: false,
            metrics_server: None,
            upstream_elapsed: None,
            trace: None,
            ended_mid_event: None,
            armed: Some(Armed {
                state: state.clone(),
                started,
                _in_flight: state.audit.in_flight(),
            }),
            cut,
        }
    }

    /// The base of follow-up events (stream findings recorded after this request's event).
    pub fn template(&self, server: &str) -> AuditEvent {
        AuditEvent {
            ts_ms: crate::now_ms(),
            request_id: self.request_id.clone(),
            client: self.client.clone(),
            credential_id: self.credential_id.clone(),
            user: self.user.clone(),
            ip: Some(self.client_ip.to_string()),
            country: None,
            server: Some(server.to_owned()),
            http_method: self.http_method.clone(),
            rpc_method: None,
            tool: self.tool.clone(),
            decision: Decision::Allow,
            reason: None,
            status: 200,
            upstream_status: self.upstream_status,
            latency_us: 0,
            outcome: None,
            response_bytes: None,
            batch: Vec::new(),
            operator: None,
            rule: None,
        }
    }

    /// Writes the event now (in durable mode, once committed): for answers already complete.
    /// Dropped while waiting for room in the queue, the record still writes its event.
    pub async fn finish(mut self, ending: Ending, outcome: Option<Outcome>) {
        let Some(state) = self.armed.as_ref().map(|armed| armed.state.clone()) else {
            return;
        };
        let permit = match state.audit.reserve().await {
            Ok(permit) => permit,
            // Full for `audit.queue_wait`: the event queues behind the others, unawaited.
            Err(true) => return self.finish_detached(ending),
            Err(false) => return,
        };
        if let Some((event, armed)) = self.take_event(&ending, outcome, None) {
            armed.count(&self, &ending, outcome, &event);
            if let Some(committed) = permit.send(event) {
                // Dropped now, the event is queued all the same. Bounded: nothing ran
                // upstream for an answer sent here, and the database may be down.
                state.audit.committed_within(committed).await;
            }
        }
    }

    /// Queues the event without waiting for room or its commit: for the refusal sent because
    /// the trail cannot take events now (`audit_unavailable`), the one answer sent before its
    /// event is committed.
    pub fn finish_detached(mut self, ending: Ending) {
        if let Some((event, armed)) = self.take_event(&ending, None, None) {
            armed.count(&self, &ending, None, &event);
            armed.state.audit.record_detached(event);
        }
    }

    /// Hands the record to the response body: the event is written when the body ends.
    pub fn follow(self, response: Response, ending: Ending) -> Response {
        let (parts, body) = response.into_parts();
        let cut = match self.armed {
            Some(_) => Cut::Watching(self.cut.clone()),
            None => Cut::Off,
        };
        let body = AuditedBody {
            inner: body,
            record: self,
            ending,
            bytes: 0,
            cut,
            commit: None,
            after_commit: None,
            ended: false,
        };
        Response::from_parts(parts, Body::new(body))
    }

    /// A traced phase starts (nothing happens while traces are off).
    pub fn begin_phase(&mut self, name: &'static str) {
        if let Some(trace) = self.trace.as_mut() {
            trace.begin_phase(name);
        }
    }

    pub fn end_phase(&mut self) {
        if let Some(trace) = self.trace.as_mut() {
            trace.end_phase();
        }
    }

    /// The event and what writing it needs, once; later calls (and the drop) get nothing.
    fn take_event(
        &mut self,
        ending: &Ending,
        outcome: Option<Outcome>,
        bytes: Option<u64>,
    ) -> Option<(AuditEvent, Armed)> {
        let armed = self.armed.take()?;
        if let Some(trace) = self.trace.take() {
            let reason = match outcome {
                Some(Outcome::Complete) | None => ending.code,
                Some(other) => other.as_str(),
            };
            trace.finish(ending.decision.as_str(), reason, ending.status);
        }
        let event = AuditEvent {
            ts_ms: crate::now_ms(),
            request_id: std::mem::take(&mut self.request_id),
            client: self.client.take(),
            credential_id: self.credential_id.take(),
            user: self.user.take(),
            ip: Some(self.client_ip.to_string()),
            // Looked up by the audit writer, off the request path.
            country: None,
            server: Some(std::mem::take(&mut self.server)),
            http_method: std::mem::take(&mut self.http_method),
            rpc_method: self.rpc_method.take(),
            tool: self.tool.take(),
            decision: ending.decision,
            reason: ending.reason.clone(),
            status: ending.status,
            upstream_status: self.upstream_status,
            latency_us: i64::try_from(armed.started.elapsed().as_micros()).unwrap_or(i64::MAX),
            outcome,
            response_bytes: bytes,
            batch: std::mem::take(&mut self.batch),
            operator: None,
            rule: self.rule.take(),
        };
        Some((event, armed))
    }

    /// The outcome of a request ended by its task being dropped.
    fn dropped_outcome(&self) -> Outcome {
        if self.cut.is_cancelled() {
            Outcome::Shutdown
        } else {
            Outcome::ClientGone
        }
    }
}

impl Armed {
    /// Queues the event from a drop, where nothing can wait; in durable mode the request
    /// stays counted in flight until the event is committed (shutdown waits for it).
    fn write_detached(self, event: AuditEvent) {
        let Some(committed) = self.state.audit.submit(event) else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = committed.await;
                drop(self);
            });
        }
    }

    fn count(
        &self,
        record: &Record,
        ending: &Ending,
        outcome: Option<Outcome>,
        event: &AuditEvent,
    ) {
        let (decision, code) = match outcome {
            Some(Outcome::Complete) | None => (ending.decision.as_str(), ending.code),
            Some(other) if ending.decision == Decision::Allow => (
                if other == Outcome::UpstreamTruncated {
                    Decision::Error.as_str()
                } else {
                    Decision::Allow.as_str()
                },
                other.as_str(),
            ),
            Some(_) => (ending.decision.as_str(), ending.code),
        };
        tracing::debug!(
            target: "gatehouse::request",
            request_id = %event.request_id,
            server = event.server.as_deref().unwrap_or("-"),
            http_method = %event.http_method,
            method = event.rpc_method.as_deref().unwrap_or("-"),
            tool = event.tool.as_deref().unwrap_or("-"),
            client = event.client.as_deref().unwrap_or("-"),
            decision,
            reason = code,
            status = event.status,
            upstream_status = event.upstream_status,
            latency_us = event.latency_us,
            "request"
        );
        self.state.metrics.record(&crate::metrics::Observed {
            server: record.metrics_server.as_ref(),
            method: crate::metrics::method_label(event.rpc_method.as_deref()),
            tool: event.tool.as_deref(),
            forwarded: record.forwarded,
            decision,
            reason: code,
            head: ending.head,
            upstream: record.upstream_elapsed,
        });
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let Some(armed) = self.armed.as_ref() else {
            return;
        };
        let outcome = self.dropped_outcome();
        // Before forwarding, nothing ran upstream: the request failed rather than was allowed.
        let ending = Ending {
            decision: if self.forwarded {
                Decision::Allow
            } else {
                Decision::Error
            },
            reason: None,
            code: outcome.as_str(),
            status: if outcome == Outcome::Shutdown {
                StatusCode::SERVICE_UNAVAILABLE.as_u16()
            } else {
                CLIENT_GONE_STATUS
            },
            head: armed.started.elapsed(),
        };
        if let Some((event, armed)) = self.take_event(&ending, Some(outcome), None) {
            armed.count(self, &ending, Some(outcome), &event);
            armed.write_detached(event);
        }
    }
}

/// Resolves once the event is committed (`true`) or `audit.commit_timeout` has passed.
type Commit = Pin<Box<dyn Future<Output = bool> + Send>>;

/// A response body that records the request's event when it ends.
/// How a body watches for shutdown: by looking at the token while its frames come ready, and
/// through a future (boxed: it is not `Unpin`) only once it waits for the upstream. Most
/// bodies are ready at their first poll and never pay for the future.
enum Cut {
    Off,
    Watching(tokio_util::sync::CancellationToken),
    Waiting(Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>),
}

impl Cut {
    /// Whether shutdown has cut the request (registering to be woken when waiting).
    fn fired(&mut self, cx: &mut Context<'_>) -> bool {
        match self {
            Cut::Off => false,
            Cut::Watching(token) => token.is_cancelled(),
            Cut::Waiting(cut) => cut.as_mut().poll(cx).is_ready(),
        }
    }

    /// The body is about to wait: from now on shutdown must wake it.
    fn wait(&mut self, cx: &mut Context<'_>) -> bool {
        if let Cut::Watching(token) = self {
            let mut cut = Box::pin(token.clone().cancelled_owned());
            let fired = cut.as_mut().poll(cx).is_ready();
            *self = Cut::Waiting(cut);
            return fired;
        }
        false
    }
}

struct AuditedBody {
    inner: Body,
    record: Record,
    ending: Ending,
    bytes: u64,
    /// Shutdown cutting the requests still in flight.
    cut: Cut,
    /// The event being written; the body's end waits for it.
    commit: Option<Commit>,
    /// What to hand on once the event is written: the last frame, the error, or the end.
    after_commit: Option<Result<Frame<Bytes>, axum::Error>>,
    ended: bool,
}

impl AuditedBody {
    /// The outcome of a body whose HTTP framing ended cleanly: an SSE stream that stopped
    /// inside an event lost that event all the same.
    fn clean_end(&self) -> Outcome {
        let mid_event = self
            .record
            .ended_mid_event
            .as_ref()
            .is_some_and(|ended| ended.load(std::sync::atomic::Ordering::Relaxed));
        if mid_event {
            Outcome::UpstreamTruncated
        } else {
            Outcome::Complete
        }
    }

    fn end(&mut self, outcome: Outcome, then: Option<Result<Frame<Bytes>, axum::Error>>) {
        self.ended = true;
        self.after_commit = then;
        let mut ending = self.ending.clone();
        if outcome == Outcome::UpstreamTruncated && ending.decision == Decision::Allow {
            ending.decision = Decision::Error;
            ending.reason = Some(outcome.as_str().to_owned());
        }
        if let Some((event, armed)) =
            self.record
                .take_event(&ending, Some(outcome), Some(self.bytes))
        {
            armed.count(&self.record, &self.ending, Some(outcome), &event);
            // Queued at once: a client leaving while the commit is awaited loses nothing.
            let committed = armed.state.audit.submit(event);
            self.commit = Some(Box::pin(async move {
                let in_time = match committed {
                    Some(committed) => armed.state.audit.committed_within(committed).await,
                    None => true,
                };
                drop(armed);
                in_time
            }));
        }
    }
}

impl HttpBody for AuditedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            if let Some(commit) = this.commit.as_mut() {
                let in_time = ready!(commit.as_mut().poll(cx));
                this.commit = None;
                if !in_time {
                    // Durable: an answer whose event is not committed must not look complete.
                    // The event stays queued and is written when the database returns.
                    let err = axum::Error::new("audit event not committed in time");
                    this.after_commit = Some(Err(err));
                }
            }
            if this.ended {
                return Poll::Ready(this.after_commit.take());
            }
            let cut = this.cut.fired(cx);
            let polled = match cut {
                false => Pin::new(&mut this.inner).poll_frame(cx),
                true => Poll::Pending,
            };
            let Poll::Ready(frame) = polled else {
                if cut || this.cut.wait(cx) {
                    this.cut = Cut::Off;
                    let err = axum::Error::new("gatehouse is shutting down");
                    this.end(Outcome::Shutdown, Some(Err(err)));
                    continue;
                }
                return Poll::Pending;
            };
            match frame {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        this.bytes += data.len() as u64;
                    }
                    if !this.inner.is_end_stream() {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    // The last frame waits for the event (Content-Length bodies end with it).
                    this.end(this.clean_end(), Some(Ok(frame)));
                }
                Some(Err(err)) => this.end(Outcome::UpstreamTruncated, Some(Err(err))),
                None => this.end(this.clean_end(), None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.commit.is_none() && self.after_commit.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AuditedBody {
    fn drop(&mut self) {
        if self.ended {
            // The event is queued; the request stays in flight until it is committed.
            if let (Some(commit), Ok(runtime)) =
                (self.commit.take(), tokio::runtime::Handle::try_current())
            {
                runtime.spawn(commit);
            }
            return;
        }
        if self.record.armed.is_none() {
            return;
        }
        let outcome = self.record.dropped_outcome();
        let ending = self.ending.clone();
        if let Some((event, armed)) =
            self.record
                .take_event(&ending, Some(outcome), Some(self.bytes))
        {
            armed.count(&self.record, &ending, Some(outcome), &event);
            armed.write_detached(event);
        }
    }
}

/// Names a refused key in the record (revoked, expired, or of a disabled client), so the trail
/// shows whose key was used. Only a key whose secret matches is named: anyone can make up an
/// id. Such keys are not in the snapshot, so the store is asked; its answer never changes the
/// refusal.
pub(super) async fn identify_refused_key(state: &AppState, token: &str, record: &mut Record) {
    let Some((id, secret)) = crate::tokens::api_key::parse(token) else {
        return;
    };
    let Ok(stored) = state.store.get_api_key(id).await else {
        return;
    };
    let presented = crate::identity::api_keys::hash_secret(&state.keyring, id, secret);
    if bool::from(presented.as_slice().ct_eq(stored.secret_hash.as_slice())) {
        record.credential_id = Some(stored.id);
        record.client = Some(stored.client);
    }
}
