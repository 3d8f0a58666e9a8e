//! stdio servers on the request path (ADR 0006 §1–3): a local program behind `/{server}/mcp`
//! for both wire eras, shared or one per principal, its crashes answered with JSON-RPC
//! errors, its environment sealed, its requests to clients routed to the one that asked.
//! The program is a small MCP server in Python.

use gatehouse::admin::{self, NewStdio};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

use crate::{
    admin_api::AdminApi,
    helpers::{TestApp, call, rpc_message},
};
use gatehouse_model::records::AdminRole;

pub(crate) const CHILD: &str = r#"
import json, os, sys
asked = []
for line in sys.stdin:
    m = json.loads(line)
    method = m.get("method")
    if method == "initialize":
        out = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
               "serverInfo": {"name": "stdio-child", "version": "1"}}
    elif method in ("resources/subscribe", "resources/unsubscribe"):
        asked.append(method)
        out = {}
    elif method == "tools/list":
        out = {"tools": [{"name": n, "inputSchema": {"type": "object"}}
                         for n in ("echo", "crash", "pid", "env", "sample")]}
    elif method == "tools/call":
        name = m["params"]["name"]
        if name == "crash":
            sys.exit(3)
        elif name == "pid":
            out = {"content": [{"type": "text", "text": str(os.getpid())}]}
        elif name == "touch":
            uri = m["params"]["arguments"]["uri"]
            print(json.dumps({"jsonrpc": "2.0", "method": "notifications/resources/updated",
                              "params": {"uri": uri}}), flush=True)
            print(json.dumps({"jsonrpc": "2.0", "method": "notifications/message",
                              "params": {"level": "info", "data": "touched"}}), flush=True)
            out = {"content": [{"type": "text", "text": "ok"}]}
        elif name == "asked":
            out = {"content": [{"type": "text", "text": ",".join(asked)}]}
        elif name == "env":
            out = {"content": [{"type": "text", "text": os.environ.get("SECRET_TOKEN", "")}]}
        elif name == "sample":
            print(json.dumps({"jsonrpc": "2.0", "id": "s1", "method": "sampling/createMessage",
                              "params": {"messages": [], "maxTokens": 5}}), flush=True)
            answer = json.loads(sys.stdin.readline())
            out = {"content": [{"type": "text", "text": json.dumps(answer.get("result"))}]}
        else:
            out = {"content": [{"type": "text", "text": json.dumps(m["params"].get("arguments"))}]}
    elif "id" in m and method is not None:
        print(json.dumps({"jsonrpc": "2.0", "id": m["id"],
                          "error": {"code": -32601, "message": "unknown"}}), flush=True)
        continue
    else:
        continue
    print(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": out}), flush=True)
"#;

pub(crate) fn child(sharing: &str) -> NewStdio {
    NewStdio {
        command: "python3".into(),
        args: vec!["-u".into(), "-c".into(), CHILD.into()],
        env: vec![("SECRET_TOKEN".into(), "tok-9f8e7d6c5b4a".into())],
        sharing: Some(sharing.into()),
        ..NewStdio::default()
    }
}

pub(crate) async fn add_stdio(app: &TestApp, name: &str, stdio: NewStdio) {
    app.add_server_with(admin::NewServer {
        name: name.into(),
        stdio: Some(stdio),
        ..Default::default()
    })
    .await;
}

fn initialize(capabilities: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": capabilities,
        "clientInfo": {"name": "test", "version": "1"}}})
}

/// Opens a legacy-era session; returns its id.
async fn session(app: &TestApp, key: &str, capabilities: Value) -> String {
    let response = app
        .post("local", Some(key), &initialize(capabilities))
        .send()
        .await
        .unwrap();
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let (status, _, message) = rpc_message(response).await;
    assert_eq!(status, 200);
    assert_eq!(message["result"]["serverInfo"]["name"], "stdio-child");
    session
}

fn text(message: &Value) -> String {
    message["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("a tool result: {message}"))
        .to_owned()
}

async fn call_text(app: &TestApp, key: &str, tool: &str) -> String {
    let (status, _, message) = rpc_message(
        app.post_stateless("local", Some(key), &call(tool))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{message}");
    text(&message)
}

#[tokio::test]
async fn a_stdio_server_is_served_in_both_eras_with_a_gatehouse_session() {
    let app = TestApp::start().await;
    add_stdio(&app, "local", child("shared")).await;
    let key = app.client_with_key("agent", "local", "*").await;

    let session = session(&app, &key, json!({})).await;
    let legacy = app
        .post("local", Some(&key), &call("echo"))
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    let (status, _, message) = rpc_message(legacy).await;
    assert_eq!((status, message["id"].clone()), (200, json!(7)));
    assert_eq!(text(&message), "{}");

    // The session is the caller's: another client cannot use it.
    let other = app.client_with_key("other", "local", "*").await;
    let stolen = app
        .post("local", Some(&other), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), 404);

    // Ending the session forgets it; the program runs on for its other clients.
    let ended = app
        .http
        .delete(app.mcp("local"))
        .bearer_auth(&key)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 200);
    let gone = app
        .post("local", Some(&key), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404, "an ended session is not found");

    // 2026-07-28: no session at all.
    assert_eq!(call_text(&app, &key, "echo").await, "{}");

    // A batch is refused: the child is spoken to one message at a time.
    let batch = json!([call("echo"), call("echo")]);
    let (status, _, message) =
        rpc_message(app.post("local", Some(&key), &batch).send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(message["error"]["data"]["reason"], "batch_unsupported");
    insta::assert_json_snapshot!("batch_unsupported", message);
}

#[tokio::test]
async fn a_child_killed_mid_call_fails_the_call_cleanly_and_comes_back() {
    let app = TestApp::start().await;
    add_stdio(&app, "local", child("shared")).await;
    let key = app.client_with_key("agent", "local", "*").await;
    let before = call_text(&app, &key, "pid").await;

    let crashed = app
        .post_stateless("local", Some(&key), &call("crash"))
        .send()
        .await
        .unwrap();
    let (status, _, message) = rpc_message(crashed).await;
    assert_eq!(status, 502);
    assert_eq!(message["id"], json!(7), "the caller's own id");
    assert_eq!(message["error"]["data"]["reason"], "upstream_crashed");
    insta::assert_json_snapshot!("upstream_crashed", message);

    // The supervisor restarts it (after its back-off); the next call reaches a new process.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let after = loop {
        let response = app
            .post_stateless("local", Some(&key), &call("pid"))
            .send()
            .await
            .unwrap();
        let (status, _, message) = rpc_message(response).await;
        if status == 200 {
            break text(&message);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the child did not come back: {status} {message}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(before, after, "a new process serves after the crash");
    let audit = app.audit().await;
    assert!(
        audit
            .iter()
            .any(|row| row.event.reason.as_deref() == Some("upstream_crashed")),
        "the crash is in the trail"
    );
}

#[tokio::test]
async fn per_principal_gives_each_client_its_own_child_and_shared_one_for_all() {
    let app = TestApp::start().await;
    add_stdio(&app, "local", child("per_principal")).await;
    let a = app.client_with_key("alpha", "local", "*").await;
    let b = app.client_with_key("beta", "local", "*").await;
    let (a1, b1) = (
        call_text(&app, &a, "pid").await,
        call_text(&app, &b, "pid").await,
    );
    assert_ne!(a1, b1, "each principal has its own process");
    assert_eq!(call_text(&app, &a, "pid").await, a1, "and keeps it");
    assert_eq!(app.server.state.stdio.running("local"), 2);

    admin::update_server(
        &*app.store,
        &app.keyring,
        "local",
        admin::ServerUpdate {
            stdio: Some(child("shared")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    app.reload().await;
    let (a2, b2) = (
        call_text(&app, &a, "pid").await,
        call_text(&app, &b, "pid").await,
    );
    assert_eq!(a2, b2, "shared: one process for both");
    assert!(
        a2 != a1 && a2 != b1,
        "the changed record replaced the children"
    );
    assert_eq!(app.server.state.stdio.running("local"), 1);
}

#[tokio::test]
async fn a_new_principal_beyond_max_children_is_refused() {
    let app = TestApp::start().await;
    add_stdio(
        &app,
        "local",
        NewStdio {
            max_children: Some(1),
            ..child("per_principal")
        },
    )
    .await;
    let a = app.client_with_key("alpha", "local", "*").await;
    let b = app.client_with_key("beta", "local", "*").await;
    call_text(&app, &a, "pid").await;
    let (status, headers, message) = rpc_message(
        app.post_stateless("local", Some(&b), &call("pid"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(
        message["error"]["data"]["reason"],
        "upstream_children_exhausted"
    );
    assert!(headers.contains_key("retry-after"));
    insta::assert_json_snapshot!("upstream_children_exhausted", message);
    call_text(&app, &a, "pid").await;
}

#[tokio::test]
async fn the_environment_reaches_the_child_and_is_sealed_at_rest() {
    let app = TestApp::start().await;
    add_stdio(&app, "local", child("shared")).await;
    let key = app.client_with_key("agent", "local", "*").await;
    assert_eq!(call_text(&app, &key, "env").await, "tok-9f8e7d6c5b4a");
    let stored = app.store.get_server("local").await.unwrap();
    let stdio = stored.stdio.unwrap();
    assert_eq!(stdio.env_names, vec!["SECRET_TOKEN".to_owned()]);
    assert!(!serde_json::to_string(&stdio).unwrap().contains("tok-9f8e"));
    if app.db().url.starts_with("sqlite:") {
        let file = std::fs::read(app.dir.path().join("gatehouse.db")).unwrap();
        assert!(
            !file.windows(16).any(|w| w == b"tok-9f8e7d6c5b4a"),
            "the value is sealed in the database"
        );
    }
}

/// Reads SSE events from `response` until one carries a message that satisfies `until`.
async fn next_event(response: &mut reqwest::Response, buffer: &mut String) -> Value {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            // A priming event (SEP-1699) carries no message.
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:"))
                && !data.trim().is_empty()
            {
                return serde_json::from_str(data.trim()).unwrap();
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream is still open");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn a_sampling_request_reaches_the_client_that_asked_and_only_its_answer_counts() {
    let app = TestApp::start().await;
    add_stdio(&app, "local", child("shared")).await;
    let alice = app.client_with_key("alice", "local", "*").await;
    let mallory = app.client_with_key("mallory", "local", "*").await;
    let alice_session = session(&app, &alice, json!({"sampling": {}})).await;
    let mallory_session = session(&app, &mallory, json!({"sampling": {}})).await;

    let mut stream = app
        .post("local", Some(&alice), &call("sample"))
        .header("mcp-session-id", &alice_session)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut buffer = String::new();
    let ask = next_event(&mut stream, &mut buffer).await;
    assert_eq!(ask["method"], "sampling/createMessage");

    // Another client answering the same id is not heard by the child.
    let forged = json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"text": "from mallory"}});
    let refused = app
        .post("local", Some(&mallory), &forged)
        .header("mcp-session-id", &mallory_session)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 202);
    let answer = json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"text": "from alice"}});
    let answered = app
        .post("local", Some(&alice), &answer)
        .header("mcp-session-id", &alice_session)
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), 202);
    let done = next_event(&mut stream, &mut buffer).await;
    assert_eq!(done["id"], json!(7));
    assert_eq!(text(&done), r#"{"text": "from alice"}"#);
}

#[tokio::test]
async fn a_client_that_declared_no_sampling_is_never_asked() {
    let app = TestApp::start().await;
    add_stdio(&app, "local", child("shared")).await;
    let key = app.client_with_key("agent", "local", "*").await;
    let session = session(&app, &key, json!({})).await;
    let response = app
        .post("local", Some(&key), &call("sample"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    let (status, _, message) = rpc_message(response).await;
    assert_eq!(status, 200);
    // The gateway answered the child's request with an error, which the child reports back.
    assert!(text(&message).contains("null"), "{message}");
}

#[tokio::test]
async fn commands_outside_the_allow_list_are_refused_at_create_and_at_start() {
    let allowed = Some(vec!["npx".to_owned(), "/opt/mcp/bin/*".to_owned()]);
    let app = TestApp::start_with(|config| config.gateway.stdio_commands = allowed.clone()).await;
    let refused = admin::add_server(
        &*app.store,
        &app.keyring,
        admin::NewServer {
            name: "local".into(),
            stdio: Some(NewStdio {
                allowed_commands: allowed.clone(),
                ..child("shared")
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("stdio_commands"), "{refused}");
    // Stored by someone whose configuration allowed it: this server does not run it.
    add_stdio(&app, "local", child("shared")).await;
    let key = app.client_with_key("agent", "local", "*").await;
    let (status, _, message) = rpc_message(
        app.post_stateless("local", Some(&key), &call("pid"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(message["error"]["data"]["reason"], "server_unavailable");
    assert_eq!(app.server.state.stdio.running("local"), 0);
}

#[tokio::test]
async fn only_admins_add_or_change_stdio_servers_on_the_admin_api() {
    let api = AdminApi::start().await;
    let operator = api.token(AdminRole::Operator).await;
    let admin_token = api.token(AdminRole::Admin).await;
    let body = json!({"name": "local", "stdio": {"command": "python3",
        "args": ["-u", "-c", CHILD], "env": {"SECRET_TOKEN": "tok-1"}}});
    let denied = api
        .request(Method::POST, "/admin/api/v1/servers", Some(&operator))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    let created = api
        .request(Method::POST, "/admin/api/v1/servers", Some(&admin_token))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let shown: Value = created.json().await.unwrap();
    assert_eq!(shown["url"], "stdio://local");
    assert_eq!(shown["stdio"]["env_names"], json!(["SECRET_TOKEN"]));
    assert!(
        !shown.to_string().contains("tok-1"),
        "values are write-only"
    );
    // test-connection asks the program itself for its tools.
    let probed: Value = api
        .request(
            Method::POST,
            "/admin/api/v1/servers/local/test-connection",
            Some(&operator),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(probed["reachable"], true, "{probed}");
    assert_eq!(probed["tools"][0]["name"], "echo");
    // An operator cannot change it either, even without stdio fields.
    let update = api
        .request(
            Method::PATCH,
            "/admin/api/v1/servers/local",
            Some(&operator),
        )
        .json(&json!({"credential": "X-Key: 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(update.status(), 403);
}

async fn listen(app: &TestApp, key: &str, session: &str) -> reqwest::Response {
    let response = app
        .http
        .get(app.mcp("local"))
        .bearer_auth(key)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
}

#[tokio::test]
async fn a_resource_update_reaches_only_the_sessions_subscribed_to_it() {
    let app = TestApp::start().await;
    add_stdio(&app, "local", child("shared")).await;
    let alice = app.client_with_key("alice", "local", "*").await;
    let bob = app.client_with_key("bob", "local", "*").await;
    let (alice_session, bob_session) = (
        session(&app, &alice, json!({})).await,
        session(&app, &bob, json!({})).await,
    );
    let rpc = |key: &str, session: &str, method: &str, params: Value| {
        app.post(
            "local",
            Some(key),
            &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
        )
        .header("mcp-session-id", session.to_owned())
    };
    let uri = json!({"uri": "file:///notes/a"});
    for (key, session) in [(&alice, &alice_session), (&alice, &alice_session)] {
        let (status, _, message) = rpc_message(
            rpc(key, session, "resources/subscribe", uri.clone())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((status, message["result"].clone()), (200, json!({})));
    }
    let mut alice_stream = listen(&app, &alice, &alice_session).await;
    let mut bob_stream = listen(&app, &bob, &bob_session).await;
    let touched = rpc(
        &bob,
        &bob_session,
        "tools/call",
        json!({"name": "touch", "arguments": {"uri": "file:///notes/a"}}),
    );
    assert_eq!(rpc_message(touched.send().await.unwrap()).await.0, 200);
    let (mut a, mut b) = (String::new(), String::new());
    let first_for_alice = next_event(&mut alice_stream, &mut a).await;
    assert_eq!(first_for_alice["method"], "notifications/resources/updated");
    assert_eq!(first_for_alice["params"]["uri"], "file:///notes/a");
    // Bob did not subscribe: the log message that followed the update is his first event.
    let first_for_bob = next_event(&mut bob_stream, &mut b).await;
    assert_eq!(first_for_bob["method"], "notifications/message");

    // The child was subscribed once; a second session's subscription and the first one's
    // unsubscription are Gatehouse's to answer, the last unsubscription the child's.
    rpc(&bob, &bob_session, "resources/subscribe", uri.clone())
        .send()
        .await
        .unwrap();
    rpc(&alice, &alice_session, "resources/unsubscribe", uri.clone())
        .send()
        .await
        .unwrap();
    rpc(&bob, &bob_session, "resources/unsubscribe", uri.clone())
        .send()
        .await
        .unwrap();
    let asked = call_text(&app, &alice, "asked").await;
    assert_eq!(asked, "resources/subscribe,resources/unsubscribe");
}

#[tokio::test]
async fn a_restarted_child_is_subscribed_again_to_what_sessions_subscribed() {
    let app = TestApp::start().await;
    add_stdio(&app, "local", child("shared")).await;
    let key = app.client_with_key("agent", "local", "*").await;
    let session = session(&app, &key, json!({})).await;
    let subscribe = json!({"jsonrpc": "2.0", "id": 1, "method": "resources/subscribe",
        "params": {"uri": "file:///notes/a"}});
    let (status, _, _) = rpc_message(
        app.post("local", Some(&key), &subscribe)
            .header("mcp-session-id", &session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let before = call_text(&app, &key, "pid").await;
    let crashed = app
        .post_stateless("local", Some(&key), &call("crash"))
        .send()
        .await
        .unwrap();
    assert_eq!(crashed.status(), 502);
    // The restarted child (after its back-off) was asked for the subscription by Gatehouse.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let response = app
            .post_stateless("local", Some(&key), &call("pid"))
            .send()
            .await
            .unwrap();
        let (status, _, message) = rpc_message(response).await;
        if status == 200 && text(&message) != before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the child did not come back: {status} {message}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(call_text(&app, &key, "asked").await, "resources/subscribe");
}

#[tokio::test]
async fn ending_a_session_drops_its_subscriptions_and_unsubscribes_what_nobody_else_needs() {
    let app = TestApp::start().await;
    add_stdio(&app, "local", child("shared")).await;
    let alice = app.client_with_key("alice", "local", "*").await;
    let bob = app.client_with_key("bob", "local", "*").await;
    let (alice_session, bob_session) = (
        session(&app, &alice, json!({})).await,
        session(&app, &bob, json!({})).await,
    );
    let rpc = |key: &str, session: &str, method: &str, uri: &str| {
        app.post(
            "local",
            Some(key),
            &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"uri": uri}}),
        )
        .header("mcp-session-id", session.to_owned())
    };
    for (key, session, uri) in [
        (&alice, &alice_session, "file:///notes/a"),
        (&alice, &alice_session, "file:///notes/b"),
        (&bob, &bob_session, "file:///notes/a"),
    ] {
        let response = rpc(key, session, "resources/subscribe", uri);
        assert_eq!(rpc_message(response.send().await.unwrap()).await.0, 200);
    }
    assert_eq!(
        call_text(&app, &alice, "asked").await,
        "resources/subscribe,resources/subscribe",
        "the child is subscribed once per URI"
    );

    let ended = app
        .http
        .delete(app.mcp("local"))
        .bearer_auth(&alice)
        .header("mcp-session-id", &alice_session)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 200);
    assert_eq!(
        call_text(&app, &alice, "asked").await,
        "resources/subscribe,resources/subscribe,resources/unsubscribe",
        "only b is left to nobody: the child is unsubscribed from it, not from a"
    );

    // Bob is the last session subscribed to a, so his unsubscription is the child's.
    let response = rpc(
        &bob,
        &bob_session,
        "resources/unsubscribe",
        "file:///notes/a",
    );
    assert_eq!(rpc_message(response.send().await.unwrap()).await.0, 200);
    assert_eq!(
        call_text(&app, &alice, "asked").await,
        "resources/subscribe,resources/subscribe,resources/unsubscribe,resources/unsubscribe"
    );
}

async fn subscribe(app: &TestApp, key: &str, session: &str, uri: &str) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "resources/subscribe",
        "params": {"uri": uri}});
    let response = app
        .post("local", Some(key), &body)
        .header("mcp-session-id", session)
        .send()
        .await
        .unwrap();
    assert_eq!(rpc_message(response).await.0, 200);
}

#[tokio::test]
async fn a_session_idle_past_the_timeout_drops_its_subscriptions_like_one_ended() {
    let app = TestApp::start().await;
    add_stdio(&app, "local", child("shared")).await;
    let key = app.client_with_key("agent", "local", "*").await;
    let session = session(&app, &key, json!({})).await;
    subscribe(&app, &key, &session, "file:///notes/a").await;
    assert_eq!(call_text(&app, &key, "asked").await, "resources/subscribe");

    // The sweep as it runs a day later: the session has been idle past the timeout.
    let idle = i64::try_from(app.config.gateway.session_idle_timeout.as_millis()).unwrap();
    gatehouse::app::sweep_once(&app.server.state, gatehouse::now_ms() + idle + 60_000).await;
    assert_eq!(
        call_text(&app, &key, "asked").await,
        "resources/subscribe,resources/unsubscribe",
        "the expired session's subscription was the child's last: it is unsubscribed"
    );
}

#[tokio::test]
async fn a_session_dropped_for_the_owner_cap_unsubscribes_only_what_nobody_else_needs() {
    let app = TestApp::start_with(|config| config.gateway.max_sessions_per_owner = 1).await;
    add_stdio(&app, "local", child("shared")).await;
    let alice = app.client_with_key("alice", "local", "*").await;
    let bob = app.client_with_key("bob", "local", "*").await;
    let first = session(&app, &alice, json!({})).await;
    let bobs = session(&app, &bob, json!({})).await;
    subscribe(&app, &alice, &first, "file:///notes/a").await;
    subscribe(&app, &alice, &first, "file:///notes/b").await;
    subscribe(&app, &bob, &bobs, "file:///notes/a").await;
    // Alice's second session forgets her first (one per owner).
    let second = session(&app, &alice, json!({})).await;
    assert_ne!(first, second);

    gatehouse::app::sweep_once(&app.server.state, gatehouse::now_ms()).await;
    assert_eq!(
        call_text(&app, &alice, "asked").await,
        "resources/subscribe,resources/subscribe,resources/unsubscribe",
        "b had only the dropped session: unsubscribed; Bob still wants a"
    );
    // Nothing more on the next sweep: the released session is forgotten.
    gatehouse::app::sweep_once(&app.server.state, gatehouse::now_ms()).await;
    assert_eq!(
        call_text(&app, &alice, "asked").await,
        "resources/subscribe,resources/subscribe,resources/unsubscribe"
    );
}
