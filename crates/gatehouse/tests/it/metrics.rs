//! `/metrics`: decisions by reason and latency per server, on the admin listener only, for
//! allowed networks only.

use serde_json::json;

use crate::{
    canned_upstream::{CannedUpstream, canned},
    helpers::{TestApp, call},
    oauth::{Setup, post_form, resource, setup_on, token_for},
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
        text.contains(r#"gatehouse_requests_total{server="demo",method="tools/call",tool="echo",decision="allow",reason="-"} 1"#),
        "{text}"
    );
    // A refused call's made-up tool name is no label value.
    assert!(text.contains(
        r#"gatehouse_requests_total{server="demo",method="tools/call",tool="other",decision="deny",reason="tool_not_granted"} 1"#
    ), "{text}");
    assert!(text.contains(
        r#"gatehouse_requests_total{server="-",method="-",tool="",decision="deny",reason="unknown_server"} 1"#
    ), "{text}");
    assert!(
        !text.contains("attacker-chosen-name") && !text.contains("delete_records"),
        "callers cannot create label values"
    );
    assert!(text.contains(r#"gatehouse_request_duration_seconds_count{server="demo"} 2"#));
    assert!(text.contains("gatehouse_api_keys 1"));
}

/// A scrape read by a Prometheus text-format parser after requests of every kind: each
/// family is there with its type and suffix, and the series the requests moved say so.
#[tokio::test]
async fn a_scrape_parses_and_counts_what_the_requests_did() {
    let Setup { app, secret, .. } = setup_on(TestApp::start_with(admin_on_any_port).await).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    // Allowed, then refused by the grant.
    assert_eq!(post(&app, &key, call("echo")).await, 200);
    assert_eq!(post(&app, &key, call("add")).await, 403);
    // A token issued, and one refused (a server svc is not connected to).
    let token = token_for(&app, &secret, "demo").await;
    let (status, _, _) = post_form(
        &app,
        "/oauth/token",
        Some(("svc", &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("resource", &resource(&app, "third")),
        ],
    )
    .await;
    assert_eq!(status, 400);
    // The token verified once, then found in the cache; a guardrail warns on the second.
    app.policy(
        "card-warning",
        "guardrail",
        json!({ "direction": "request", "action": "warn", "detectors": ["credit_card"] }),
        (Some("svc"), None, None),
    )
    .await;
    assert_eq!(post(&app, &token, call("echo")).await, 200);
    let card = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": { "name": "echo", "arguments": { "text": "4111 1111 1111 1111" } } });
    assert_eq!(post(&app, &token, card).await, 200);
    // One more call passes the rate limit, the next is refused by it.
    app.policy(
        "one-a-minute",
        "rate_limit",
        json!({ "requests": 1, "period": "1m", "burst": 1 }),
        (Some("agent"), None, None),
    )
    .await;
    assert_eq!(post(&app, &key, call("echo")).await, 200);
    assert_eq!(post(&app, &key, call("echo")).await, 429);

    let response = app.http.get(admin_url(&app)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        response.headers()
    );
    let text = response.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let types = declared_types(&text);
    for (family, kind) in [
        ("gatehouse_requests", "counter"),
        ("gatehouse_request_duration_seconds", "histogram"),
        ("gatehouse_upstream_duration_seconds", "histogram"),
        ("gatehouse_hop_duration_seconds", "histogram"),
        ("mcp_server_operation_duration_seconds", "histogram"),
        ("gatehouse_credential_checks", "counter"),
        ("gatehouse_token_cache_lookups", "counter"),
        ("gatehouse_oauth_tokens_issued", "counter"),
        ("gatehouse_oauth_token_failures", "counter"),
        ("gatehouse_guardrail_findings", "counter"),
        ("gatehouse_policy_denials", "counter"),
        ("gatehouse_audit_write_lag_seconds", "histogram"),
        ("gatehouse_audit_events_written", "counter"),
        ("gatehouse_snapshot_reload_duration_seconds", "histogram"),
        ("gatehouse_snapshot_reload_errors", "counter"),
        ("gatehouse_snapshot_generation", "gauge"),
        ("gatehouse_sessions", "gauge"),
        ("gatehouse_audit_queue_depth", "gauge"),
        ("gatehouse_upstream_circuit_state", "gauge"),
    ] {
        assert_eq!(
            types.get(family).map(String::as_str),
            Some(kind),
            "{family}: {text}"
        );
    }
    let value = |metric: &str, labels: &[(&str, &str)]| -> f64 {
        let found: Vec<f64> = scrape
            .samples
            .iter()
            .filter(|s| {
                s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
            })
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                other => panic!("{metric}: {other:?}"),
            })
            .collect();
        assert_eq!(found.len(), 1, "{metric} {labels:?}: {text}");
        found[0]
    };
    let requests = |tool: &str, decision: &str, reason: &str| {
        let labels = [
            ("server", "demo"),
            ("method", "tools/call"),
            ("tool", tool),
            ("decision", decision),
            ("reason", reason),
        ];
        value("gatehouse_requests_total", &labels)
    };
    // A warning does not change an allowed call's reason label (it has a family of its own).
    assert_eq!(requests("echo", "allow", "-"), 4.0);
    assert_eq!(requests("other", "deny", "tool_not_granted"), 1.0);
    assert_eq!(requests("echo", "deny", "rate_limited"), 1.0);
    assert_eq!(
        value(
            "gatehouse_policy_denials_total",
            &[("server", "demo"), ("kind", "rate_limit")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "gatehouse_oauth_tokens_issued_total",
            &[("grant", "client_credentials")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "gatehouse_oauth_token_failures_total",
            &[("grant", "client_credentials"), ("error", "invalid_target")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "gatehouse_credential_checks_total",
            &[("kind", "api_key"), ("result", "valid")]
        ),
        4.0
    );
    assert_eq!(
        value(
            "gatehouse_credential_checks_total",
            &[("kind", "access_token"), ("result", "valid")]
        ),
        2.0
    );
    assert_eq!(
        value("gatehouse_token_cache_lookups_total", &[("result", "miss")]),
        1.0
    );
    assert_eq!(
        value("gatehouse_token_cache_lookups_total", &[("result", "hit")]),
        1.0
    );
    assert_eq!(
        value(
            "gatehouse_guardrail_findings_total",
            &[("detector", "credit_card"), ("action", "warn")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "gatehouse_upstream_circuit_state",
            &[("server", "demo"), ("state", "closed")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "gatehouse_upstream_circuit_state",
            &[("server", "demo"), ("state", "open")]
        ),
        0.0
    );
    // Four calls reached the upstream; six requests in all got an answer head.
    let histogram_count = |metric: &str| value(&format!("{metric}_count"), &[("server", "demo")]);
    assert_eq!(histogram_count("gatehouse_upstream_duration_seconds"), 4.0);
    assert_eq!(histogram_count("gatehouse_request_duration_seconds"), 6.0);
    assert_eq!(histogram_count("gatehouse_hop_duration_seconds"), 6.0);
    assert_eq!(
        value(
            "mcp_server_operation_duration_seconds_count",
            &[("mcp_method_name", "tools/call")]
        ),
        6.0
    );
    let buckets = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "gatehouse_upstream_duration_seconds"
                && s.labels.get("server") == Some("demo")
        })
        .map(|s| s.value.clone());
    let Some(prometheus_parse::Value::Histogram(buckets)) = buckets else {
        panic!("no upstream histogram: {text}");
    };
    assert_eq!(
        buckets.last().map(|b| (b.less_than, b.count)),
        Some((f64::INFINITY, 4.0))
    );
    assert!(value("gatehouse_audit_events_written_total", &[]) >= 1.0);
    dashboard_queries_name_only_scraped_families(&types);
}

/// Every metric the Grafana dashboard (docs/grafana/gatehouse.json) queries is a family this
/// scrape declares, with the suffix its type gives its samples.
fn dashboard_queries_name_only_scraped_families(types: &std::collections::HashMap<String, String>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/grafana/gatehouse.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().unwrap())
        .map(|target| target["expr"].as_str().unwrap())
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    let mut checked = 0;
    for expr in exprs {
        // Label names in `by (…)` are not metrics.
        let mut metrics_only = expr.to_owned();
        while let Some(start) = metrics_only.find("by (") {
            let end = metrics_only[start..]
                .find(')')
                .map_or(metrics_only.len(), |e| start + e + 1);
            metrics_only.replace_range(start..end, "");
        }
        let names = metrics_only
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|word| word.starts_with("gatehouse_") || word.starts_with("mcp_"));
        for name in names {
            let declared =
                |family: &str, kind: &str| types.get(family).map(String::as_str) == Some(kind);
            let known = [
                ("_total", "counter"),
                ("_bucket", "histogram"),
                ("_sum", "histogram"),
                ("_count", "histogram"),
            ]
            .iter()
            .any(|(suffix, kind)| {
                name.strip_suffix(suffix)
                    .is_some_and(|family| declared(family, kind))
            }) || declared(name, "gauge");
            assert!(
                known,
                "the dashboard queries {name}, which no scrape has: {expr}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 25, "{checked}");
}

#[tokio::test]
async fn guardrail_findings_in_a_stream_are_counted() {
    let event = json!({ "jsonrpc": "2.0", "method": "notifications/message",
        "params": { "level": "info", "data": "mail bob@example.com" } });
    let answer = json!({ "jsonrpc": "2.0", "id": 1, "result": { "content": [] } });
    let stream = format!("event: message\ndata: {event}\n\nevent: message\ndata: {answer}\n\n");
    let upstream = CannedUpstream::start(canned(200, "text/event-stream", &stream)).await;
    let app = TestApp::start_with(admin_on_any_port).await;
    app.add_server("demo", &upstream.url).await;
    let key = app.client_with_key("agent", "demo", "*").await;
    app.policy(
        "mask-mail",
        "guardrail",
        json!({ "direction": "response", "action": "redact", "detectors": ["email"] }),
        (None, None, None),
    )
    .await;
    let response = app
        .post("demo", Some(&key), &call("echo"))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert!(text.contains("[REDACTED:email]"), "{text}");
    let scrape = app
        .http
        .get(admin_url(&app))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        scrape
            .contains(r#"gatehouse_guardrail_findings_total{detector="email",action="redact"} 1"#),
        "{scrape}"
    );
}

async fn post(app: &TestApp, credential: &str, body: serde_json::Value) -> u16 {
    let response = app
        .post("demo", Some(credential), &body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    status
}

/// `# TYPE name type` lines, by family name.
fn declared_types(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
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
