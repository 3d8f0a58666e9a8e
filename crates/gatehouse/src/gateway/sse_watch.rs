//! Whether an upstream SSE body ended inside an event.
//!
//! An upstream can end its body cleanly at the HTTP level (the last chunk, or its full
//! `Content-Length`) in the middle of an event: bytes after the last blank line. A client
//! never dispatches that event, so the answer it was waiting for is lost even though no
//! connection broke. [`SseWatch`] follows the event boundaries of the bytes as they pass, and
//! when the body ends says whether it ended mid-event, so the request is recorded as
//! `upstream_truncated` rather than `complete`. The bytes themselves pass untouched.

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, ready},
};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Where the stream is within its current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    Start,
    Comment,
    Field,
}

/// Follows where events end in a stream fed in pieces, remembering only its position: the
/// cost is one pass over the bytes (a vectorised search for line ends within a line) and no
/// allocation. Lines end in `\r\n`, `\n` or `\r`, a leading BOM is skipped, and a comment
/// line (`:` first) neither opens an event nor ends one, as the SSE specification reads them.
#[derive(Debug, Clone)]
pub struct EventBoundaries {
    /// Bytes of a leading BOM matched so far; `None` once the stream's start is decided.
    bom_matched: Option<usize>,
    line: Line,
    /// The last byte was a `\r`: a `\n` right after it belongs to the same line end.
    after_cr: bool,
    /// A field line (anything but a comment) came after the last blank line.
    in_event: bool,
}

impl Default for EventBoundaries {
    fn default() -> Self {
        Self {
            bom_matched: Some(0),
            line: Line::Start,
            after_cr: false,
            in_event: false,
        }
    }
}

impl EventBoundaries {
    /// Follows the next bytes of the stream.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        if let Some(matched) = self.bom_matched {
            let take = (BOM.len() - matched).min(chunk.len());
            if chunk[..take] == BOM[matched..matched + take] {
                self.bom_matched = (matched + take < BOM.len()).then_some(matched + take);
                chunk = &chunk[take..];
            } else {
                // Not a BOM after all: what looked like its start is the first line's start.
                self.bom_matched = None;
                self.follow(&BOM[..matched]);
            }
        }
        self.follow(chunk);
    }

    /// Whether the stream, were it to end here, would end inside an event: a field line (even
    /// an unfinished one) after the last blank line. A trailing comment leaves nothing unsent.
    pub fn mid_event(&self) -> bool {
        // The start of a BOM and nothing else: bytes a client would read as a field line.
        self.in_event || self.bom_matched.is_some_and(|matched| matched > 0)
    }

    fn follow(&mut self, mut chunk: &[u8]) {
        while let Some(&first) = chunk.first() {
            if std::mem::take(&mut self.after_cr) && first == b'\n' {
                chunk = &chunk[1..];
                continue;
            }
            if self.line != Line::Start {
                let Some(end) = memchr::memchr2(b'\r', b'\n', chunk) else {
                    return;
                };
                self.line = Line::Start;
                self.after_cr = chunk[end] == b'\r';
                chunk = &chunk[end + 1..];
                continue;
            }
            match first {
                b'\r' | b'\n' => {
                    // A blank line: the event, if one was open, is dispatched.
                    self.in_event = false;
                    self.after_cr = first == b'\r';
                }
                b':' => self.line = Line::Comment,
                _ => {
                    self.line = Line::Field;
                    self.in_event = true;
                }
            }
            chunk = &chunk[1..];
        }
    }
}

/// Set when a watched body ended cleanly in the middle of an event; read when the response
/// body ends (`AuditedBody`), to record the outcome as it was.
pub type EndedMidEvent = Arc<AtomicBool>;

/// Whether a response body is an SSE stream whose bytes can be followed (not compressed).
pub fn is_watchable(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.as_bytes()
                .get(..17)
                .is_some_and(|head| head.eq_ignore_ascii_case(b"text/event-stream"))
        })
        && super::respond::is_identity_encoded(headers)
}

/// A body passed on as it is, whose event boundaries are followed when it is an SSE stream.
pub struct SseWatch<B> {
    inner: B,
    watch: Option<(EventBoundaries, EndedMidEvent)>,
}

impl<B> SseWatch<B> {
    /// Watches `inner` when `ended` is given, reporting through it how the stream ended.
    pub fn new(inner: B, ended: Option<EndedMidEvent>) -> Self {
        Self {
            inner,
            watch: ended.map(|ended| (EventBoundaries::default(), ended)),
        }
    }
}

/// Wraps an upstream response body, watching it when its headers say it is a readable SSE
/// stream; `ended` receives the flag the watch sets.
pub fn watch<B>(inner: B, headers: &HeaderMap, ended: &mut Option<EndedMidEvent>) -> SseWatch<B> {
    *ended = is_watchable(headers).then(EndedMidEvent::default);
    SseWatch::new(inner, ended.clone())
}

impl<B> HttpBody for SseWatch<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let Self { inner, watch } = self.get_mut();
        let polled = ready!(Pin::new(&mut *inner).poll_frame(cx));
        if let Some((boundaries, ended)) = watch {
            let at_end = match &polled {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        boundaries.feed(data);
                    }
                    inner.is_end_stream()
                }
                // A broken body is recorded as cut off already.
                Some(Err(_)) => false,
                None => true,
            };
            if at_end {
                ended.store(boundaries.mid_event(), Ordering::Relaxed);
            }
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::sse::EventScanner;

    /// The verdict read off the whole stream at once: drop a leading BOM, cut off every
    /// complete event, and look for a line in what is left that is not a comment.
    fn reference(data: &[u8]) -> bool {
        let mut rest = data.strip_prefix(BOM).unwrap_or(data).to_vec();
        if rest.ends_with(b"\r") {
            // At the end of the stream a last `\r` ends its line.
            rest.push(b'\n');
        }
        while let Some(end) = EventScanner::default().scan(&rest) {
            rest.drain(..end);
        }
        rest.split(|&b| b == b'\r' || b == b'\n')
            .any(|line| !line.is_empty() && !line.starts_with(b":"))
    }

    fn fed_in(pieces: &[&[u8]]) -> bool {
        let mut boundaries = EventBoundaries::default();
        for piece in pieces {
            boundaries.feed(piece);
        }
        boundaries.mid_event()
    }

    /// The verdict with the stream cut into two pieces at every position, and into three at
    /// every pair of positions, always agreeing with the verdict fed whole.
    fn at_every_split(data: &[u8]) -> bool {
        let whole = fed_in(&[data]);
        for i in 0..=data.len() {
            assert_eq!(
                fed_in(&[&data[..i], &data[i..]]),
                whole,
                "{data:?} split at {i}"
            );
            for j in i..=data.len() {
                let pieces = [&data[..i], &data[i..j], &data[j..]];
                assert_eq!(fed_in(&pieces), whole, "{data:?} split at {i} and {j}");
            }
        }
        whole
    }

    #[test]
    fn a_stream_ending_on_a_blank_line_is_whole() {
        for data in [
            &b""[..],
            b"data: a\n\n",
            b"data: a\r\n\r\n",
            b"data: a\r\r",
            b"id: 1\nevent: message\ndata: {\"x\":1}\n\ndata: b\n\n",
            b"\xEF\xBB\xBFdata: a\n\n",
            b"retry: 10\n\n",
        ] {
            assert!(!at_every_split(data), "{data:?}");
        }
    }

    #[test]
    fn a_stream_ending_inside_an_event_is_cut() {
        for data in [
            &b"data: a"[..],
            b"data: a\n",
            b"data: a\r\n",
            b"data: a\r",
            b"data: a\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"res",
            b"data: a\n\nid: 2\n",
            b"data: a\n\nretry: 5\n",
            b": ping\ndata: a\n",
            b"data: a\n: ping\n",
            // A second BOM is not dropped: the line it starts is a field a client ignores.
            b"\xEF\xBB\xBF\xEF\xBB\xBF: c\n",
            // The start of a BOM that never completed.
            b"\xEF\xBB",
            b"\xEF\xBBdata: a\n\nx",
        ] {
            assert!(at_every_split(data), "{data:?}");
        }
    }

    #[test]
    fn a_trailing_comment_leaves_nothing_unsent() {
        for data in [
            &b": keep-alive"[..],
            b": keep-alive\n",
            b"data: a\n\n: ping",
            b"data: a\n\n: ping\r\n: pong\r",
            b"\xEF\xBB\xBF: primed\n",
            b"\xEF\xBB\xBF",
        ] {
            assert!(!at_every_split(data), "{data:?}");
        }
    }

    #[test]
    fn crlf_split_across_pieces_is_one_line_end() {
        // `\r` then `\n` in the next piece: one line end, so no blank line and the event is
        // still open; a real blank line after it closes the event.
        assert!(fed_in(&[b"data: a\r", b"\n"]));
        assert!(!fed_in(&[b"data: a\r", b"\n", b"\r", b"\n"]));
        assert!(!fed_in(&[b"data: a\r", b"\r"]));
        assert!(fed_in(&[b"data: a\r", b"\ndata: b"]));
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_reading_the_whole_stream(
            data in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(b'\r'),
                    proptest::strategy::Just(b'\n'),
                    proptest::strategy::Just(b'a'),
                    proptest::strategy::Just(b':'),
                    proptest::strategy::Just(0xEF),
                    proptest::strategy::Just(0xBB),
                    proptest::strategy::Just(0xBF),
                ],
                0..48,
            ),
            cuts in proptest::collection::vec(0usize..48, 0..4),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for cut in cuts {
                pieces.push(&data[start..cut]);
                start = cut;
            }
            pieces.push(&data[start..]);
            proptest::prop_assert_eq!(fed_in(&pieces), reference(&data), "{:?}", pieces);
        }
    }
}
