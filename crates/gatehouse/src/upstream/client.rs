//! The pooled HTTP client for upstream MCP servers.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use rustls_pki_types::{CertificateDer, pem::PemObject};
use std::{path::PathBuf, sync::Arc, time::Duration};

use crate::{config::GatewayConfig, error::GatewayError};

#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("CA file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

impl UpstreamClient {
    pub fn new(config: &GatewayConfig) -> Result<Self, TlsSetupError> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.upstream_connect_timeout));
        connector.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(&config.upstream_ca_files)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(config.upstream_pool_max_idle)
            .pool_idle_timeout(config.upstream_pool_idle_timeout)
            // Without a timer the idle timeout is never checked and idle sockets stay open.
            .pool_timer(TokioTimer::new())
            .build(https);
        Ok(Self {
            client,
            timeout: config.upstream_timeout,
        })
    }

    /// Sends the request and waits for the response head, within the configured timeout.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, GatewayError> {
        match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "upstream request failed");
                if is_connect_timeout(&err) {
                    Err(GatewayError::UpstreamTimeout)
                } else {
                    Err(GatewayError::UpstreamUnavailable)
                }
            }
            Err(_) => Err(GatewayError::UpstreamTimeout),
        }
    }
}

/// The system's trust store plus any CA files the operator names (private upstream CAs).
pub fn tls_config(extra_ca_files: &[PathBuf]) -> Result<rustls::ClientConfig, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    if !native.errors.is_empty() {
        tracing::debug!(
            errors = native.errors.len(),
            "some system CA certificates could not be read"
        );
    }
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, "system CA certificates loaded");
    for path in extra_ca_files {
        let bad = |reason: String| TlsSetupError::CaFile {
            path: path.clone(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificates found".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn is_connect_timeout(err: &hyper_util::client::legacy::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// Connection-level headers that never cross a proxy (RFC 9110 §7.6.1).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Headers named in `Connection:` are hop-by-hop for this message too (RFC 9110 §7.6.1).
fn connection_tokens(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect()
}

/// What a client says about where the request came from. Gatehouse does not pass it on: the
/// upstream would believe a forged address (Gatehouse resolves the caller itself, from the
/// trusted proxies only).
fn is_forwarding(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "forwarded"
            | "x-forwarded-for"
            | "x-forwarded-host"
            | "x-forwarded-proto"
            | "x-forwarded-port"
            | "x-real-ip"
    )
}

/// The documented name of the identity assertion's header (ADR 0006 §6).
pub const IDENTITY_HEADER_DEFAULT: &str = "x-gatehouse-identity";

/// Request headers to forward: everything but hop-by-hop headers (fixed and those `Connection`
/// names), forwarding headers, the client's credentials (never passed upstream), what the
/// proxy recomputes, and the identity assertion's default header (only Gatehouse writes it,
/// whether or not the server asks for it; a configured name is replaced when it is set).
pub fn forward_request_headers(incoming: &HeaderMap) -> HeaderMap {
    let listed = connection_tokens(incoming);
    let mut out = HeaderMap::with_capacity(incoming.len());
    for (name, value) in incoming {
        let drop = is_hop_by_hop(name)
            || listed.contains(name)
            || is_forwarding(name)
            || name == header::HOST
            || name == header::AUTHORIZATION
            || name == header::COOKIE
            || name == header::CONTENT_LENGTH
            || name.as_str() == "x-api-key"
            || name.as_str() == IDENTITY_HEADER_DEFAULT;
        if !drop {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Asks the upstream for an uncompressed body, whatever encodings the client accepts (RFC 9110
/// §12.5.3): response rules read what they rewrite, and the audit trail reads how an SSE
/// stream ended, so Gatehouse relays only bodies it can read.
pub fn ask_for_identity(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCEPT_ENCODING,
        http::HeaderValue::from_static("identity"),
    );
}

pub fn forward_response_headers(incoming: &HeaderMap, body_rewritten: bool) -> HeaderMap {
    let listed = connection_tokens(incoming);
    let mut out = HeaderMap::with_capacity(incoming.len() + 1);
    for (name, value) in incoming {
        if is_hop_by_hop(name)
            || listed.contains(name)
            || (body_rewritten && name == header::CONTENT_LENGTH)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn headers_named_by_connection_are_not_forwarded() {
        let mut incoming = HeaderMap::new();
        incoming.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, X-Secret-Hop"),
        );
        incoming.insert("x-secret-hop", HeaderValue::from_static("1"));
        incoming.insert("x-kept", HeaderValue::from_static("2"));
        let out = forward_request_headers(&incoming);
        assert!(out.get("x-secret-hop").is_none());
        assert_eq!(out.get("x-kept").unwrap(), "2");
        let out = forward_response_headers(&incoming, false);
        assert!(out.get("x-secret-hop").is_none());
        assert_eq!(out.get("x-kept").unwrap(), "2");
    }

    #[test]
    fn client_forwarding_headers_are_not_forwarded() {
        let mut incoming = HeaderMap::new();
        for name in [
            "forwarded",
            "x-forwarded-for",
            "x-real-ip",
            "x-forwarded-host",
        ] {
            incoming.insert(name, HeaderValue::from_static("for=192.0.2.1"));
        }
        assert!(forward_request_headers(&incoming).is_empty());
    }
}
