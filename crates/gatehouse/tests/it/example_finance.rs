//! Drives `examples/finance/policies.json` through a real Gatehouse: it allows, denies,
//! rate-limits, redacts and blocks as `examples/finance/README.md` documents.

use gatehouse::admin::explain::{Question, explain};
use serde_json::json;

use crate::{
    helpers::{TestApp, rpc_message},
    scripted_upstream::Upstream,
};

const POLICIES: &str = include_str!("../../../../examples/finance/policies.json");
const FRANCE: &str = "192.0.2.10";
const RUSSIA: &str = "203.0.113.5";

fn tool(name: &str, arguments: serde_json::Value) -> serde_json::Value {
    json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": name, "arguments": arguments } })
}

#[tokio::test]
async fn the_finance_example_behaves_as_documented() {
    let geo = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/geo/countries.mmdb"
    );
    let upstream = Upstream::start().await;
    let app = TestApp::start_with(|c| {
        c.policy.geoip_database = Some(geo.into());
        c.policy.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    app.add_server("finance", &upstream.url()).await;
    let analyst = app
        .client_with_key("analyst-agent", "finance", "get_*,list_*,search_*")
        .await;
    let ledger = app
        .client_with_key("ledger-service", "finance", "get_*,list_*,post_transfer")
        .await;
    gatehouse::admin::import_policies(&*app.store, POLICIES)
        .await
        .unwrap();
    app.reload().await;

    // The schedule, at fixed times (the live part below must not depend on the hour).
    let snapshot = app.server.state.snapshot.current();
    let ask = |client: &'static str,
               tool: &'static str,
               ip: &str,
               at: &str,
               args: Option<serde_json::Value>| {
        let at: jiff::Timestamp = at.parse().unwrap();
        let args = args.unwrap_or(json!({}));
        let q = Question {
            client,
            server: "finance",
            tool: Some(tool),
            ip: ip.parse().unwrap(),
            at,
            arguments: Some(&args),
        };
        let answer = explain(&snapshot, &q);
        (answer.decision, answer.decided_by)
    };
    let tuesday_10 = "2026-11-24T09:00:00Z";
    assert_eq!(
        ask("analyst-agent", "get_balance", FRANCE, tuesday_10, None),
        ("allow", None)
    );
    assert_eq!(
        ask(
            "analyst-agent",
            "get_balance",
            FRANCE,
            "2026-11-24T19:00:00Z",
            None
        ),
        ("deny", Some("schedule:analysts-office-hours".into())),
        "20:00 in Paris"
    );
    assert_eq!(
        ask(
            "analyst-agent",
            "get_balance",
            FRANCE,
            "2026-11-28T09:00:00Z",
            None
        )
        .0,
        "deny",
        "Saturday"
    );
    assert_eq!(
        ask("analyst-agent", "get_balance", RUSSIA, tuesday_10, None),
        ("deny", Some("country:analysts-eu-only".into()))
    );
    assert_eq!(
        ask("analyst-agent", "post_transfer", FRANCE, tuesday_10, None),
        ("deny", Some("connection".into()))
    );
    let big = Some(json!({ "amount": 50000, "currency": "EUR" }));
    assert_eq!(
        ask(
            "ledger-service",
            "post_transfer",
            RUSSIA,
            "2026-11-28T23:00:00Z",
            big
        ),
        ("deny", Some("arguments:transfer-limits".into()))
    );
    let fine = Some(json!({ "amount": 100, "currency": "EUR" }));
    assert_eq!(
        ask(
            "ledger-service",
            "post_transfer",
            RUSSIA,
            "2026-11-28T23:00:00Z",
            fine
        )
        .0,
        "allow",
        "ledger: anywhere, any time"
    );

    // Live traffic, with the office-hours rule lifted so the result does not depend on the clock.
    app.store
        .delete_policy("analysts-office-hours")
        .await
        .unwrap();
    app.reload().await;
    let send = |key: &str, ip: &str, body: serde_json::Value| {
        app.post("finance", Some(key), &body)
            .header("x-forwarded-for", ip)
            .send()
    };
    let (status, _, body) = rpc_message(
        send(
            &analyst,
            FRANCE,
            tool(
                "get_customer",
                json!({ "text": "jane@example.com, IBAN DE89 3704 0044 0532 0130 00" }),
            ),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["result"]["content"][0]["text"],
        "called get_customer: [REDACTED:email], IBAN [REDACTED:iban]"
    );

    let (status, _, body) = rpc_message(
        send(&analyst, RUSSIA, tool("get_balance", json!({})))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["data"]["policy"]["rule"].as_str()),
        (403, Some("analysts-eu-only"))
    );
    let (status, _, _) = rpc_message(
        send(
            &analyst,
            FRANCE,
            tool("post_transfer", json!({ "amount": 1, "currency": "EUR" })),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "analysts cannot write");

    let (status, _, body) = rpc_message(
        send(
            &ledger,
            RUSSIA,
            tool(
                "post_transfer",
                json!({ "amount": 50000, "currency": "EUR" }),
            ),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["data"]["policy"]["rule"].as_str()),
        (403, Some("transfer-limits"))
    );
    let (status, _, _) = rpc_message(
        send(
            &ledger,
            RUSSIA,
            tool("post_transfer", json!({ "amount": 100, "currency": "EUR" })),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);

    let (status, _, body) = rpc_message(
        send(
            &ledger,
            FRANCE,
            tool("get_balance", json!({ "note": "use AKIAIOSFODNN7EXAMPLE" })),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["data"]["guardrail"]["rule"].as_str()),
        (200, Some("no-secrets"))
    );

    // Bursts of 10 per analyst key, then 1 per second.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(
            send(&analyst, FRANCE, tool("list_accounts", json!({})))
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(statuses[0], 200);
}
