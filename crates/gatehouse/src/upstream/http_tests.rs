//! `HttpUpstream` against an in-process upstream that answers as each test scripts it (by the
//! `x-reply` header the exchange passes on) and records what reached it.

use super::*;
use crate::config::GatewayConfig;
use axum::{body::Body, extract::State, response::Response, routing::any};
use bytes::Bytes;
use gatehouse_model::jsonrpc;
use http_body_util::BodyExt;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(Method, HeaderMap, Bytes)>>>);

const JSON: &str = r#"{"id":1, "jsonrpc":"2.0","result":{"n":1.50,"z":0,"a":[ ]}}"#;
const EVENTS: &str = "id: 0\nretry: 500\ndata:\n\n: keep-alive\nid: 1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n";

async fn scripted(
    State(seen): State<Seen>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = headers
        .get("x-reply")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    seen.0.lock().unwrap().push((method, headers, body));
    let builder = Response::builder();
    match reply.as_str() {
        "json" => builder
            .header("content-type", "application/json")
            .header("x-upstream-trace", "t-1")
            .body(Body::from(JSON)),
        "sse" => builder
            .header("content-type", "text/event-stream")
            .body(Body::from(EVENTS)),
        "accepted" => builder.status(202).body(Body::empty()),
        "session" => builder
            .header("content-type", "application/json")
            .header("mcp-session-id", "s-42")
            .body(Body::from(JSON)),
        "gone" => builder.status(404).body(Body::empty()),
        "deleted" => builder.status(200).body(Body::empty()),
        _ => builder
            .status(503)
            .header("content-type", "text/plain")
            .header("retry-after", "7")
            .body(Body::from("overloaded")),
    }
    .unwrap()
}

struct Scripted {
    seen: Seen,
    uri: Uri,
    client: UpstreamClient,
    credential: (HeaderName, HeaderValue),
}

impl Scripted {
    async fn start() -> Self {
        let seen = Seen::default();
        let app = axum::Router::new()
            .route("/mcp", any(scripted))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}/mcp", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            seen,
            uri,
            client: UpstreamClient::new(&GatewayConfig::default()).unwrap(),
            credential: (
                HeaderName::from_static("x-upstream-key"),
                HeaderValue::from_static("server-secret"),
            ),
        }
    }

    fn upstream(&self) -> HttpUpstream<'_> {
        HttpUpstream {
            client: &self.client,
            uri: &self.uri,
            credential: Some(&self.credential),
            injected: &[],
        }
    }

    fn last(&self) -> (Method, HeaderMap, Bytes) {
        self.seen.0.lock().unwrap().last().cloned().unwrap()
    }
}

fn client_headers(reply: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-reply", HeaderValue::from_static(reply));
    headers.insert(
        "authorization",
        HeaderValue::from_static("Bearer client-key"),
    );
    headers.insert(
        "mcp-protocol-version",
        HeaderValue::from_static("2025-06-18"),
    );
    headers
}

async fn body_of(reply: Reply) -> Bytes {
    reply.body.collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn a_json_reply_keeps_its_bytes_and_the_request_goes_as_authorised() {
    let up = Scripted::start().await;
    let sent = Bytes::from_static(
        br#"{"jsonrpc":"2.0", "id":1,"method":"tools/list","params":{"x":1.0}}"#,
    );
    let envelope = jsonrpc::parse(&sent).unwrap();
    let mut headers = client_headers("json");
    headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    let exchange = Exchange {
        action: Action::Send {
            bytes: sent.clone(),
            envelope: &envelope,
        },
        session: None,
        headers: &headers,
    };
    let reply = up.upstream().send(exchange).await.unwrap();
    assert_eq!(reply.kind, ReplyKind::Json);
    assert_eq!(reply.session, SessionChange::None);
    assert_eq!(reply.head.status, StatusCode::OK);
    assert_eq!(
        reply.head.headers["x-upstream-trace"], "t-1",
        "upstream headers pass"
    );
    assert!(!reply.encoded);
    assert_eq!(
        body_of(reply).await,
        JSON.as_bytes(),
        "JSON stays as the upstream wrote it"
    );
    let (method, received, body) = up.last();
    assert_eq!(method, Method::POST);
    assert_eq!(body, sent, "the bytes authorised are the bytes forwarded");
    assert_eq!(received["x-upstream-key"], "server-secret");
    assert!(
        received.get("authorization").is_none(),
        "the client's credential stays here"
    );
    assert_eq!(received["mcp-protocol-version"], "2025-06-18");
    assert_eq!(
        received["accept-encoding"], "identity",
        "asked uncompressed whatever the client accepts"
    );
}

#[tokio::test]
async fn an_event_stream_keeps_ids_retry_and_priming_events_byte_for_byte() {
    let up = Scripted::start().await;
    let headers = client_headers("sse");
    let exchange = Exchange {
        action: Action::Listen,
        session: None,
        headers: &headers,
    };
    let reply = up.upstream().send(exchange).await.unwrap();
    assert_eq!(reply.kind, ReplyKind::Events);
    assert_eq!(body_of(reply).await, EVENTS.as_bytes());
    let (method, received, _) = up.last();
    assert_eq!(method, Method::GET);
    assert_eq!(
        received["accept-encoding"], "identity",
        "Gatehouse reads what it relays"
    );
}

#[tokio::test]
async fn an_accepted_notification_has_no_body_and_no_session_change() {
    let up = Scripted::start().await;
    let sent = Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    let envelope = jsonrpc::parse(&sent).unwrap();
    let headers = client_headers("accepted");
    let exchange = Exchange {
        action: Action::Send {
            bytes: sent,
            envelope: &envelope,
        },
        session: None,
        headers: &headers,
    };
    let reply = up.upstream().send(exchange).await.unwrap();
    assert_eq!(reply.kind, ReplyKind::Accepted);
    assert_eq!(reply.head.status, StatusCode::ACCEPTED);
    assert_eq!(reply.session, SessionChange::None);
    assert!(body_of(reply).await.is_empty());
}

#[tokio::test]
async fn initialize_issues_a_session_and_only_initialize_does() {
    let up = Scripted::start().await;
    let headers = client_headers("session");
    for (method, issued) in [("initialize", true), ("ping", false)] {
        let sent = Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}"}}"#));
        let envelope = jsonrpc::parse(&sent).unwrap();
        let exchange = Exchange {
            action: Action::Send {
                bytes: sent.clone(),
                envelope: &envelope,
            },
            session: None,
            headers: &headers,
        };
        let reply = up.upstream().send(exchange).await.unwrap();
        let expected = if issued {
            SessionChange::Issued(
                SessionId::from_client(&HeaderValue::from_static("s-42")).unwrap(),
            )
        } else {
            SessionChange::None
        };
        assert_eq!(reply.session, expected, "{method}");
    }
}

#[tokio::test]
async fn the_checked_session_goes_upstream_and_the_clients_own_header_never_does() {
    let up = Scripted::start().await;
    let sent = Bytes::from_static(br#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#);
    let envelope = jsonrpc::parse(&sent).unwrap();
    let mut headers = client_headers("json");
    headers.insert("mcp-session-id", HeaderValue::from_static("someone-elses"));
    let exchange = Exchange {
        action: Action::Send {
            bytes: sent.clone(),
            envelope: &envelope,
        },
        session: None,
        headers: &headers,
    };
    up.upstream().send(exchange).await.unwrap();
    assert!(
        up.last().1.get("mcp-session-id").is_none(),
        "no session was checked"
    );
    let mine = SessionId::from_client(&HeaderValue::from_static("mine")).unwrap();
    let exchange = Exchange {
        action: Action::Send {
            bytes: sent,
            envelope: &envelope,
        },
        session: Some(&mine),
        headers: &headers,
    };
    up.upstream().send(exchange).await.unwrap();
    let received = up.last().1;
    let values: Vec<_> = received.get_all("mcp-session-id").iter().collect();
    assert_eq!(values, ["mine"]);
}

#[tokio::test]
async fn a_session_ends_on_delete_or_when_the_upstream_no_longer_knows_it() {
    let up = Scripted::start().await;
    let id = SessionId::from_client(&HeaderValue::from_static("s-42")).unwrap();
    let deleted = client_headers("deleted");
    let exchange = Exchange {
        action: Action::End,
        session: Some(&id),
        headers: &deleted,
    };
    let reply = up.upstream().send(exchange).await.unwrap();
    assert_eq!(reply.session, SessionChange::Ended);
    assert_eq!(up.last().0, Method::DELETE);

    let gone = client_headers("gone");
    let exchange = Exchange {
        action: Action::Listen,
        session: Some(&id),
        headers: &gone,
    };
    let reply = up.upstream().send(exchange).await.unwrap();
    assert_eq!(reply.session, SessionChange::Ended);
    assert_eq!(reply.kind, ReplyKind::Failed);

    // A 404 to a request that named no session ends nothing.
    let exchange = Exchange {
        action: Action::Listen,
        session: None,
        headers: &gone,
    };
    let reply = up.upstream().send(exchange).await.unwrap();
    assert_eq!(reply.session, SessionChange::None);
}

#[tokio::test]
async fn an_upstream_error_status_passes_with_its_headers_and_body() {
    let up = Scripted::start().await;
    let headers = client_headers("overloaded");
    let exchange = Exchange {
        action: Action::Listen,
        session: None,
        headers: &headers,
    };
    let reply = up.upstream().send(exchange).await.unwrap();
    assert_eq!(reply.kind, ReplyKind::Failed);
    assert_eq!(reply.head.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.head.headers["retry-after"], "7");
    assert_eq!(body_of(reply).await, "overloaded");
}

#[test]
fn compressed_bodies_are_told_apart_from_identity_ones() {
    let mut headers = HeaderMap::new();
    assert!(is_identity_encoded(&headers));
    headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    assert!(is_identity_encoded(&headers));
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    assert!(!is_identity_encoded(&headers));
}
