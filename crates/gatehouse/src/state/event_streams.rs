//! The SSE streams Gatehouse builds itself (a stdio server's answers, ADR 0006 and ADR 0013),
//! kept so that a client whose stream closed can resume it with `GET` and `Last-Event-ID`
//! (SEP-1699). Each stream belongs to one session of one server; its events are numbered from
//! 1 (0 is the priming event's) and kept, bounded, until a while after its last one.
//!
//! Behind a trait like the rest of the runtime state: the in-memory implementation
//! ([`super::memory::MemoryEventStreams`]) serves the replica that runs the child, which is
//! where the events are written; a shared one would let another replica replay them.

use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::watch;

/// One stream: the server, the session it was opened in, and its own id (random, so it
/// cannot be guessed, and unique across replicas).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub server: Arc<str>,
    pub session: Arc<str>,
    pub stream: Arc<str>,
}

/// What a reader gets: the kept events after the one it named, whether the last event has
/// been written, and a watch that changes when more come.
pub struct Following {
    pub events: Vec<(u64, Bytes)>,
    pub complete: bool,
    pub changed: watch::Receiver<u64>,
}

/// Why a stream cannot be followed from an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotKept {
    /// No such stream in this session (never opened, expired, evicted, or another session's).
    Unknown,
    /// The stream is kept, but the events after the one named were dropped (the buffer is
    /// bounded): replaying from there would skip messages.
    Overrun,
}

/// Where the events of Gatehouse-built streams are kept.
pub trait EventStreams: Send + Sync {
    /// Opens a stream in `server`'s `session`; `tools` are the tools its request called, by
    /// JSON-RPC id (for the response rules of a resumed stream). `None` when no stream can be
    /// kept now: the caller then streams without resumption.
    fn open(&self, server: &str, session: &str, tools: Vec<(String, String)>) -> Option<StreamKey>;
    /// Appends one message (its JSON); `last` marks the response that completes the stream.
    /// Its event number, or `None` when the stream is no longer kept.
    fn append(&self, key: &StreamKey, message: Bytes, last: bool) -> Option<u64>;
    /// Completes the stream without another event (its request ended without an answer).
    fn end(&self, key: &StreamKey);
    /// The events after `after`, for a reader that attaches to the stream; it detaches with
    /// [`EventStreams::detach`] (an [`Attached`] does so when dropped).
    fn attach(&self, key: &StreamKey, after: u64) -> Result<Following, NotKept>;
    /// The events after `after`, for a reader already attached.
    fn read(&self, key: &StreamKey, after: u64) -> Result<Following, NotKept>;
    /// The tools the stream's request called, by JSON-RPC id.
    fn tools(&self, key: &StreamKey) -> Option<Vec<(String, String)>>;
    /// Whether the stream is still kept.
    fn kept(&self, key: &StreamKey) -> bool;
    /// Detaches one reader (what dropping [`Attached`] does).
    fn detach(&self, key: &StreamKey);
    /// Streams kept, for tests and status.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A reader attached to a stream: an unattended stream whose request never ends is dropped
/// after a while; one with a reader is not.
pub struct Attached {
    streams: Arc<dyn EventStreams>,
    key: StreamKey,
}

impl Attached {
    pub fn new(streams: Arc<dyn EventStreams>, key: StreamKey) -> Self {
        Self { streams, key }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.streams.detach(&self.key);
    }
}

/// An SSE event id: the stream's id and the event's number.
pub fn event_id(stream: &str, number: u64) -> String {
    format!("{stream}_{number}")
}

/// The stream id and event number of an event id written by [`event_id`].
pub fn parse_event_id(id: &str) -> Option<(&str, u64)> {
    let (stream, number) = id.rsplit_once('_')?;
    if stream.is_empty() || !stream.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some((stream, number.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_id_names_its_stream_and_number_and_nothing_else_parses() {
        let id = event_id("ab12", 7);
        assert_eq!(parse_event_id(&id), Some(("ab12", 7)));
        assert_eq!(parse_event_id("ab12_x"), None);
        assert_eq!(parse_event_id("_3"), None);
        assert_eq!(parse_event_id("a b_3"), None);
        assert_eq!(parse_event_id("plain"), None);
    }
}
