//! Reading, and after a refusal draining, the request body within its limits.

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, header};
use http_body_util::{BodyExt, Limited};

use crate::error::GatewayError;

/// A media-type check without lowercasing a copy of the header on every request.
pub(super) fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// Reads and discards an unread request body, within the body limit and 30 s; a body that is
/// larger, slower or broken ends the connection when it is dropped.
pub(super) async fn drain(body: Body, max: usize) {
    let read = Limited::new(body, max).collect();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), read).await;
}

pub(super) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

pub(super) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    max: usize,
) -> Result<Bytes, GatewayError> {
    if declared_length(headers).is_some_and(|len| len > max as u64) {
        return Err(GatewayError::PayloadTooLarge { limit: max });
    }
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(GatewayError::PayloadTooLarge { limit: max })
        }
        Err(err) if crate::edge::body::is_timeout(&*err) => Err(GatewayError::RequestBodyTimeout),
        Err(_) => Err(GatewayError::InvalidRequest(
            "the request body could not be read".into(),
        )),
    }
}

#[cfg(test)]
mod media_type_tests {
    use super::starts_with_ignore_case;

    #[test]
    fn media_types_match_in_any_case_and_only_as_a_prefix() {
        assert!(starts_with_ignore_case(
            "Application/JSON; charset=utf-8",
            "application/json"
        ));
        assert!(starts_with_ignore_case(
            "TEXT/EVENT-STREAM",
            "text/event-stream"
        ));
        assert!(!starts_with_ignore_case(
            "application/jso",
            "application/json"
        ));
        assert!(!starts_with_ignore_case("text/plain", "application/json"));
        // A multi-byte character across the prefix's end must not panic.
        assert!(!starts_with_ignore_case(
            "application/jsoé",
            "application/json"
        ));
        assert!(!starts_with_ignore_case("", "text/event-stream"));
    }
}
