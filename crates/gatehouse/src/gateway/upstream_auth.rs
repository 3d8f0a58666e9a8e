//! The headers one call carries to the upstream beyond what is forwarded (ADR 0006 §5–6): a
//! token fetched for the server. Resolved before the call is routed, so a call that cannot
//! get its token is answered without reaching the upstream.

use http::{HeaderName, HeaderValue, header};

use crate::{
    context::AppState, error::GatewayError, snapshot::ServerEntry,
    snapshot::upstream_auth::UpstreamAuth,
};

/// Headers for this call: none, or the upstream token (the static credential goes with the
/// route itself).
pub async fn injected_headers(
    state: &AppState,
    server: &ServerEntry,
) -> Result<Vec<(HeaderName, HeaderValue)>, GatewayError> {
    let mut headers = Vec::new();
    if let UpstreamAuth::ClientCredentials(auth) = &server.auth {
        let value = state.upstream_tokens.authorization(auth).await?;
        headers.push((header::AUTHORIZATION, value));
    }
    Ok(headers)
}
