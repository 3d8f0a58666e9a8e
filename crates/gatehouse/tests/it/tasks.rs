//! MCP tasks belong to the principal that created them through Gatehouse, in both wire eras.

use axum::{
    Router,
    body::{Body, Bytes},
    http::HeaderMap,
    response::Response,
    routing::post,
};
use serde_json::{Value, json};
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use crate::helpers::{TestApp, rpc_message};

/// An upstream that runs every task-augmented `tools/call` as a task and keeps them all in one
/// list, whoever asked: it cannot tell callers apart behind Gatehouse's server credential.
#[derive(Clone, Default)]
pub(crate) struct TaskUpstream {
    created: Arc<AtomicUsize>,
    methods: Arc<Mutex<Vec<String>>>,
}

impl TaskUpstream {
    pub(crate) async fn start() -> (TaskUpstream, String) {
        let upstream = TaskUpstream::default();
        let state = upstream.clone();
        let app = Router::new().route(
            "/mcp",
            post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { state.answer(&headers, &body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (upstream, url)
    }

    fn answer(&self, headers: &HeaderMap, body: &[u8]) -> Response {
        let request: Value = serde_json::from_slice(body).unwrap();
        let method = request["method"].as_str().unwrap_or("").to_owned();
        self.methods.lock().unwrap().push(method.clone());
        let task_id = request["params"]["taskId"].clone();
        let result = match method.as_str() {
            "tools/call" if request["params"]["task"].is_object() => {
                let n = self.created.fetch_add(1, Ordering::SeqCst);
                json!({ "task": { "taskId": format!("task-{n}"), "status": "working", "ttl": 60_000, "createdAt": "2026-12-05T00:00:00Z" } })
            }
            "tasks/get" | "tasks/cancel" => json!({ "taskId": task_id, "status": "completed" }),
            "tasks/result" => json!({ "content": [{ "type": "text", "text": "the result" }] }),
            "tasks/list" => {
                let all: Vec<Value> = (0..self.created.load(Ordering::SeqCst))
                    .map(|n| json!({ "taskId": format!("task-{n}"), "status": "working" }))
                    .collect();
                json!({ "tasks": all })
            }
            _ => json!({}),
        };
        let message = json!({ "jsonrpc": "2.0", "id": request["id"], "result": result });
        let (content_type, body) = if headers.get("x-test-want-sse").is_some() {
            ("text/event-stream", format!("id: 1\ndata: {message}\n\n"))
        } else {
            ("application/json", message.to_string())
        };
        Response::builder()
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap()
    }

    fn received(&self, method: &str) -> usize {
        self.methods
            .lock()
            .unwrap()
            .iter()
            .filter(|m| *m == method)
            .count()
    }
}

pub(crate) fn create_task() -> Value {
    json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "echo", "arguments": {}, "task": { "ttl": 60000 } } })
}

pub(crate) fn about(method: &str, task_id: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": 2, "method": method, "params": { "taskId": task_id } })
}

struct Setup {
    app: TestApp,
    upstream: TaskUpstream,
    alice: String,
    mallory: String,
}

async fn setup() -> Setup {
    let (upstream, url) = TaskUpstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &url).await;
    let alice = app.client_with_key("alice", "demo", "echo").await;
    let mallory = app.client_with_key("mallory", "demo", "echo").await;
    Setup {
        app,
        upstream,
        alice,
        mallory,
    }
}

/// Sends `body` as `key`, in the 2026-07-28 era when `stateless`; the JSON-RPC answer.
async fn send(setup: &Setup, key: &str, body: &Value, stateless: bool, sse: bool) -> Value {
    let mut request = if stateless {
        setup.app.post_stateless("demo", Some(key), body)
    } else {
        setup.app.post("demo", Some(key), body)
    };
    if sse {
        request = request.header("x-test-want-sse", "1");
    }
    let (status, _, message) = rpc_message(request.send().await.unwrap()).await;
    assert_eq!(status, 200, "{message}");
    message
}

async fn created_task(setup: &Setup, key: &str, stateless: bool, sse: bool) -> String {
    let answer = send(setup, key, &create_task(), stateless, sse).await;
    answer["result"]["task"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("no task: {answer}"))
        .to_owned()
}

#[tokio::test]
async fn only_the_creator_reaches_a_task_in_either_era() {
    let setup = setup().await;
    for (stateless, sse) in [(false, false), (true, false), (false, true)] {
        let task = created_task(&setup, &setup.alice, stateless, sse).await;
        // 2026-07-28 has tasks as an extension without `tasks/result` (SEP-2663).
        let methods: &[&str] = if stateless {
            &["tasks/get", "tasks/cancel"]
        } else {
            &["tasks/get", "tasks/result", "tasks/cancel"]
        };
        for &method in methods {
            let before = setup.upstream.received(method);
            let own = send(
                &setup,
                &setup.alice,
                &about(method, &task),
                stateless,
                false,
            )
            .await;
            assert!(own.get("result").is_some(), "{method}: {own}");
            let stolen = send(
                &setup,
                &setup.mallory,
                &about(method, &task),
                stateless,
                false,
            )
            .await;
            assert_eq!(stolen["error"]["code"], -32602, "{method}: {stolen}");
            assert_eq!(stolen["error"]["data"]["reason"], "task_not_found");
            assert_eq!(
                setup.upstream.received(method),
                before + 1,
                "{method}: only the creator's request reached the upstream"
            );
        }
    }
    // In the 2026-07-28 era `tasks/result` is an unknown method, even for the task's creator,
    // and never reaches the upstream.
    let task = created_task(&setup, &setup.alice, true, false).await;
    let before = setup.upstream.received("tasks/result");
    let response = setup
        .app
        .post_stateless("demo", Some(&setup.alice), &about("tasks/result", &task))
        .send()
        .await
        .unwrap();
    let (status, _, removed) = rpc_message(response).await;
    assert_eq!(status, 404, "{removed}");
    assert_eq!(removed["error"]["code"], -32601, "{removed}");
    assert_eq!(setup.upstream.received("tasks/result"), before);
    // An id Gatehouse never saw created is refused too (fail closed), and looks the same.
    let made_up = send(
        &setup,
        &setup.alice,
        &about("tasks/get", "task-99"),
        false,
        false,
    )
    .await;
    assert_eq!(made_up["error"]["data"]["reason"], "task_not_found");
    insta::assert_json_snapshot!("task_not_found", made_up);
}

#[tokio::test]
async fn a_task_list_shows_only_the_callers_tasks() {
    let setup = setup().await;
    let alices = created_task(&setup, &setup.alice, false, false).await;
    let mallorys = created_task(&setup, &setup.mallory, false, false).await;
    let list = json!({ "jsonrpc": "2.0", "id": 5, "method": "tasks/list" });
    for (key, own) in [(&setup.alice, &alices), (&setup.mallory, &mallorys)] {
        let answer = send(&setup, key, &list, false, false).await;
        let ids: Vec<&str> = answer["result"]["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["taskId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [own.as_str()]);
    }
}

#[tokio::test]
async fn a_task_needs_the_grant_of_the_tool_that_created_it() {
    let setup = setup().await;
    let task = created_task(&setup, &setup.alice, false, false).await;
    let own = send(
        &setup,
        &setup.alice,
        &about("tasks/get", &task),
        false,
        false,
    )
    .await;
    assert!(own.get("result").is_some(), "{own}");
    // Alice keeps the connection but loses `echo`, the tool whose call started the task.
    setup.app.grant("alice", "demo", "other_tool").await;
    for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
        let before = setup.upstream.received(method);
        let (status, _, refused) = rpc_message(
            setup
                .app
                .post("demo", Some(&setup.alice), &about(method, &task))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, refused["error"]["data"]["reason"].as_str()),
            (403, Some("tool_not_granted")),
            "{method}: {refused}"
        );
        assert_eq!(
            setup.upstream.received(method),
            before,
            "{method} did not reach the upstream"
        );
    }
}
