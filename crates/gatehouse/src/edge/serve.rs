//! The accept loop: HTTP/1 connections (MCP's Streamable HTTP needs nothing else) served by
//! the axum router, with the peer address as `ConnectInfo`.
//!
//! - A request head must arrive within `http.header_read_timeout` (which also closes
//!   kept-alive connections idle for that long) and fit in `http.max_header_bytes` (431).
//! - At most `http.max_connections` are open: the next one makes the oldest idle connection
//!   close; when none is idle, the newcomer is answered 503 and closed.
//! - When accepting fails (out of descriptors), the loop backs off and sheds an idle
//!   connection instead of spinning, so health checks and new clients get in again.
//! - Stopping closes idle connections and lets requests in flight finish.

use axum::{Router, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::body::{Drain, RequestBody};
use crate::{
    config::HttpConfig,
    error::{ErrorContext, GatewayError},
    health::Draining,
};

/// How long the loop pauses after a failed accept (EMFILE and the like).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How long a shed connection may take to close by itself. One that is idle between requests
/// closes at once; one holding half a request head would wait for its head timeout, so it is
/// dropped after this (no request of it is being answered: it is idle by our count).
const SHED_GRACE: Duration = Duration::from_millis(100);

/// What the connection handler needs from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    pub body_read_timeout: Duration,
    pub drain: Drain,
}

impl Limits {
    pub fn new(http: &HttpConfig, max_body_bytes: usize) -> Self {
        Self {
            header_read_timeout: http.header_read_timeout,
            max_header_bytes: http.max_header_bytes,
            max_connections: http.max_connections,
            body_read_timeout: http.body_read_timeout,
            drain: Drain {
                max_bytes: max_body_bytes,
                within: http.body_read_timeout,
            },
        }
    }
}

/// One open connection: whether it is between requests, since when, and how to ask it to close.
struct Slot {
    busy: AtomicUsize,
    idle_since: AtomicU64,
    /// A child of the server's stop token, cancelled alone to shed this connection. Each
    /// connection waits on its own token: a token shared by every connection is one lock taken
    /// by every poll of every connection, contended across worker threads.
    close: CancellationToken,
}

/// The shutdown cut (requests still running when the grace period ends are ended and
/// recorded as `shutdown`), as one connection sees it: a child of the server-wide cut, so its
/// requests wait on a token no other connection touches. In the request's extensions.
#[derive(Clone)]
pub struct ConnectionCut(pub CancellationToken);

/// The open connections, so the oldest idle one can be asked to make room.
#[derive(Default)]
struct Connections {
    open: Mutex<HashMap<u64, Arc<Slot>>>,
    next_id: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
}

impl Connections {
    fn now(&self) -> u64 {
        let epoch = self.epoch.get_or_init(Instant::now);
        u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn len(&self) -> usize {
        self.open.lock().len()
    }

    fn add(&self, stop: &CancellationToken) -> (u64, Arc<Slot>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(self.now()),
            close: stop.child_token(),
        });
        self.open.lock().insert(id, slot.clone());
        (id, slot)
    }

    fn remove(&self, id: u64) {
        self.open.lock().remove(&id);
    }

    /// Asks the connection idle for longest to close; false when every connection is busy.
    fn shed_oldest_idle(&self) -> bool {
        let open = self.open.lock();
        let oldest = open
            .iter()
            .filter(|(_, slot)| {
                slot.busy.load(Ordering::Acquire) == 0 && !slot.close.is_cancelled()
            })
            .min_by_key(|(_, slot)| slot.idle_since.load(Ordering::Relaxed));
        match oldest {
            Some((_, slot)) => {
                slot.close.cancel();
                true
            }
            None => false,
        }
    }
}

/// Marks its connection busy while a request and its response body are in progress.
struct Busy {
    slot: Arc<Slot>,
    connections: Arc<Connections>,
}

impl Busy {
    fn new(slot: Arc<Slot>, connections: Arc<Connections>) -> Self {
        slot.busy.fetch_add(1, Ordering::AcqRel);
        Self { slot, connections }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.slot
            .idle_since
            .store(self.connections.now(), Ordering::Relaxed);
        self.slot.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection marked busy until it is sent or dropped.
struct TrackedBody {
    inner: axum::body::Body,
    _busy: Busy,
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `app` on `listener` until `stop` is cancelled, then waits for open requests.
/// Cancelling `cut` ends the requests still running (each sees it as [`ConnectionCut`]).
/// Once `draining`, every response asks its client to close the connection, so clients and
/// balancers open their next one elsewhere before this listener stops accepting.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stop: CancellationToken,
    cut: CancellationToken,
    draining: Draining,
) {
    let connections = Arc::new(Connections::default());
    let tasks = TaskTracker::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: make room and back off instead of
                    // spinning on the error.
                    tracing::warn!(error = %err, "accept failed");
                    connections.shed_oldest_idle();
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        // Without TCP_NODELAY a response written in two parts (head, then a streamed body)
        // waits for the client's delayed ACK: tens of milliseconds on a request/response protocol.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        if connections.len() >= limits.max_connections && !connections.shed_oldest_idle() {
            tasks.spawn(refuse(builder.clone(), tcp));
            continue;
        }
        let (id, slot) = connections.add(&stop);
        let service = {
            let connections = connections.clone();
            let slot = slot.clone();
            let app = app.clone();
            let limits = limits.clone();
            let cut = ConnectionCut(cut.child_token());
            let draining = draining.clone();
            hyper::service::service_fn(move |request: http::Request<Incoming>| {
                let busy = Busy::new(slot.clone(), connections.clone());
                let (mut parts, body) = request.into_parts();
                parts.extensions.insert(ConnectInfo(peer));
                parts.extensions.insert(cut.clone());
                let body = RequestBody::new(body, limits.body_read_timeout, limits.drain);
                let request = http::Request::from_parts(parts, body);
                let mut app = app.clone();
                let draining = draining.clone();
                async move {
                    // The router is always ready (axum documents it), so `call` needs no
                    // `poll_ready`.
                    let mut response = tower_service::Service::call(&mut app, request).await?;
                    if draining.is_draining() {
                        response.headers_mut().insert(
                            http::header::CONNECTION,
                            http::HeaderValue::from_static("close"),
                        );
                    }
                    Ok::<_, Infallible>(response.map(|inner| TrackedBody { inner, _busy: busy }))
                }
            })
        };
        let connection = builder.serve_connection(TokioIo::new(tcp), service);
        let stop = stop.clone();
        let connections = connections.clone();
        tasks.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                // Cancelled with the stop token (every connection) or alone (shed).
                () = slot.close.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    if stop.is_cancelled() {
                        connection.await
                    } else {
                        tokio::time::timeout(SHED_GRACE, connection).await.unwrap_or(Ok(()))
                    }
                }
            };
            connections.remove(id);
            if let Err(err) = result {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tasks.close();
    tasks.wait().await;
}

/// Over the connection cap with nobody idle: read the request head, answer 503, close.
async fn refuse(mut builder: http1::Builder, tcp: TcpStream) {
    builder.keep_alive(false);
    let service = hyper::service::service_fn(|request: http::Request<Incoming>| async move {
        Ok::<_, Infallible>(overloaded(request.uri().path()))
    });
    if let Err(err) = builder.serve_connection(TokioIo::new(tcp), service).await {
        tracing::debug!(error = %err, "refused connection ended with an error");
    }
}

/// 503 in the route's own terms: a JSON-RPC error for the gateway, plain text elsewhere.
fn overloaded(path: &str) -> http::Response<axum::body::Body> {
    if path.ends_with("/mcp") {
        return GatewayError::Overloaded.into_response(&ErrorContext::default());
    }
    let mut response = http::Response::new(axum::body::Body::from("busy; try again\n"));
    *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    response
}
