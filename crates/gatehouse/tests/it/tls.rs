//! `https://` upstreams: verified against the system store plus operator-named CA files.

use axum::{Router, routing::post};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::Arc;

use crate::helpers::{TestApp, call, rpc_message};

/// An HTTPS MCP upstream with a fresh self-signed certificate for `localhost`.
async fn tls_upstream() -> (String, String) {
    let app = Router::new().route(
        "/mcp",
        post(|| async {
            axum::Json(serde_json::json!({ "jsonrpc": "2.0", "id": 7, "result": { "content": [{ "type": "text", "text": "over tls" }] } }))
        }),
    );
    let (port, cert_pem) = tls_server(app).await;
    (format!("https://localhost:{port}/mcp"), cert_pem)
}

/// Serves `app` over TLS on 127.0.0.1 with a fresh self-signed certificate for `localhost`;
/// returns the port and the certificate (PEM) to trust.
pub async fn tls_server(app: Router) -> (u16, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = certified.cert.pem();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                    .await;
            });
        }
    });
    (port, cert_pem)
}

#[tokio::test]
async fn https_upstream_with_an_operator_ca() {
    let (url, cert_pem) = tls_upstream().await;
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("upstream-ca.pem");
    std::fs::write(&ca_file, cert_pem).unwrap();
    let app = TestApp::start_with(|c| c.gateway.upstream_ca_files = vec![ca_file]).await;
    app.add_server("secure", &url).await;
    let key = app.client_with_key("agent", "secure", "echo").await;
    let (status, _, body) = rpc_message(
        app.post("secure", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "over tls");
}

#[tokio::test]
async fn untrusted_upstream_certificates_are_refused() {
    let (url, _) = tls_upstream().await;
    let app = TestApp::start().await;
    app.add_server("secure", &url).await;
    let key = app.client_with_key("agent", "secure", "echo").await;
    let (status, _, body) = rpc_message(
        app.post("secure", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["data"]["reason"], "upstream_unavailable");
}

#[tokio::test]
async fn a_bad_ca_file_stops_startup_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("not-a-ca.pem");
    std::fs::write(&bogus, "hello").unwrap();
    let mut config = gatehouse::Config {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..gatehouse::Config::default()
    };
    config.gateway.upstream_ca_files = vec![bogus];
    let err = gatehouse::app::start(config, None).await.err().unwrap();
    assert!(err.to_string().contains("not-a-ca.pem"), "{err}");
}
