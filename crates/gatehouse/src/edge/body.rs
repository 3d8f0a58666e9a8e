//! Request bodies with a deadline, drained when a handler answers without reading them.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
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
    deadline: Option<Pin<Box<Sleep>>>,
    drain: Drain,
    timed_out: bool,
}

impl RequestBody {
    pub fn new(inner: Incoming, timeout: Duration, drain: Drain) -> Self {
        // An empty body (GET, DELETE) needs no timer.
        let deadline = (!inner.is_end_stream()).then(|| Box::pin(tokio::time::sleep(timeout)));
        Self {
            inner: Some(inner),
            deadline,
            drain,
            timed_out: false,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        // Checked before the data: a client trickling a byte at a time always has data ready.
        if let Some(deadline) = &mut this.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            this.timed_out = true;
            this.deadline = None;
            this.inner = None;
            return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
        }
        let Some(inner) = &mut this.inner else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(&mut *inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.deadline = None;
        }
        polled.map_err(Into::into)
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
