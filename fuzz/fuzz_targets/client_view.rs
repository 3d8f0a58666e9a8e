//! Does every event a client reads go through the transform?
//!
//! The input is an upstream SSE body (layout: `gatehouse_fuzz::sse::Input`; the size limit
//! byte is ignored). It goes through `rewrite_stream` with a transform that replaces every
//! payload with a marker, and the output is read back the way the WHATWG event-stream
//! algorithm reads it (`client_effects`). Asserts: every event a client dispatches carries the
//! marker. An event that reaches a client without passing through the transform is an event
//! that no `tools/list` filter, response guardrail or tool pin has seen.
//!
//! This is a security oracle, not a robustness check: it compares the rewriter's framing of
//! the bytes with a client's.
#![no_main]

use gatehouse::gateway::sse::Transform;
use gatehouse_fuzz::sse::{Input, client_event_data, run};
use libfuzzer_sys::fuzz_target;

const MARKER: &str = r#"{"checked":true}"#;

fn marker() -> Transform {
    Box::new(|_: &[u8]| Some(MARKER.as_bytes().to_vec()))
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::split(data) else {
        return;
    };
    // Whatever came out before an error reached the client too, so it is checked either way.
    let output = run(&input.pieces, marker(), usize::MAX);
    for event in client_event_data(&output.bytes) {
        assert_eq!(
            event,
            MARKER,
            "a client reads an event the transform never saw; output {:?}",
            String::from_utf8_lossy(&output.bytes)
        );
    }
});
