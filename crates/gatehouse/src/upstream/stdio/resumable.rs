//! SEP-1699 for the streams Gatehouse builds from a stdio child's output (ADR 0013).
//!
//! In a session that can resume (both the client and the child speak 2025-11-25 or later, and
//! the client accepts SSE), a request's answer is always an SSE stream: a priming event with
//! an id and a `retry` hint first, then one event per message, each with an id. A task of its
//! own (the pump) writes the call's messages to [`EventStreams`] as the child sends them, so
//! the client's connection is only a reader: it may close (Gatehouse closes a POST stream
//! that has waited `poll_after` for its answer — the spec's polling) or break, and the client
//! resumes with `GET` and `Last-Event-ID`, getting the events after that one and the rest as
//! they come. A disconnect is not a cancellation: the call goes on.

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, HeaderName, header};
use serde_json::Value;
use std::{collections::HashMap, collections::VecDeque, pin::Pin, sync::Arc, time::Duration};
use tokio::{sync::mpsc, time::Instant};

use super::supervisor::FromChild;
use crate::state::event_streams::{
    Attached, EventStreams, Following, StreamKey, event_id, parse_event_id,
};

const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
/// How often a pump whose call is silent checks that its stream is still kept.
const CHECK_KEPT: Duration = Duration::from_secs(30);
/// The first protocol version whose clients expect priming events and resume closed streams.
const RESUMABLE_SINCE: &str = "2025-11-25";

/// A boxed stream of SSE event bytes.
pub(super) type EventBytes = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// Whether a session opened with these versions (the client's request, the child's result)
/// resumes streams: both must be dates no earlier than 2025-11-25.
pub(super) fn resumable_versions(client: Option<&str>, child: Option<&str>) -> bool {
    let recent = |v: Option<&str>| {
        v.is_some_and(|v| {
            v.len() == 10
                && v.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                })
                && v >= RESUMABLE_SINCE
        })
    };
    recent(client) && recent(child)
}

/// Whether the client accepts an SSE answer.
pub(super) fn accepts_events(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/event-stream"))
}

/// The stream and event a `GET` asks to resume after, if it names one (`Some(None)`: it
/// names something that is no event id of Gatehouse's).
pub(super) fn last_event(headers: &HeaderMap) -> Option<Option<(String, u64)>> {
    let value = headers.get(LAST_EVENT_ID)?;
    Some(
        value
            .to_str()
            .ok()
            .and_then(|v| parse_event_id(v.trim()))
            .map(|(stream, n)| (stream.to_owned(), n)),
    )
}

/// The tools a kept stream's request called, by JSON-RPC id, for the response rules of the
/// `GET` that resumes it (empty when the request resumes nothing Gatehouse keeps).
pub fn resumed_tools(
    streams: &dyn EventStreams,
    server: &str,
    session: Option<&str>,
    headers: &HeaderMap,
) -> HashMap<String, String> {
    let (Some(session), Some(Some((stream, _)))) = (session, last_event(headers)) else {
        return HashMap::new();
    };
    let key = StreamKey {
        server: server.into(),
        session: session.into(),
        stream: stream.into(),
    };
    streams
        .tools(&key)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// The tool a request calls, by its JSON-RPC id.
pub(super) fn tools_of(message: &Value) -> Vec<(String, String)> {
    let calls_tool = message.get("method").and_then(Value::as_str) == Some("tools/call");
    match (
        calls_tool,
        message.get("id"),
        message.pointer("/params/name").and_then(Value::as_str),
    ) {
        (true, Some(id), Some(name)) => vec![(id.to_string(), name.to_owned())],
        _ => Vec::new(),
    }
}

/// Writes a call's messages to its kept stream until the response (or a crash's error) has
/// been written, the stream is no longer kept, or the child ended the call. `forget` tells
/// the child's multiplexer, when dropped, that nobody waits any more.
pub(super) async fn pump<F: Send>(
    streams: Arc<dyn EventStreams>,
    key: StreamKey,
    mut messages: mpsc::Receiver<FromChild>,
    forget: F,
) {
    let _forget = forget;
    let mut check = tokio::time::interval_at(Instant::now() + CHECK_KEPT, CHECK_KEPT);
    loop {
        tokio::select! {
            message = messages.recv() => {
                let Some(message) = message else {
                    streams.end(&key);
                    return;
                };
                let value = message.into_value();
                let last = value.get("method").is_none() && value.get("id").is_some();
                let kept = streams.append(&key, Bytes::from(value.to_string()), last);
                if kept.is_none() || last {
                    return;
                }
            }
            _ = check.tick() => {
                if !streams.kept(&key) {
                    return;
                }
            }
        }
    }
}

/// The priming event: the stream's first id, and how long a client waits before resuming.
pub(super) fn priming(stream: &str, retry: Duration) -> Bytes {
    Bytes::from(format!(
        "id: {}\nretry: {}\ndata: \n\n",
        event_id(stream, 0),
        retry.as_millis()
    ))
}

fn event(stream: &str, number: u64, message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(message.len() + stream.len() + 40);
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(event_id(stream, number).as_bytes());
    out.extend_from_slice(b"\nevent: message\ndata: ");
    out.extend_from_slice(message);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// A reader of a kept stream, attached until it ends: `first` (the priming event of a new
/// stream) if any, the events of `following`, then the rest as they are written, until the
/// last one — or, with `close_at`, until then (the POST stream of the spec's polling).
pub(super) fn reader(
    streams: Arc<dyn EventStreams>,
    key: StreamKey,
    first: Option<Bytes>,
    (after, following): (u64, Following),
    close_at: Option<Instant>,
) -> EventBytes {
    struct Reader {
        streams: Arc<dyn EventStreams>,
        key: StreamKey,
        first: Option<Bytes>,
        pending: VecDeque<(u64, Bytes)>,
        after: u64,
        complete: bool,
        changed: tokio::sync::watch::Receiver<u64>,
        close_at: Option<Instant>,
        _attached: Attached,
    }
    let state = Reader {
        _attached: Attached::new(streams.clone(), key.clone()),
        streams,
        key,
        first,
        after,
        pending: following.events.into(),
        complete: following.complete,
        changed: following.changed,
        close_at,
    };
    Box::pin(futures_util::stream::unfold(state, |mut st| async move {
        if let Some(first) = st.first.take() {
            return Some((first, st));
        }
        loop {
            if let Some((number, message)) = st.pending.pop_front() {
                st.after = number;
                let bytes = event(&st.key.stream, number, &message);
                return Some((bytes, st));
            }
            if st.complete {
                return None;
            }
            let close_at = st.close_at;
            let closed = async move {
                match close_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = st.changed.changed() => {
                    // The stream was dropped (expired, evicted): nothing more will come.
                    changed.ok()?;
                    let more = st.streams.read(&st.key, st.after).ok()?;
                    st.pending = more.events.into();
                    st.complete = more.complete;
                }
                () = closed => return None,
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::memory::MemoryEventStreams;
    use futures_util::StreamExt;
    use serde_json::json;

    #[test]
    fn only_sessions_of_2025_11_25_or_later_on_both_sides_resume() {
        assert!(resumable_versions(Some("2025-11-25"), Some("2025-11-25")));
        assert!(resumable_versions(Some("2026-07-28"), Some("2025-11-25")));
        assert!(!resumable_versions(Some("2025-06-18"), Some("2025-11-25")));
        assert!(!resumable_versions(Some("2025-11-25"), Some("2025-03-26")));
        assert!(!resumable_versions(Some("9999"), Some("2025-11-25")));
        assert!(!resumable_versions(None, Some("2025-11-25")));
    }

    #[test]
    fn a_last_event_id_of_gatehouses_names_its_stream_and_anything_else_does_not() {
        let mut headers = HeaderMap::new();
        assert_eq!(last_event(&headers), None);
        headers.insert(LAST_EVENT_ID, "abc_4".parse().unwrap());
        assert_eq!(last_event(&headers), Some(Some(("abc".into(), 4))));
        headers.insert(LAST_EVENT_ID, "0/12".parse().unwrap());
        assert_eq!(last_event(&headers), Some(None));
    }

    #[tokio::test]
    async fn a_closed_reader_loses_nothing_and_a_resumed_one_gets_the_rest() {
        let streams: Arc<dyn EventStreams> = Arc::new(MemoryEventStreams::default());
        let key = streams.open("files", "s1", vec![]).unwrap();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(pump(streams.clone(), key.clone(), rx, ()));
        let following = streams.attach(&key, 0).unwrap();
        let first = priming(&key.stream, Duration::from_millis(500));
        let mut post = reader(
            streams.clone(),
            key.clone(),
            Some(first.clone()),
            (0, following),
            Some(Instant::now() + Duration::from_millis(50)),
        );
        assert_eq!(post.next().await, Some(first));
        tx.send(FromChild::Message(
            json!({"jsonrpc": "2.0", "method": "notifications/progress"}),
        ))
        .await
        .unwrap();
        let progress = post.next().await.unwrap();
        assert!(progress.starts_with(format!("id: {}_1\n", key.stream).as_bytes()));
        assert_eq!(post.next().await, None, "closed before the answer");

        tx.send(FromChild::Message(
            json!({"jsonrpc": "2.0", "id": 7, "result": {}}),
        ))
        .await
        .unwrap();
        let following = streams.attach(&key, 1).unwrap();
        let mut resumed = reader(streams.clone(), key.clone(), None, (1, following), None);
        let answer = resumed.next().await.unwrap();
        let text = std::str::from_utf8(&answer).unwrap();
        assert!(
            text.starts_with(&format!("id: {}_2\n", key.stream)),
            "{text}"
        );
        assert!(text.contains(r#""id":7"#), "{text}");
        assert_eq!(
            resumed.next().await,
            None,
            "the answer completes the stream"
        );
    }
}
