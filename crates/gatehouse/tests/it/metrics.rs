//! `/metrics`: decisions by reason and latency per server, on the admin listener only, for
//! allowed networks only.

use crate::{
    helpers::{TestApp, call},
    scripted_upstream::Upstream,
};

#[tokio::test]
async fn decisions_are_counted_by_reason() {
    let upstream = Upstream::start().await;
    let app = TestApp::start_with(admin_on_any_port).await;
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
    let response = app.http.get(admin_url(&app)).send().await.unwrap();
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
    let app = TestApp::start_with(|c| {
        admin_on_any_port(c);
        c.metrics.allow = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    let response = app.http.get(admin_url(&app)).send().await.unwrap();
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn metrics_are_not_on_the_public_listener() {
    // Behind a reverse proxy on the same host every caller is local: the public listener
    // cannot tell an operator from anyone else, so it does not serve metrics at all.
    let app = TestApp::start_with(admin_on_any_port).await;
    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    for path in ["/healthz", "/readyz"] {
        let public = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(public.status(), 200, "{path} stays on the public listener");
        let admin = app.server.admin_addr.unwrap();
        let admin = app
            .http
            .get(format!("http://{admin}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(admin.status(), 200, "{path} on the admin listener");
    }
}

fn admin_on_any_port(config: &mut gatehouse::Config) {
    config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
}

fn admin_url(app: &TestApp) -> String {
    format!("http://{}/metrics", app.server.admin_addr.unwrap())
}
