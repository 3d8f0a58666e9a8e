//! What Gatehouse keeps for fetching Client ID Metadata Documents: the fenced fetcher (https
//! only, a resolver that drops non-public addresses, so a DNS answer cannot point the request
//! at the internal network) and how long each document stays fresh. The fetch itself, and
//! what a document must say, are in `oauth/cimd.rs`.

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::{
    client::legacy::{
        Client,
        connect::{HttpConnector, dns::Name},
    },
    rt::TokioExecutor,
};
use parking_lot::Mutex;
use std::{
    collections::HashMap,
    future::Future,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

/// Whether an address is on the public internet (not this host or a private network).
pub fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// DNS for the metadata fetch: only public addresses (unless configured otherwise).
#[derive(Clone)]
pub struct PublicResolver {
    allow_private: bool,
}

impl tower_service::Service<Name> for PublicResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "the host has no public address",
                ));
            }
            Ok(addrs.into_iter())
        })
    }
}

pub(crate) type FetchClient =
    Client<hyper_rustls::HttpsConnector<HttpConnector<PublicResolver>>, Full<Bytes>>;

pub struct MetadataDocuments {
    pub(crate) client: Option<FetchClient>,
    pub(crate) allow_private: bool,
    pub(crate) fresh_until: Mutex<HashMap<String, Instant>>,
}

impl MetadataDocuments {
    pub fn new(config: &crate::config::Config) -> Self {
        let allow_private = config.oauth.client_metadata_allow_private;
        let client = crate::upstream::client::tls_config(&config.gateway.upstream_ca_files)
            .ok()
            .map(|tls| {
                let mut http = HttpConnector::new_with_resolver(PublicResolver { allow_private });
                http.set_connect_timeout(Some(TIMEOUT));
                http.enforce_http(false);
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_only()
                    .enable_http1()
                    .wrap_connector(http);
                Client::builder(TokioExecutor::new()).build(https)
            });
        Self {
            client,
            allow_private,
            fresh_until: Mutex::new(HashMap::new()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
