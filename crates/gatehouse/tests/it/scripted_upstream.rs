//! A small MCP upstream whose answers the tests choose, and which records what it received:
//! the tests assert on what crossed the wire (headers injected, credentials never forwarded).

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, Method, StatusCode},
    response::Response,
    routing::any,
};
use serde_json::{Value, json};
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

#[derive(Debug, Clone)]
pub struct Received {
    pub http_method: Method,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Clone, Default)]
pub struct Upstream {
    pub received: Arc<Mutex<Vec<Received>>>,
    /// The description `tools/list` gives `echo`; tests change it to simulate a rug pull.
    pub echo_description: Arc<Mutex<String>>,
    pub addr: Option<SocketAddr>,
    /// How the next requests fail, if they do (after being recorded).
    pub fault: Arc<Mutex<Fault>>,
    /// Released by the test: a `tools/call` of `held` answers once `notify_one` is called.
    pub release: Arc<tokio::sync::Notify>,
    /// The answer to a `tools/call` of `interrupted`, whose POST stream closed after its
    /// priming event: a `GET` with `Last-Event-ID` replays it.
    pub interrupted: Arc<Mutex<Option<Value>>>,
}

/// A failure the upstream plays, chosen by the test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fault {
    #[default]
    None,
    /// Answers after this long (past Gatehouse's `upstream_timeout`).
    Slow(Duration),
    /// `200 application/json` whose body is not JSON.
    NotJson,
    /// `200 application/json` whose body breaks off: the connection ends mid-body.
    CutBody,
    /// This status with an HTML body, as a proxy or an overloaded server answers.
    Status(u16),
}

impl Upstream {
    pub async fn start() -> Upstream {
        let mut upstream = Upstream::default();
        let app = Router::new()
            .route("/mcp", any(handle))
            .with_state(upstream.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        upstream.addr = Some(listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        upstream
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr.unwrap())
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Requests that reached the upstream so far.
    pub fn hits(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    pub fn set_fault(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

pub const TOOLS: &[&str] = &["echo", "add", "delete_records", "read_file"];

fn tools_list(echo_description: &str) -> Value {
    let tools: Vec<Value> = TOOLS
        .iter()
        .map(|name| {
            let description = if *name == "echo" {
                echo_description
            } else {
                ""
            };
            json!({ "name": name, "description": description, "inputSchema": { "type": "object" } })
        })
        .collect();
    json!({ "tools": tools, "nextCursor": "page-2" })
}

async fn handle(
    State(upstream): State<Upstream>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    upstream.received.lock().unwrap().push(Received {
        http_method: method.clone(),
        headers: headers.clone(),
        body: parsed.clone(),
    });
    let fault = *upstream.fault.lock().unwrap();
    match fault {
        Fault::None => {}
        Fault::Slow(wait) => tokio::time::sleep(wait).await,
        Fault::NotJson => {
            return Response::builder()
                .header("content-type", "application/json")
                .body(Body::from("<html><body>502 Bad Gateway</body></html>"))
                .unwrap();
        }
        Fault::CutBody => {
            let start = futures_util::stream::once(async {
                Ok::<_, std::io::Error>(Bytes::from(r#"{"jsonrpc":"2.0","id":3,"res"#))
            });
            // Pending once first, so the head and the start leave before the connection breaks.
            let cut = futures_util::stream::once(async {
                tokio::task::yield_now().await;
                Err(std::io::Error::other("connection lost"))
            });
            return Response::builder()
                .header("content-type", "application/json")
                .body(Body::from_stream(futures_util::StreamExt::chain(
                    start, cut,
                )))
                .unwrap();
        }
        Fault::Status(status) => {
            return Response::builder()
                .status(status)
                .header("content-type", "text/html")
                .body(Body::from("<html><body>unavailable</body></html>"))
                .unwrap();
        }
    }
    if method == Method::DELETE {
        return Response::new(Body::empty());
    }
    if method == Method::GET && headers.contains_key("x-test-session-gone") {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::empty())
            .unwrap();
    }
    if method == Method::GET && headers.contains_key("x-test-hold-open") {
        // A stream that stays open until the connection goes: a priming event, then nothing.
        let primed = futures_util::stream::once(async {
            Ok::<_, std::io::Error>(Bytes::from("id: 1\ndata: \n\n"))
        });
        let held = futures_util::stream::pending();
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(futures_util::StreamExt::chain(
                primed, held,
            )))
            .unwrap();
    }
    if method == Method::GET
        && headers.contains_key("last-event-id")
        && let Some(answer) = upstream.interrupted.lock().unwrap().take()
    {
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from(format!(
                "id: 1\nevent: message\ndata: {answer}\n\n"
            )))
            .unwrap();
    }
    if method == Method::GET {
        // A resumed stream replaying a tools/list result, split awkwardly across chunks.
        let event = format!(
            "id: 9\nevent: message\ndata: {}\n\n",
            json!({ "jsonrpc": "2.0", "id": 3, "result": tools_list(&upstream.echo_description.lock().unwrap()) })
        );
        let (a, b) = event.split_at(event.len() / 2);
        let chunks = vec![
            Ok::<_, std::io::Error>(Bytes::from(": primed\n\n")),
            Ok(Bytes::from(a.to_owned())),
            Ok(Bytes::from(b.to_owned())),
        ];
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(futures_util::stream::iter(chunks)))
            .unwrap();
    }
    let id = parsed.get("id").cloned();
    let rpc_method = parsed.get("method").and_then(Value::as_str).unwrap_or("");
    let Some(id) = id.filter(|_| parsed.get("method").is_some()) else {
        return Response::builder()
            .status(StatusCode::ACCEPTED)
            .body(Body::empty())
            .unwrap();
    };
    let result = match rpc_method {
        "initialize" => {
            json!({ "protocolVersion": "2025-11-25", "capabilities": { "tools": {} }, "serverInfo": { "name": "scripted", "version": "1" } })
        }
        "tools/list" => tools_list(&upstream.echo_description.lock().unwrap()),
        "tools/call" => {
            let name = parsed["params"]["name"].as_str().unwrap_or("");
            if name == "slow" {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            if name == "held" {
                upstream.release.notified().await;
            }
            let text = match parsed["params"]["arguments"]["text"].as_str() {
                Some(said) => format!("called {name}: {said}"),
                None => format!("called {name}"),
            };
            json!({ "content": [{ "type": "text", "text": text }] })
        }
        _ => json!({}),
    };
    let message = json!({ "jsonrpc": "2.0", "id": id, "result": result });
    if rpc_method == "tools/call" && parsed["params"]["name"] == "interrupted" {
        // The POST stream ends after its priming event; the answer waits for the resume.
        *upstream.interrupted.lock().unwrap() = Some(message);
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from("id: 0\nretry: 10\ndata: \n\n"))
            .unwrap();
    }
    let mut builder = Response::builder().header("x-upstream-custom", "kept");
    if rpc_method == "initialize" {
        builder = builder.header("mcp-session-id", "session-from-upstream-1");
    }
    if headers.get("x-test-want-sse").is_some() {
        let event = format!("id: 1\ndata: {message}\n\n");
        let (a, b) = event.split_at(event.len() / 2);
        let chunks = vec![
            Ok::<_, std::io::Error>(Bytes::from("id: 0\nretry: 1500\ndata: \n\n")),
            Ok(Bytes::from(a.to_owned())),
            Ok(Bytes::from(b.to_owned())),
        ];
        return builder
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(futures_util::stream::iter(chunks)))
            .unwrap();
    }
    builder
        .header("content-type", "application/json")
        .body(Body::from(message.to_string()))
        .unwrap()
}
