//! `/metrics`: decisions by reason and latency per server, for allowed networks only.

use crate::{
    helpers::{TestApp, call},
    scripted_upstream::Upstream,
};

#[tokio::test]
async fn decisions_are_counted_by_reason() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    app.post("demo", Some(&key), &call("echo"))
        .send()
        .await
        .unwrap();
    app.post("demo", Some(&key), &call("delete_records"))
        .send()
        .await
        .unwrap();
    app.post("attacker-chosen-name", Some(&key), &call("echo"))
        .send()
        .await
        .unwrap();
    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#"gatehouse_requests_total{server="demo",decision="allow",reason="-"} 1"#),
        "{text}"
    );
    assert!(text.contains(
        r#"gatehouse_requests_total{server="demo",decision="deny",reason="tool_not_granted"} 1"#
    ));
    assert!(text.contains(
        r#"gatehouse_requests_total{server="-",decision="deny",reason="unknown_server"} 1"#
    ));
    assert!(
        !text.contains("attacker-chosen-name"),
        "callers cannot create label values"
    );
    assert!(text.contains(r#"gatehouse_request_duration_seconds_count{server="demo"} 2"#));
    assert!(text.contains("gatehouse_api_keys 1"));
}

#[tokio::test]
async fn metrics_are_served_only_to_allowed_networks() {
    let app = TestApp::start_with(|c| c.metrics.allow = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 403);
}
