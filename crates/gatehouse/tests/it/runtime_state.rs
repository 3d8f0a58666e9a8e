//! Runtime-state backends handed to the server are the ones it uses: sessions are bound in
//! them and policy counters kept in them.

use gatehouse::state::{
    CounterStore, RuntimeState, SessionStore,
    memory::{MemoryCounters, MemorySessions},
};
use serde_json::json;
use std::sync::Arc;

use crate::{
    helpers::{TestApp, call},
    scripted_upstream::Upstream,
};

#[tokio::test]
async fn sessions_and_counters_live_in_the_backends_the_server_was_given() {
    let sessions = Arc::new(MemorySessions::default());
    let counters = Arc::new(MemoryCounters::default());
    let upstream = Upstream::start().await;
    let app = TestApp::start_with_runtime({
        let (sessions, counters) = (sessions.clone(), counters.clone());
        move |config, store| RuntimeState {
            sessions,
            counters,
            ..RuntimeState::in_memory(config, store)
        }
    })
    .await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("alice", "demo", "*").await;

    let initialize = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": { "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } } });
    let response = app
        .post("demo", Some(&key), &initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(sessions.len(), 1, "bound in the given session store");

    assert!(counters.is_empty());
    app.policy(
        "hourly",
        "rate_limit",
        json!({ "requests": 1, "period": "1h" }),
        (None, None, None),
    )
    .await;
    assert_eq!(
        counters.len(),
        1,
        "the rate limit's counter is in the given store"
    );
    let status = |response: reqwest::Response| response.status().as_u16();
    let first = app
        .post("demo", Some(&key), &call("echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(status(first), 200);
    let second = app
        .post("demo", Some(&key), &call("echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(status(second), 429);
}
