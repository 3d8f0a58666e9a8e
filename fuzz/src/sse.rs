//! Server-sent events for the fuzz targets: a fuzz input cut into body frames, a driver for
//! `rewrite_stream`, and a reference client.

use std::sync::OnceLock;

use bytes::Bytes;
use futures_util::StreamExt;
use gatehouse::gateway::sse::{self, BoxError, Transform};
use http_body_util::StreamBody;

type Frame = http_body::Frame<Bytes>;

/// A body frame as the upstream delivers it: data, trailers, or a transport error.
#[derive(Debug, Clone)]
pub enum Piece {
    Data(Bytes),
    Trailers,
    Fail,
}

/// A fuzz input read as an upstream SSE body.
///
/// Layout: byte 0 = flags (bit 0: end the body with an error frame; bit 1: add a trailers
/// frame; bits 2-7: how many chunk-length bytes follow), byte 1 = the event size limit
/// (0 = unlimited, otherwise `n * 8` bytes), then the chunk lengths (one byte each), then the
/// stream itself; the bytes left over after the last length form a final chunk.
#[derive(Debug)]
pub struct Input {
    pub pieces: Vec<Piece>,
    pub stream: Vec<u8>,
    pub max_event: usize,
    pub fails: bool,
}

impl Input {
    pub fn split(data: &[u8]) -> Option<Input> {
        let (&flags, rest) = data.split_first()?;
        let (&limit, rest) = rest.split_first()?;
        let count = usize::from(flags >> 2).min(rest.len());
        let (lengths, stream) = rest.split_at(count);
        let mut pieces = Vec::new();
        let mut at = 0;
        for &len in lengths {
            let end = (at + usize::from(len)).min(stream.len());
            pieces.push(Piece::Data(Bytes::copy_from_slice(&stream[at..end])));
            at = end;
        }
        if at < stream.len() || pieces.is_empty() {
            pieces.push(Piece::Data(Bytes::copy_from_slice(&stream[at..])));
        }
        if flags & 2 != 0 {
            pieces.push(Piece::Trailers);
        }
        let fails = flags & 1 != 0;
        if fails {
            pieces.push(Piece::Fail);
        }
        let max_event = if limit == 0 {
            usize::MAX
        } else {
            usize::from(limit) * 8
        };
        Some(Input {
            pieces,
            stream: stream.to_vec(),
            max_event,
            fails,
        })
    }

    /// The same stream in a single data frame (and the same error at the end, if any).
    pub fn whole(&self) -> Vec<Piece> {
        let mut pieces = vec![Piece::Data(Bytes::copy_from_slice(&self.stream))];
        if self.fails {
            pieces.push(Piece::Fail);
        }
        pieces
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

/// What `rewrite_stream` produced: the bytes before the first error, and whether one came.
#[derive(Debug)]
pub struct Output {
    pub bytes: Vec<u8>,
    pub failed: bool,
}

#[derive(Debug)]
struct Broken;

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("broken upstream")
    }
}

impl std::error::Error for Broken {}

/// Runs `rewrite_stream` over `pieces` to the end. Panics if anything follows an error.
pub fn run(pieces: &[Piece], transform: Transform, max_event: usize) -> Output {
    let frames: Vec<Result<Frame, Broken>> = pieces
        .iter()
        .map(|piece| match piece {
            Piece::Data(bytes) => Ok(Frame::data(bytes.clone())),
            Piece::Trailers => Ok(Frame::trailers(http::HeaderMap::new())),
            Piece::Fail => Err(Broken),
        })
        .collect();
    let body = StreamBody::new(futures_util::stream::iter(frames));
    runtime().block_on(async move {
        let items: Vec<Result<Bytes, BoxError>> = sse::rewrite_stream(body, transform, max_event)
            .collect()
            .await;
        let mut out = Output {
            bytes: Vec::new(),
            failed: false,
        };
        for item in items {
            assert!(!out.failed, "the stream went on after an error");
            match item {
                Ok(chunk) => out.bytes.extend_from_slice(&chunk),
                Err(_) => out.failed = true,
            }
        }
        out
    })
}

/// What a client acts on while reading an event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// An event dispatched: its type, data and the last event id at that point.
    Event {
        kind: String,
        data: String,
        id: String,
    },
    /// A `retry:` field with a valid number.
    Retry(String),
}

/// Reads `stream` as the WHATWG HTML "event stream interpretation" algorithm does: decoded as
/// UTF-8 with replacement, one leading BOM dropped, lines ended by CRLF, LF or a lone CR, `data`
/// fields joined with LF, an event dispatched at a blank line when its data buffer is not
/// empty. A last line without a terminator is incomplete and ignored, and so is an event
/// without its blank line when the stream ends.
pub fn client_effects(stream: &[u8]) -> Vec<Effect> {
    let text = String::from_utf8_lossy(stream);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut effects = Vec::new();
    let (mut data, mut kind, mut id) = (String::new(), String::new(), String::new());
    let mut rest = text;
    while let Some(end) = rest.find(['\r', '\n']) {
        let line = &rest[..end];
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
        if line.is_empty() {
            if !data.is_empty() {
                if data.ends_with('\n') {
                    data.pop();
                }
                let kind = if kind.is_empty() { "message" } else { &kind };
                effects.push(Effect::Event {
                    kind: kind.to_owned(),
                    data: std::mem::take(&mut data),
                    id: id.clone(),
                });
            }
            data.clear();
            kind.clear();
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "event" => value.clone_into(&mut kind),
            "id" if !value.contains('\0') => value.clone_into(&mut id),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                effects.push(Effect::Retry(value.to_owned()));
            }
            _ => {}
        }
    }
    effects
}

/// The data of every event a client dispatches from `stream`.
pub fn client_event_data(stream: &[u8]) -> Vec<String> {
    client_effects(stream)
        .into_iter()
        .filter_map(|effect| match effect {
            Effect::Event { data, .. } => Some(data),
            Effect::Retry(_) => None,
        })
        .collect()
}
