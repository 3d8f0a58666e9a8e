//! JSON from other servers: identity providers and trusted issuers (discovery documents,
//! key sets, token responses). Through the upstream client (its TLS roots and timeouts),
//! bounded in size and time; errors are text for the log, never for the caller.

use bytes::Bytes;
use http::header;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::Value;
use std::time::Instant;

use crate::AppState;

const MAX_DOCUMENT: usize = 1024 * 1024;
/// Discovery documents and key sets are refreshed at most this often…
const REFRESH_SECS: u64 = 3600;
/// …and fetched again early (an unknown `kid`) at most this often, so forged `kid`s cannot
/// turn into a flood of requests to the other server.
const MIN_REFETCH_SECS: u64 = 30;

/// Whether something fetched at `fetched` should be fetched again (`force`: it lacked a key).
pub fn due(fetched: Instant, force: bool) -> bool {
    let age = fetched.elapsed().as_secs();
    age >= REFRESH_SECS || (force && age >= MIN_REFETCH_SECS)
}

pub fn get(url: &str) -> Result<http::Request<Full<Bytes>>, String> {
    http::Request::get(url)
        .header(header::ACCEPT, "application/json")
        .body(Full::default())
        .map_err(|e| e.to_string())
}

/// Sends `request` and reads a JSON answer of at most 1 MiB; anything but 2xx is an error.
pub async fn json(state: &AppState, request: http::Request<Full<Bytes>>) -> Result<Value, String> {
    let uri = request.uri().to_string();
    let response = state
        .upstream
        .send(request)
        .await
        .map_err(|e| format!("{uri}: {e}"))?;
    let status = response.status();
    let read = Limited::new(response.into_body(), MAX_DOCUMENT).collect();
    let body = tokio::time::timeout(state.config.gateway.upstream_read_timeout, read)
        .await
        .map_err(|_| format!("{uri}: the body did not arrive in time"))?
        .map_err(|_| format!("{uri}: unreadable or too large"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("{uri}: HTTP {status}"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("{uri}: {e}"))
}

pub async fn get_json(state: &AppState, url: &str) -> Result<Value, String> {
    json(state, get(url)?).await
}
