//! What one request may cost the gateway's memory: messages per batch and the parsed size of
//! its JSON. Refusals come before anything is forwarded and are audited like any other.

use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, call, rpc_message},
    scripted_upstream::Upstream,
};

async fn app_with_limits(batch: usize, parsed: usize) -> (TestApp, Upstream, String) {
    let upstream = Upstream::start().await;
    let app = TestApp::start_with(|c| {
        c.gateway.max_batch_messages = batch;
        c.gateway.max_parsed_bytes = parsed;
    })
    .await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    (app, upstream, key)
}

fn batch(len: usize) -> Value {
    Value::Array(
        (0..len)
            .map(|i| json!({ "jsonrpc": "2.0", "method": "notifications/progress", "params": { "progressToken": i, "progress": i } }))
            .collect(),
    )
}

#[tokio::test]
async fn a_batch_over_the_limit_is_413_and_nothing_is_forwarded() {
    let (app, upstream, key) = app_with_limits(10, 1 << 20).await;
    let (status, _, body) = rpc_message(
        app.post("demo", Some(&key), &batch(11))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 413);
    insta::assert_json_snapshot!("batch_too_large", body);
    assert!(upstream.received().is_empty(), "nothing forwarded");
    let audit = app.audit().await;
    assert!(
        audit
            .iter()
            .any(|r| r.event.reason.as_deref() == Some("batch_too_large")),
        "{audit:?}"
    );

    // At the limit the batch passes.
    let response = app
        .post("demo", Some(&key), &batch(10))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn a_request_whose_parse_exceeds_its_memory_budget_is_413() {
    // 20 000 tiny objects: 160 kB of text, several MB once parsed.
    let (app, upstream, key) = app_with_limits(100, 1 << 20).await;
    let mut request = call("echo");
    request["params"]["arguments"] = json!({ "rows": vec![json!({ "a": 1 }); 20_000] });
    let (status, _, body) =
        rpc_message(app.post("demo", Some(&key), &request).send().await.unwrap()).await;
    assert_eq!(status, 413);
    insta::assert_json_snapshot!("request_too_complex", body);
    assert!(upstream.received().is_empty(), "nothing forwarded");
    let audit = app.audit().await;
    assert!(
        audit
            .iter()
            .any(|r| r.event.reason.as_deref() == Some("request_too_complex")),
        "{audit:?}"
    );

    // The same text as one string is cheap to parse and passes.
    let mut request = call("echo");
    request["params"]["arguments"] = json!({ "text": "{\"a\":1},".repeat(20_000) });
    let response = app.post("demo", Some(&key), &request).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}
