//! [`EventStreams`] in one process: a map of bounded event buffers.
//!
//! Bounds: a stream keeps its newest events up to `max_stream_bytes` (always at least the
//! newest one); at most `max_streams` streams are kept, and when a new one would exceed that
//! the oldest completed stream goes, then the oldest unattended one, and if every stream is
//! live and attached the new one is not kept (its request streams without resumption). A
//! completed stream is kept for `keep_completed` so a client that lost its connection just
//! before the answer can still fetch it; an incomplete one with no reader for `unattended`
//! is dropped (its request is forgotten, as for a client that went away).

use bytes::Bytes;
use parking_lot::Mutex;
use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};
use tokio::sync::watch;

use crate::state::event_streams::{EventStreams, Following, NotKept, StreamKey};

/// The bounds of a [`MemoryEventStreams`].
#[derive(Debug, Clone, Copy)]
pub struct StreamBounds {
    pub max_streams: usize,
    pub max_stream_bytes: usize,
    pub keep_completed: Duration,
    pub unattended: Duration,
}

impl Default for StreamBounds {
    fn default() -> Self {
        Self {
            max_streams: 4096,
            max_stream_bytes: 4 * 1024 * 1024,
            keep_completed: Duration::from_secs(60),
            unattended: Duration::from_secs(5 * 60),
        }
    }
}

struct Kept {
    tools: Vec<(String, String)>,
    events: VecDeque<(u64, Bytes)>,
    bytes: usize,
    /// The number the next event gets.
    next: u64,
    /// The first number still kept is `dropped + 1`.
    dropped: u64,
    complete: bool,
    readers: usize,
    /// When it was opened, completed, or last left by a reader.
    since: Instant,
    changed: watch::Sender<u64>,
}

impl Kept {
    fn after(&self, after: u64) -> Result<Following, NotKept> {
        if after < self.dropped {
            return Err(NotKept::Overrun);
        }
        Ok(Following {
            events: self
                .events
                .iter()
                .filter(|(n, _)| *n > after)
                .cloned()
                .collect(),
            complete: self.complete,
            changed: self.changed.subscribe(),
        })
    }

    /// Whether the sweep may drop it now.
    fn expired(&self, bounds: &StreamBounds, now: Instant) -> bool {
        let idle = now.saturating_duration_since(self.since);
        if self.complete {
            idle >= bounds.keep_completed
        } else {
            self.readers == 0 && idle >= bounds.unattended
        }
    }
}

/// The streams of this process.
pub struct MemoryEventStreams {
    bounds: StreamBounds,
    streams: Mutex<HashMap<StreamKey, Kept>>,
}

impl Default for MemoryEventStreams {
    fn default() -> Self {
        Self::new(StreamBounds::default())
    }
}

impl MemoryEventStreams {
    pub fn new(bounds: StreamBounds) -> Self {
        Self {
            bounds,
            streams: Mutex::new(HashMap::new()),
        }
    }

    /// Makes room for one more stream; false when every kept stream is live and attached.
    fn make_room(&self, streams: &mut HashMap<StreamKey, Kept>, now: Instant) -> bool {
        streams.retain(|_, kept| !kept.expired(&self.bounds, now));
        if streams.len() < self.bounds.max_streams {
            return true;
        }
        let victim = streams
            .iter()
            .filter(|(_, k)| k.complete)
            .min_by_key(|(_, k)| k.since)
            .or_else(|| {
                streams
                    .iter()
                    .filter(|(_, k)| k.readers == 0)
                    .min_by_key(|(_, k)| k.since)
            })
            .map(|(key, _)| key.clone());
        match victim {
            Some(key) => {
                streams.remove(&key);
                true
            }
            None => false,
        }
    }
}

impl EventStreams for MemoryEventStreams {
    fn open(&self, server: &str, session: &str, tools: Vec<(String, String)>) -> Option<StreamKey> {
        let stream = crate::secrets::random_id(16).ok()?;
        let key = StreamKey {
            server: server.into(),
            session: session.into(),
            stream: stream.into(),
        };
        let now = Instant::now();
        let mut streams = self.streams.lock();
        if !self.make_room(&mut streams, now) {
            return None;
        }
        streams.insert(
            key.clone(),
            Kept {
                tools,
                events: VecDeque::new(),
                bytes: 0,
                next: 1,
                dropped: 0,
                complete: false,
                readers: 0,
                since: now,
                changed: watch::channel(0).0,
            },
        );
        Some(key)
    }

    fn append(&self, key: &StreamKey, message: Bytes, last: bool) -> Option<u64> {
        let mut streams = self.streams.lock();
        let kept = streams.get_mut(key)?;
        if kept.complete {
            return None;
        }
        let number = kept.next;
        kept.next += 1;
        kept.bytes += message.len();
        kept.events.push_back((number, message));
        while kept.bytes > self.bounds.max_stream_bytes && kept.events.len() > 1 {
            if let Some((n, dropped)) = kept.events.pop_front() {
                kept.bytes -= dropped.len();
                kept.dropped = n;
            }
        }
        if last {
            kept.complete = true;
            kept.since = Instant::now();
        }
        kept.changed.send_replace(number);
        Some(number)
    }

    fn end(&self, key: &StreamKey) {
        if let Some(kept) = self.streams.lock().get_mut(key)
            && !kept.complete
        {
            kept.complete = true;
            kept.since = Instant::now();
            let last = kept.next - 1;
            kept.changed.send_replace(last);
        }
    }

    fn attach(&self, key: &StreamKey, after: u64) -> Result<Following, NotKept> {
        let mut streams = self.streams.lock();
        let kept = streams.get_mut(key).ok_or(NotKept::Unknown)?;
        let following = kept.after(after)?;
        kept.readers += 1;
        Ok(following)
    }

    fn read(&self, key: &StreamKey, after: u64) -> Result<Following, NotKept> {
        self.streams
            .lock()
            .get(key)
            .ok_or(NotKept::Unknown)?
            .after(after)
    }

    fn tools(&self, key: &StreamKey) -> Option<Vec<(String, String)>> {
        self.streams.lock().get(key).map(|k| k.tools.clone())
    }

    fn kept(&self, key: &StreamKey) -> bool {
        let now = Instant::now();
        let mut streams = self.streams.lock();
        match streams.get(key) {
            Some(kept) if kept.expired(&self.bounds, now) => {
                streams.remove(key);
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    fn detach(&self, key: &StreamKey) {
        if let Some(kept) = self.streams.lock().get_mut(key) {
            kept.readers = kept.readers.saturating_sub(1);
            if kept.readers == 0 && !kept.complete {
                kept.since = Instant::now();
            }
        }
    }

    fn len(&self) -> usize {
        self.streams.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> StreamBounds {
        StreamBounds {
            max_streams: 2,
            max_stream_bytes: 10,
            keep_completed: Duration::from_secs(60),
            unattended: Duration::from_secs(60),
        }
    }

    fn message(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    #[test]
    fn a_reader_gets_the_events_after_the_one_it_names_and_only_in_its_session() {
        let streams = MemoryEventStreams::new(bounds());
        let key = streams.open("files", "s1", vec![]).unwrap();
        assert_eq!(streams.append(&key, message("a"), false), Some(1));
        assert_eq!(streams.append(&key, message("b"), true), Some(2));
        assert_eq!(streams.append(&key, message("c"), false), None, "complete");
        let following = streams.read(&key, 1).unwrap();
        assert_eq!(following.events, vec![(2, message("b"))]);
        assert!(following.complete);
        let elsewhere = StreamKey {
            session: "s2".into(),
            ..key.clone()
        };
        assert_eq!(streams.read(&elsewhere, 0).err(), Some(NotKept::Unknown));
    }

    #[test]
    fn a_stream_keeps_its_newest_events_within_its_bound_and_says_when_some_were_dropped() {
        let streams = MemoryEventStreams::new(bounds());
        let key = streams.open("files", "s1", vec![]).unwrap();
        for text in ["aaaa", "bbbb", "cccc"] {
            streams.append(&key, message(text), false);
        }
        assert_eq!(
            streams.read(&key, 0).err(),
            Some(NotKept::Overrun),
            "event 1 was dropped"
        );
        let following = streams.read(&key, 1).unwrap();
        assert_eq!(
            following.events,
            vec![(2, message("bbbb")), (3, message("cccc"))]
        );
        streams.append(&key, message("a much longer event"), false);
        assert_eq!(
            streams.read(&key, 3).unwrap().events.len(),
            1,
            "the newest event is kept even when it alone exceeds the bound"
        );
    }

    #[test]
    fn a_full_buffer_drops_completed_streams_first_and_never_an_attached_live_one() {
        let streams = MemoryEventStreams::new(bounds());
        let done = streams.open("files", "s1", vec![]).unwrap();
        streams.append(&done, message("r"), true);
        let live = streams.open("files", "s1", vec![]).unwrap();
        streams.attach(&live, 0).unwrap();
        let third = streams.open("files", "s1", vec![]).unwrap();
        assert!(!streams.kept(&done), "the completed stream made room");
        assert!(streams.kept(&live));
        streams.attach(&third, 0).unwrap();
        assert!(
            streams.open("files", "s1", vec![]).is_none(),
            "every stream is live and attached: the new one is not kept"
        );
        streams.detach(&third);
        assert!(streams.open("files", "s1", vec![]).is_some());
        assert!(streams.kept(&live), "the attached stream stays");
    }

    #[tokio::test]
    async fn a_reader_learns_of_a_new_event() {
        let streams = MemoryEventStreams::new(bounds());
        let key = streams
            .open("files", "s1", vec![("7".into(), "echo".into())])
            .unwrap();
        let mut following = streams.attach(&key, 0).unwrap();
        assert!(following.events.is_empty());
        streams.append(&key, message("x"), true);
        following.changed.changed().await.unwrap();
        assert_eq!(streams.read(&key, 0).unwrap().events.len(), 1);
        assert_eq!(streams.tools(&key).unwrap()[0].1, "echo");
    }
}
