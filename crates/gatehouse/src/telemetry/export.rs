//! The OTLP exporter's HTTP client: hyper with Gatehouse's own TLS stack (rustls on ring,
//! system roots), so exporting adds no second HTTP client or TLS library. The batch
//! processor exports from a thread of its own; each request runs on the server's runtime.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use opentelemetry_http::{HttpClient, HttpError};
use std::time::Duration;

/// A collector's answer is a small protobuf; anything larger is not read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub(super) struct CollectorClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

impl std::fmt::Debug for CollectorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CollectorClient")
    }
}

impl CollectorClient {
    pub(super) fn new(
        tls: rustls::ClientConfig,
        runtime: tokio::runtime::Handle,
        timeout: Duration,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        CollectorClient {
            client: Client::builder(TokioExecutor::new()).build(https),
            runtime,
            timeout,
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for CollectorClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let timeout = self.timeout;
        let exchange = async move {
            let response = client.request(request.map(Full::new)).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await?
                .to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        let bounded = async move {
            tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| HttpError::from("the collector did not answer in time"))?
        };
        self.runtime.spawn(bounded).await?
    }
}
