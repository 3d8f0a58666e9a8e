//! Request bodies with a deadline, drained when a handler answers without reading them.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};
use tokio::time::Sleep;

/// The body did not arrive within `http.body_read_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimeout;

/// Whether a body read failed because the client was too slow.
pub fn is_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(e) = source {
        if e.is::<BodyTimeout>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// How an unread body is disposed of after the answer.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    pub max_bytes: usize,
    pub within: Duration,
}

/// A request body that fails with [`BodyTimeout`] once its deadline passes, and that drains
/// itself (at most `drain.max_bytes`, within `drain.within`) when dropped unread: closing a
/// socket with unread data makes the kernel send a reset, which can destroy the answer the
/// client has not read yet.
pub struct RequestBody {
    inner: Option<Incoming>,
    /// When the whole body must have arrived; `None` once it has (or for an empty body).
    deadline: Option<Instant>,
    /// The timer, armed only when the body has to be waited for: most bodies arrive with
    /// their head and never need one.
    timer: Option<Pin<Box<Sleep>>>,
    drain: Drain,
    timed_out: bool,
}

impl RequestBody {
    pub fn new(inner: Incoming, timeout: Duration, drain: Drain) -> Self {
        // An empty body (GET, DELETE) needs no deadline.
        let deadline = (!inner.is_end_stream()).then(|| Instant::now() + timeout);
        Self {
            inner: Some(inner),
            deadline,
            timer: None,
            drain,
            timed_out: false,
        }
    }

    fn time_out(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.timed_out = true;
        self.deadline = None;
        self.timer = None;
        self.inner = None;
        Poll::Ready(Some(Err(Box::new(BodyTimeout))))
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        // Checked before the data: a client trickling a byte at a time always has data ready.
        if let Some(deadline) = this.deadline
            && Instant::now() >= deadline
        {
            return this.time_out();
        }
        let Some(inner) = &mut this.inner else {
            return Poll::Ready(None);
        };
        match Pin::new(&mut *inner).poll_frame(cx) {
            Poll::Pending => {
                let Some(deadline) = this.deadline else {
                    return Poll::Pending;
                };
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
                if timer.as_mut().poll(cx).is_ready() {
                    return this.time_out();
                }
                Poll::Pending
            }
            Poll::Ready(None) => {
                this.deadline = None;
                this.timer = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => Poll::Ready(Some(frame.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint)
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        // A client that was too slow already had its time; dropping closes the connection.
        if self.timed_out || inner.is_end_stream() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let drain = self.drain;
        runtime.spawn(async move {
            let read = Limited::new(inner, drain.max_bytes).collect();
            // Larger, slower or broken: dropped, which ends the connection.
            let _ = tokio::time::timeout(drain.within, read).await;
        });
    }
}
