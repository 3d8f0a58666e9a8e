//! Arbitrary bytes, cut into arbitrary chunks, through the gateway's SSE rewriter.
//!
//! Input layout: see `gatehouse_fuzz::sse::Input` (flags, size limit, chunk lengths, stream).
//!
//! Asserts, besides "never panics":
//! * Pass-through: with a transform that never rewrites, a stream that is already in the
//!   form the rewriter emits (valid UTF-8, no CR, no leading BOM) comes out byte for byte: its
//!   complete events, then only the complete `retry:` lines of an unfinished last event (a
//!   prefix of the events when the stream failed).
//! * Any stream that did not fail, with that transform, reads the same to a client before and
//!   after (events, types, ids, retries; `client_effects`).
//! * A body error ends the stream with an error, and nothing follows an error.
//! * With the gateway's `tools/list` filter: when the filter rewrote nothing, the output is the
//!   same as with the pass-through transform; with no size limit, the output does not depend
//!   on how the input was cut into chunks.
//! * `event_end` finds a proper, blank-line-terminated prefix.
#![no_main]

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use gatehouse::gateway::sse::{self, Transform};
use gatehouse_fuzz::{
    sse::{Input, client_effects, run},
    tool_filter,
};
use libfuzzer_sys::fuzz_target;

fn counting(inner: Transform, count: Arc<AtomicUsize>) -> Transform {
    Box::new(move |data: &[u8]| {
        let out = inner(data);
        if out.is_some() {
            count.fetch_add(1, Ordering::Relaxed);
        }
        out
    })
}

fn none() -> Transform {
    Box::new(|_: &[u8]| None)
}

/// Already in the form `rewrite_stream` emits, so there is nothing to normalise.
fn is_plain(stream: &[u8]) -> bool {
    std::str::from_utf8(stream).is_ok()
        && !stream.contains(&b'\r')
        && !stream.starts_with(b"\xEF\xBB\xBF")
}

/// How many bytes of `stream` the events a client dispatches take up.
fn complete_events_len(stream: &[u8]) -> usize {
    let mut at = 0;
    while let Some(end) = sse::event_end(&stream[at..]) {
        at += end;
    }
    at
}

/// The complete `retry:` lines of a stream without CRs, each ended by `\n`.
fn retry_lines(stream: &[u8]) -> Vec<u8> {
    let complete = stream
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    stream[..complete]
        .split(|&b| b == b'\n')
        .filter(|line| line.starts_with(b"retry:"))
        .flat_map(|line| line.iter().copied().chain([b'\n']))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::split(data) else {
        return;
    };

    if let Some(end) = sse::event_end(&input.stream) {
        assert!(end > 0 && end <= input.stream.len());
        let event = &input.stream[..end];
        assert!(event.ends_with(b"\n") || event.ends_with(b"\r"));
        // Cut just after it, the event is still found, unless it ends in a lone CR that
        // might yet be the first half of a CRLF.
        let again = sse::event_end(event);
        assert!(
            again == Some(end) || (again.is_none() && event.ends_with(b"\r")),
            "event_end is not stable"
        );
    }

    // Pass-through: an identity transform hands back what came in.
    let plain = run(&input.pieces, none(), input.max_event);
    if is_plain(&input.stream) {
        let (events, unfinished) = input.stream.split_at(complete_events_len(&input.stream));
        if plain.failed {
            assert!(
                events.starts_with(&plain.bytes),
                "pass-through changed bytes"
            );
        } else {
            // The complete events byte for byte; of an unfinished last event, which clients
            // never dispatch, only its complete `retry:` lines.
            let mut expected = events.to_vec();
            expected.extend(retry_lines(unfinished));
            assert_eq!(plain.bytes, expected, "pass-through changed bytes");
        }
    }
    if !plain.failed {
        assert_eq!(
            client_effects(&plain.bytes),
            client_effects(&input.stream),
            "pass-through changed what a client reads"
        );
    }
    if input.fails {
        assert!(
            plain.failed,
            "a broken body must end the stream with an error"
        );
    }

    // The gateway's filter.
    let rewrites = Arc::new(AtomicUsize::new(0));
    let filtered = run(
        &input.pieces,
        counting(tool_filter(), rewrites.clone()),
        input.max_event,
    );
    if rewrites.load(Ordering::Relaxed) == 0 {
        assert_eq!(filtered.failed, plain.failed);
        assert_eq!(filtered.bytes, plain.bytes);
    }

    // Without a size limit, chunk boundaries must not matter.
    if input.max_event == usize::MAX {
        let at_once = run(&input.whole(), tool_filter(), usize::MAX);
        assert_eq!(at_once.failed, filtered.failed);
        assert_eq!(
            at_once.bytes, filtered.bytes,
            "filtered output depends on chunk boundaries"
        );
    }
});
