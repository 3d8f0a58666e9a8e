//! An upstream that answers every request with one response the test writes byte for byte
//! (status, headers, body), and records the headers it was sent: for answers the scripted
//! upstream does not give (odd content types, compression, server-to-client requests).

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
    routing::any,
};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct Canned {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: String,
    /// Label the body `gzip` when the request accepts gzip, as compression middleware does.
    /// The bytes are not compressed: the tests check that Gatehouse never gets that far.
    pub gzip_when_accepted: bool,
}

#[derive(Clone)]
pub struct CannedUpstream {
    canned: Canned,
    pub received: Arc<Mutex<Vec<HeaderMap>>>,
    pub url: String,
}

impl CannedUpstream {
    pub async fn start(canned: Canned) -> CannedUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = CannedUpstream {
            canned,
            received: Arc::default(),
            url: format!("http://{}/mcp", listener.local_addr().unwrap()),
        };
        let app = Router::new()
            .route("/mcp", any(answer))
            .with_state(upstream.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        upstream
    }

    /// The `Accept-Encoding` of each request received, `None` when absent.
    pub fn accept_encodings(&self) -> Vec<Option<String>> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|h| {
                h.get("accept-encoding")
                    .map(|v| v.to_str().unwrap().to_owned())
            })
            .collect()
    }
}

/// A body in `content-type` with `status`, as `Canned`.
pub fn canned(status: u16, content_type: &'static str, body: &str) -> Canned {
    Canned {
        status: StatusCode::from_u16(status).unwrap(),
        headers: vec![("content-type", content_type)],
        body: body.to_owned(),
        gzip_when_accepted: false,
    }
}

async fn answer(State(upstream): State<CannedUpstream>, headers: HeaderMap) -> Response {
    let accepts_gzip = headers
        .get("accept-encoding")
        .is_some_and(|v| v.to_str().unwrap_or("").contains("gzip"));
    upstream.received.lock().unwrap().push(headers);
    let canned = &upstream.canned;
    let mut builder = Response::builder().status(canned.status);
    for (name, value) in &canned.headers {
        builder = builder.header(*name, *value);
    }
    if canned.gzip_when_accepted && accepts_gzip {
        builder = builder.header("content-encoding", "gzip");
    }
    builder.body(Body::from(canned.body.clone())).unwrap()
}
