//! Audit search (filters, newest first, cursor) and export (JSON lines).

use super::{AdminApi, answer};
use crate::{helpers::call, scripted_upstream::Upstream};
use gatehouse_model::records::AdminRole;
use serde_json::Value;

#[tokio::test]
async fn audit_search_filters_pages_newest_first_and_export_streams_json_lines() {
    let upstream = Upstream::start().await;
    let api = AdminApi::start().await;
    let app = &api.app;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    for tool in ["echo", "echo", "add", "echo"] {
        let response = app
            .post("demo", Some(&key), &call(tool))
            .send()
            .await
            .unwrap();
        response.text().await.unwrap();
    }
    let auditor = api.token(AdminRole::Auditor).await;

    // Three allowed calls of echo, newest first, two per page.
    let mut seqs = Vec::new();
    let mut path = "/admin/api/v1/audit/events?tool=echo&decision=allow&limit=2".to_owned();
    loop {
        let (status, page) = answer(api.get(&path, &auditor)).await;
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            assert_eq!(item["tool"], "echo");
            assert_eq!(item["decision"], "allow");
            seqs.push(item["seq"].as_i64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(c) => {
                path = format!(
                    "/admin/api/v1/audit/events?tool=echo&decision=allow&limit=2&cursor={c}"
                )
            }
            None => break,
        }
    }
    assert_eq!(seqs.len(), 3, "{seqs:?}");
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );

    let key_id = &key[4..16];
    let (_, denied) = answer(api.get(
        &format!("/admin/api/v1/audit/events?key={key_id}&reason=tool_not_granted"),
        &auditor,
    ))
    .await;
    let denied = denied["items"].as_array().unwrap();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["tool"], "add");

    let last = seqs[0];
    let (_, none) = answer(api.get(
        &format!(
            "/admin/api/v1/audit/events?tool=echo&since={}",
            i64::MAX / 2
        ),
        &auditor,
    ))
    .await;
    assert!(none["items"].as_array().unwrap().is_empty());

    let response = api
        .get("/admin/api/v1/audit/export?client=agent", &auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/jsonl");
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines
            .windows(2)
            .all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64()),
        "oldest first"
    );
    assert_eq!(lines[3]["seq"].as_i64(), Some(last));

    let (status, bad) =
        answer(api.get("/admin/api/v1/audit/events?decision=maybe", &auditor)).await;
    assert_eq!((status, bad["code"].as_str()), (400, Some("malformed")));
}

/// Each refusal records the rule that decided it, and audit search finds it by that rule and
/// by no other: a named rate-limit policy, a guardrail, a missing grant.
#[tokio::test]
async fn audit_search_finds_refusals_by_the_rule_that_decided() {
    let upstream = Upstream::start().await;
    let api = AdminApi::start().await;
    let app = &api.app;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "echo,add").await;
    app.policy(
        "one-add-a-minute",
        "rate_limit",
        serde_json::json!({ "requests": 1, "period": "1m", "burst": 1 }),
        (None, Some("demo"), Some("add")),
    )
    .await;
    app.policy(
        "no-cards",
        "guardrail",
        serde_json::json!({ "direction": "request", "action": "block", "detectors": ["credit_card"] }),
        (None, None, None),
    )
    .await;
    let card = serde_json::json!({ "jsonrpc": "2.0", "id": 11, "method": "tools/call",
        "params": { "name": "echo", "arguments": { "text": "charge 4111 1111 1111 1111" } } });
    for body in [call("add"), call("add"), card, call("echo"), call("delete")] {
        app.post("demo", Some(&key), &body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    }
    let auditor = api.token(AdminRole::Auditor).await;
    let found = |rule: &'static str| {
        let request = api.get(&format!("/admin/api/v1/audit/events?rule={rule}"), &auditor);
        async move {
            let (status, page) = answer(request).await;
            assert_eq!(status, 200, "{page}");
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|item| {
                    assert_eq!(item["rule"], rule, "{item}");
                    (
                        item["tool"].as_str().unwrap_or("-").to_owned(),
                        item["reason"].as_str().unwrap_or("-").to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        found("policy:one-add-a-minute").await,
        [("add".into(), "rate_limit:one-add-a-minute".into())]
    );
    assert_eq!(
        found("guardrail:no-cards").await,
        [("echo".into(), "guardrail:no-cards:credit_card:block".into())]
    );
    assert_eq!(
        found("grant").await,
        [("delete".into(), "tool_not_granted".into())]
    );
    assert!(found("policy:no-cards").await.is_empty());
    assert!(found("guardrail:one-add-a-minute").await.is_empty());

    // The allowed calls record no rule.
    let (_, allowed) = answer(api.get(
        "/admin/api/v1/audit/events?decision=allow&kind=request",
        &auditor,
    ))
    .await;
    let allowed = allowed["items"].as_array().unwrap();
    assert_eq!(allowed.len(), 2, "{allowed:?}");
    assert!(allowed.iter().all(|item| item.get("rule").is_none()));
}
