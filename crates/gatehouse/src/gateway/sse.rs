//! Server-sent events, rewritten event by event without buffering whole streams.
//!
//! Events whose data the transform leaves alone are passed through byte for byte, so event
//! ids, `retry:` fields, comments and priming events survive and clients can resume.

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use http_body::Body as HttpBody;
use http_body_util::BodyExt;

pub use crate::upstream::BoxError;

/// Rewrites an event's joined `data` payload; `None` keeps the event unchanged.
pub type Transform = Box<dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync>;

/// The index just past the first blank line (the end of an event), if the buffer holds one.
/// Lines end in `\r\n`, `\n` or `\r`, as the SSE specification allows.
pub fn event_end(buf: &[u8]) -> Option<usize> {
    EventScanner::default().scan(buf)
}

/// Finds event ends in a buffer that grows at its end, remembering how far it has looked, so
/// an event arriving in many small chunks is scanned once rather than once per chunk (an
/// upstream dripping a large event would otherwise cost quadratic time).
#[derive(Debug, Clone)]
pub struct EventScanner {
    /// Bytes of the buffer already examined without finding an event end.
    scanned: usize,
    at_line_start: bool,
    /// Bytes examined over the scanner's life: what linear framing is measured by.
    examined: u64,
}

impl Default for EventScanner {
    fn default() -> Self {
        Self {
            scanned: 0,
            at_line_start: true,
            examined: 0,
        }
    }
}

impl EventScanner {
    /// The end of the first event in `buf`, which must be the buffer of the previous calls
    /// with bytes appended. After an event is found its bytes are to be removed from the front
    /// of the buffer; the scanner then starts over at the new front.
    pub fn scan(&mut self, buf: &[u8]) -> Option<usize> {
        let mut i = self.scanned;
        let found = loop {
            if i >= buf.len() {
                break None;
            }
            let terminator = match buf[i] {
                b'\r' if buf.get(i + 1) == Some(&b'\n') => 2,
                // A lone `\r` at the very end may be the first half of `\r\n`: wait for more.
                b'\r' if i + 1 == buf.len() => break None,
                b'\r' | b'\n' => 1,
                _ => 0,
            };
            if terminator == 0 {
                self.at_line_start = false;
                i += 1;
                continue;
            }
            i += terminator;
            if self.at_line_start {
                break Some(i);
            }
            self.at_line_start = true;
        };
        self.examined += (i - self.scanned) as u64;
        match found {
            Some(end) => {
                self.scanned = 0;
                self.at_line_start = true;
                Some(end)
            }
            None => {
                self.scanned = i;
                None
            }
        }
    }

    /// Forgets the position, for a buffer whose front changed in another way (BOM dropped).
    pub fn restart(&mut self) {
        self.scanned = 0;
        self.at_line_start = true;
    }

    pub fn bytes_examined(&self) -> u64 {
        self.examined
    }
}

/// Lines as the SSE specification reads them: ended by CRLF, LF or a lone CR.
fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' => {
                lines.push(&text[start..i]);
                i += if bytes.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            b'\n' => {
                lines.push(&text[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// Applies `transform` to one complete event (including its terminating blank line).
///
/// The event is read exactly as a client reads it — invalid UTF-8 becomes U+FFFD, any of the
/// three line endings ends a line — and when that reading differs from the raw bytes the event
/// is re-emitted in the normalised form, so the client receives precisely what was checked.
pub fn rewrite_event(event: &[u8], transform: &Transform) -> Option<Bytes> {
    let text = String::from_utf8_lossy(event);
    let normalised = matches!(text, std::borrow::Cow::Owned(_)) || text.contains('\r');
    let lines = split_lines(&text);
    let is_data = |line: &str| {
        line.strip_prefix("data")
            .is_some_and(|v| v.is_empty() || v.starts_with(':'))
    };
    let data: Vec<&str> = lines
        .iter()
        .filter(|l| is_data(l))
        .map(|line| {
            let value = &line[4..];
            let value = value.strip_prefix(':').unwrap_or(value);
            value.strip_prefix(' ').unwrap_or(value)
        })
        .collect();
    if data.is_empty() {
        return normalised.then(|| Bytes::from(normalise(&lines)));
    }
    let payload = data.join("\n");
    let replaced = match transform(payload.as_bytes()) {
        Some(replaced) => replaced,
        None if normalised => payload.into_bytes(),
        None => return None,
    };
    let mut out = String::with_capacity(event.len());
    // Keep only what a client acts on besides data: comments and the known fields. A line a
    // client ignores could otherwise be moved to where it reads differently (a line starting
    // with a BOM, emitted first, would lose the BOM at the client and become `data`).
    for line in lines.iter().filter(|l| is_kept_field(l)) {
        out.push_str(line);
        out.push('\n');
    }
    for line in String::from_utf8_lossy(&replaced).split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Some(Bytes::from(out))
}

/// Comments and the fields other than `data` that a client acts on.
fn is_kept_field(line: &str) -> bool {
    if line.starts_with(':') {
        return true;
    }
    let name = line.split(':').next().unwrap_or("");
    matches!(name, "event" | "id" | "retry")
}

fn normalise(lines: &[&str]) -> String {
    let mut out = String::new();
    for line in lines.iter().filter(|l| is_kept_field(l)) {
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// The complete `retry:` lines of an unfinished event (its last line, unended, is not one).
fn retry_lines(unfinished: &[u8]) -> Vec<u8> {
    let complete = unfinished
        .iter()
        .rposition(|&b| b == b'\n' || b == b'\r')
        .map_or(0, |i| i + 1);
    let mut out = Vec::new();
    for line in unfinished[..complete].split(|&b| b == b'\n' || b == b'\r') {
        if line.starts_with(b"retry:") {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
    out
}

/// Wraps an upstream SSE body; `max_event` bounds how much one event may buffer.
pub fn rewrite_stream<B>(
    body: B,
    transform: Transform,
    max_event: usize,
) -> impl Stream<Item = Result<Bytes, BoxError>> + Send
where
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    struct State<B> {
        body: B,
        buf: BytesMut,
        /// Still before the first byte: a leading BOM is dropped, as clients drop it.
        at_start: bool,
        /// The one leading BOM a client drops has been dropped here too.
        bom_dropped: bool,
        scanner: EventScanner,
        transform: Transform,
        max_event: usize,
        finished: bool,
    }
    let state = State {
        body,
        buf: BytesMut::new(),
        scanner: EventScanner::default(),
        at_start: true,
        bom_dropped: false,
        transform,
        max_event,
        finished: false,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        loop {
            if st.at_start {
                // A client drops exactly one BOM at the start of what it receives; a second
                // one stays, and makes the first line one it ignores (`\u{feff}data: …`).
                if !st.bom_dropped && st.buf.starts_with(BOM) {
                    let _ = st.buf.split_to(BOM.len());
                    st.bom_dropped = true;
                    st.scanner.restart();
                }
                let undecided = st.buf.is_empty() || BOM.starts_with(&st.buf);
                if st.finished || !undecided {
                    st.at_start = false;
                    if st.bom_dropped && st.buf.starts_with(BOM) {
                        // The client would drop this one as the leading BOM of the output and
                        // then read the line as the rewriter did not; give it one to drop.
                        return Some((Ok(Bytes::from_static(BOM)), st));
                    }
                }
            }
            if !st.at_start
                && let Some(end) = st.scanner.scan(&st.buf)
            {
                let event = st.buf.split_to(end).freeze();
                let out = rewrite_event(&event, &st.transform).unwrap_or(event);
                return Some((Ok(out), st));
            }
            if st.finished {
                if st.buf.ends_with(b"\r") {
                    // At the end of the stream a final CR is a line end (it cannot be half of
                    // a CRLF any more): complete the event so it is judged like any other.
                    st.buf.extend_from_slice(b"\n");
                    if st.scanner.clone().scan(&st.buf).is_some() {
                        continue;
                    }
                }
                // An event without its closing blank line is never dispatched by a client, and
                // nothing in it was checked: only its complete `retry:` lines, which a client
                // applies as it reads them, are passed on (the request is recorded as cut off).
                let retries = retry_lines(&st.buf);
                st.buf.clear();
                if retries.is_empty() {
                    return None;
                }
                return Some((Ok(Bytes::from(retries)), st));
            }
            if st.buf.len() > st.max_event {
                st.finished = true;
                st.buf.clear();
                let err: BoxError = "upstream SSE event exceeds the size limit".into();
                return Some((Err(err), st));
            }
            match st.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        st.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(err)) => {
                    st.finished = true;
                    st.buf.clear();
                    return Some((Err(err.into()), st));
                }
                None => st.finished = true,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use http_body_util::StreamBody;
    use hyper::body::Frame;

    fn upper() -> Transform {
        Box::new(|data: &[u8]| {
            let text = std::str::from_utf8(data).ok()?;
            text.contains("x").then(|| text.to_uppercase().into_bytes())
        })
    }

    #[test]
    fn finds_event_ends_with_every_line_ending() {
        assert_eq!(event_end(b"data: a\n\nrest"), Some(9));
        assert_eq!(event_end(b"data: a\r\n\r\n"), Some(11));
        assert_eq!(event_end(b"data: a\r\rnext"), Some(9));
        assert_eq!(event_end(b"data: a\n"), None);
        assert_eq!(event_end(b"data: a\r"), None);
        assert_eq!(event_end(b"\n"), Some(1));
    }

    /// Event ends found by scanning a buffer that grows chunk by chunk, cutting each event off
    /// the front as the stream does.
    fn incremental_ends(data: &[u8], chunk: usize) -> (Vec<usize>, u64) {
        let mut scanner = EventScanner::default();
        let mut buf = Vec::new();
        let mut consumed = 0;
        let mut ends = Vec::new();
        for piece in data.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(end) = scanner.scan(&buf) {
                consumed += end;
                ends.push(consumed);
                buf.drain(..end);
            }
        }
        (ends, scanner.bytes_examined())
    }

    /// The same, rescanning each time from the front with `event_end`.
    fn whole_buffer_ends(data: &[u8], chunk: usize) -> Vec<usize> {
        let mut buf = Vec::new();
        let mut consumed = 0;
        let mut ends = Vec::new();
        for piece in data.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(end) = event_end(&buf) {
                consumed += end;
                ends.push(consumed);
                buf.drain(..end);
            }
        }
        ends
    }

    #[test]
    fn a_dripped_event_is_scanned_in_linear_time() {
        // One 1 MiB event arriving 16 bytes at a time: 65 536 scans of a growing buffer.
        let mut event = b"data: ".to_vec();
        event.resize(1 << 20, b'a');
        event.extend_from_slice(b"\n\n");
        let (ends, examined) = incremental_ends(&event, 16);
        assert_eq!(ends, vec![event.len()]);
        assert!(
            examined <= 2 * event.len() as u64,
            "{examined} bytes examined to frame a {} byte event",
            event.len()
        );
    }

    proptest::proptest! {
        #[test]
        fn incremental_framing_finds_the_same_events(
            data in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(b'\r'),
                    proptest::strategy::Just(b'\n'),
                    proptest::strategy::Just(b'a'),
                    proptest::strategy::Just(b':'),
                ],
                0..200,
            ),
            chunk in 1usize..17,
        ) {
            let (ends, examined) = incremental_ends(&data, chunk);
            proptest::prop_assert_eq!(ends, whole_buffer_ends(&data, chunk));
            proptest::prop_assert!(examined <= data.len() as u64);
        }
    }

    #[test]
    fn untouched_events_keep_their_bytes_and_touched_keep_ids() {
        let transform = upper();
        assert!(rewrite_event(b"id: 7\ndata: abc\n\n", &transform).is_none());
        let out = rewrite_event(b"id: 7\nevent: message\ndata: x1\n\n", &transform).unwrap();
        assert_eq!(&out[..], b"id: 7\nevent: message\ndata: X1\n\n");
        assert!(rewrite_event(b"retry: 1000\n\n", &transform).is_none());
    }

    #[test]
    fn events_are_read_as_clients_read_them() {
        let transform = upper();
        // A lone CR ends a line: the client sees two data lines, and so must the filter.
        let out = rewrite_event(b"data: a\rdata: x\n\n", &transform).unwrap();
        assert_eq!(&out[..], b"data: A\ndata: X\n\n");
        // Invalid UTF-8 is read as U+FFFD, and the normalised form is what is sent on.
        let out = rewrite_event(b"data: \xFFok\n\n", &transform).unwrap();
        assert_eq!(std::str::from_utf8(&out).unwrap(), "data: \u{fffd}ok\n\n");
        // Lines a client ignores are not carried into a rewritten event, so none of them can
        // end up first in the output (where a leading BOM would be dropped by the client).
        let out =
            rewrite_event(b"\xEF\xBB\xBFdata: hidden\nid: 4\ndata: x\n\n", &transform).unwrap();
        assert_eq!(&out[..], b"id: 4\ndata: X\n\n");
        // Plain events still pass byte for byte.
        assert!(rewrite_event(b"id: 1\ndata: ok\n\n", &transform).is_none());
    }

    #[tokio::test]
    async fn a_leading_bom_is_dropped_like_clients_drop_it() {
        let stream = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(Frame::data(
            Bytes::from(&b"\xEF\xBB\xBFdata: x\n\n"[..]),
        ))]);
        let out: Vec<Bytes> = rewrite_stream(StreamBody::new(stream), upper(), 1024)
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(out.concat(), b"data: X\n\n");
    }

    async fn run(chunks: Vec<&'static [u8]>) -> Vec<u8> {
        let stream = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(c)))),
        );
        let out: Vec<Bytes> = rewrite_stream(StreamBody::new(stream), upper(), 1024)
            .map(|r| r.unwrap())
            .collect()
            .await;
        out.concat()
    }

    #[tokio::test]
    async fn a_final_cr_ends_the_last_event_and_it_is_judged() {
        assert_eq!(run(vec![b"data: x\r\r"]).await, b"data: X\n\n");
        assert_eq!(run(vec![b"data: x\n\r"]).await, b"data: X\n\n");
        // An event the stream never finished is not dispatched by clients: of its lines only
        // the complete `retry:` ones pass (a client applies them as it reads them); unchecked
        // data never does, even undispatched.
        assert_eq!(
            run(vec![b"data: ok\n\nretry: 5\ndata: x"]).await,
            b"data: ok\n\nretry: 5\n"
        );
        assert_eq!(
            run(vec![
                b"data: ok\n\nid: 3\r\nretry: 5\rdata: x\n: c\nretry: 6"
            ])
            .await,
            b"data: ok\n\nretry: 5\n"
        );
        assert_eq!(run(vec![b"data: ok\n\ndata: x\n"]).await, b"data: ok\n\n");
    }

    #[tokio::test]
    async fn only_a_bom_at_the_very_start_is_dropped() {
        assert_eq!(
            run(vec![b"\xEF", b"\xBB\xBFdata: x\n\n"]).await,
            b"data: X\n\n"
        );
        let later = run(vec![b"\n", b"\xEF\xBB\xBFdata: x\n\n"]).await;
        assert!(later.ends_with(b"\xEF\xBB\xBFdata: x\n\n"), "{later:?}");
    }

    #[tokio::test]
    async fn a_second_leading_bom_still_hides_the_first_line_from_clients() {
        // A client drops the first BOM and ignores the line `\u{feff}data: x`; the output must
        // keep a BOM for it to drop, or that line becomes an event.
        let out = run(vec![b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n"]).await;
        assert_eq!(out, b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n");
        let split = run(vec![
            b"\xEF\xBB\xBF\xEF",
            b"\xBB",
            b"\xBFdata: x\n\ndata: y\n\n",
        ])
        .await;
        assert_eq!(split, b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\ndata: y\n\n");
        // Only the first line is hidden: data after it in the same event is still judged.
        let out = run(vec![b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\ndata: x\n\n"]).await;
        assert_eq!(out, b"\xEF\xBB\xBFdata: X\n\n");
    }

    #[tokio::test]
    async fn events_split_across_chunks_are_reassembled() {
        let chunks = [
            "id: 1\nda",
            "ta: x",
            "y\n",
            "\n: comment\n\nid: 2\ndata: ab",
            "c\n\n",
        ];
        let stream = futures_util::stream::iter(
            chunks.map(|c| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(c)))),
        );
        let out: Vec<Bytes> = rewrite_stream(StreamBody::new(stream), upper(), 1024)
            .map(|r| r.unwrap())
            .collect()
            .await;
        let joined: Vec<u8> = out.concat();
        assert_eq!(
            String::from_utf8(joined).unwrap(),
            "id: 1\ndata: XY\n\n: comment\n\nid: 2\ndata: abc\n\n"
        );
    }

    #[tokio::test]
    async fn oversized_events_end_the_stream_with_an_error() {
        let big = Bytes::from(vec![b'a'; 100]);
        let stream =
            futures_util::stream::iter([Ok::<_, std::convert::Infallible>(Frame::data(big))]);
        let out: Vec<_> = rewrite_stream(StreamBody::new(stream), upper(), 10)
            .collect()
            .await;
        assert!(out.last().unwrap().is_err());
    }
}
