//! Policies through the gateway: each kind allows and refuses as documented, with the rule
//! named in the error body and the audit trail.

use gatehouse::admin::explain::{Question, explain};
use serde_json::json;

use crate::{
    helpers::{TestApp, call, rpc_message},
    scripted_upstream::Upstream,
};

async fn setup(adjust: impl FnOnce(&mut gatehouse::Config)) -> (TestApp, String) {
    let upstream = Upstream::start().await;
    let app = TestApp::start_with(adjust).await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "*").await;
    (app, key)
}

fn call_with(tool: &str, arguments: serde_json::Value) -> serde_json::Value {
    json!({ "jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": { "name": tool, "arguments": arguments } })
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let (app, key) = setup(|_| {}).await;
    app.policy(
        "two-per-minute",
        "rate_limit",
        json!({ "requests": 2, "period": "1m", "burst": 2 }),
        (None, Some("demo"), None),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(
            app.post("demo", Some(&key), &call("echo"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let (status, headers, body) = rpc_message(
        app.post("demo", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 429);
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(
        (1..=30).contains(&retry),
        "one request frees up within 30 s: {retry}"
    );
    assert_eq!(body["error"]["data"]["retry_after"], retry);
    assert_eq!(
        body["error"]["data"]["policy"],
        json!({ "kind": "rate_limit", "rule": "two-per-minute" })
    );
    insta::assert_json_snapshot!("rate_limited", body, { ".error.data.retry_after" => "[seconds]" });

    // Another client has its own allowance.
    let other = app.client_with_key("other", "demo", "*").await;
    assert_eq!(
        app.post("demo", Some(&other), &call("echo"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let audit = app.audit().await;
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.event.reason.as_deref() == Some("rate_limit:two-per-minute"))
            .count(),
        1
    );
}

#[tokio::test]
async fn ip_rules_use_trusted_proxies_only() {
    let (app, key) =
        setup(|c| c.policy.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]).await;
    app.policy(
        "office",
        "ip",
        json!({ "allow": ["203.0.113.0/24", "2001:db8::/32"] }),
        (None, None, None),
    )
    .await;
    let from = |xff: &'static str| {
        app.post("demo", Some(&key), &call("echo"))
            .header("x-forwarded-for", xff)
    };
    assert_eq!(from("203.0.113.7").send().await.unwrap().status(), 200);
    assert_eq!(from("2001:db8::5").send().await.unwrap().status(), 200);
    let (status, _, body) = rpc_message(from("198.51.100.1").send().await.unwrap()).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["data"]["reason"], "policy_denied");
    insta::assert_json_snapshot!("ip_denied", body);
    // The client-written left part of the chain is not believed: the proxy saw 198.51.100.1.
    assert_eq!(
        from("203.0.113.7, 198.51.100.1")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let audit = app.audit().await;
    assert_eq!(
        audit[0].event.ip.as_deref(),
        Some("203.0.113.7"),
        "the audit records the resolved address"
    );
}

#[tokio::test]
async fn untrusted_peers_cannot_claim_an_address() {
    let (app, key) = setup(|_| {}).await;
    app.policy(
        "office",
        "ip",
        json!({ "allow": ["203.0.113.0/24"] }),
        (None, None, None),
    )
    .await;
    let spoofed = app
        .post("demo", Some(&key), &call("echo"))
        .header("x-forwarded-for", "203.0.113.7");
    assert_eq!(spoofed.send().await.unwrap().status(), 403);
}

#[tokio::test]
async fn schedules_and_argument_constraints() {
    let (app, key) = setup(|_| {}).await;
    app.policy(
        "readonly-sql",
        "arguments",
        json!({ "rules": [{ "path": "$.readonly", "equals": true }] }),
        (None, None, Some("query")),
    )
    .await;
    assert_eq!(
        app.post(
            "demo",
            Some(&key),
            &call_with("query", json!({ "readonly": true }))
        )
        .send()
        .await
        .unwrap()
        .status(),
        200
    );
    let (status, _, body) = rpc_message(
        app.post(
            "demo",
            Some(&key),
            &call_with("query", json!({ "readonly": false })),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        body["error"]["message"],
        "denied by arguments policy \"readonly-sql\": argument $.readonly has a value that is not allowed"
    );
    assert_eq!(
        app.post("demo", Some(&key), &call_with("echo", json!({})))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "other tools are not constrained"
    );

    // A campaign that ended yesterday: closed for everyone it is attached to.
    let yesterday = jiff::ZonedDateTime::now()
        .date()
        .yesterday()
        .unwrap()
        .to_string();
    app.policy(
        "campaign",
        "schedule",
        json!({ "time_zone": "Europe/Paris", "valid_until": yesterday }),
        (Some("agent"), None, None),
    )
    .await;
    let (status, _, body) = rpc_message(
        app.post("demo", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["data"]["policy"]["kind"], "schedule");
    let other = app.client_with_key("other", "demo", "*").await;
    assert_eq!(
        app.post("demo", Some(&other), &call("echo"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "attached to agent only"
    );
}

#[tokio::test]
async fn quotas_survive_a_restart() {
    let (app, key) = setup(|_| {}).await;
    app.policy(
        "daily",
        "quota",
        json!({ "limit": 2, "window": "day", "time_zone": "UTC" }),
        (None, None, None),
    )
    .await;
    let list = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" });
    assert_eq!(
        app.post("demo", Some(&key), &list)
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "quotas count tool calls only"
    );
    for _ in 0..2 {
        assert_eq!(
            app.post("demo", Some(&key), &call("echo"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(
        app.post("demo", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap()
            .status(),
        429
    );

    let app = app.restart().await;
    let (status, headers, _) = rpc_message(
        app.post("demo", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 429, "the quota is still used up after the restart");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry <= 86_400);
}

#[tokio::test]
async fn a_refusal_later_in_the_chain_gives_back_the_quota() {
    let (app, key) = setup(|_| {}).await;
    app.policy(
        "daily",
        "quota",
        json!({ "limit": 3, "window": "day" }),
        (None, None, None),
    )
    .await;
    app.policy(
        "strict",
        "rate_limit",
        json!({ "requests": 1, "period": "1h" }),
        (None, None, None),
    )
    .await;
    assert_eq!(
        app.post("demo", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Quota (checked first) passes, then the rate limit refuses: the quota unit is given back.
    for _ in 0..5 {
        let (status, _, body) = rpc_message(
            app.post("demo", Some(&key), &call("echo"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 429);
        assert_eq!(body["error"]["data"]["policy"]["kind"], "rate_limit");
    }
    app.store.delete_policy("strict").await.unwrap();
    app.reload().await;
    for _ in 0..2 {
        assert_eq!(
            app.post("demo", Some(&key), &call("echo"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let (_, _, body) = rpc_message(
        app.post("demo", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        body["error"]["data"]["policy"]["kind"], "quota",
        "3 of 3 used: the refused calls cost nothing"
    );
}

#[tokio::test]
async fn explain_names_the_deciding_rule_without_charging() {
    let (app, _) = setup(|_| {}).await;
    app.policy(
        "one-per-hour",
        "rate_limit",
        json!({ "requests": 1, "period": "1h" }),
        (None, None, None),
    )
    .await;
    app.policy(
        "office",
        "ip",
        json!({ "allow": ["10.0.0.0/8"] }),
        (None, None, None),
    )
    .await;
    let snapshot = app.server.state.snapshot.current();
    let ask = |ip: &str, tool: &'static str| {
        explain(
            &snapshot,
            &Question {
                client: "agent",
                server: "demo",
                tool: Some(tool),
                ip: ip.parse().unwrap(),
                at: jiff::Timestamp::now(),
                arguments: None,
            },
        )
    };
    let inside = ask("10.1.2.3", "echo");
    assert_eq!(inside.decision, "allow");
    assert_eq!(
        ask("10.1.2.3", "echo").decision,
        "allow",
        "explaining charges nothing"
    );
    let outside = ask("192.0.2.1", "echo");
    assert_eq!(outside.decision, "deny");
    assert_eq!(outside.decided_by.as_deref(), Some("ip:office"));
    let stages: Vec<&str> = inside.steps.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(stages, ["identity", "connection", "ip", "rate_limit"]);
}
