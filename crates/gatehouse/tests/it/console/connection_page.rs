//! A connection's page: its grant edited and revoked, the policies and guardrails that apply
//! to it shown, added, edited and deleted; each refusal shown beside the field it names.

use super::Browser;
use gatehouse_model::records::AdminRole;
use serde_json::json;

async fn policy_spec(browser: &Browser, id: &str) -> Option<serde_json::Value> {
    let policies = browser.api.app.store.list_policies().await.unwrap();
    policies.into_iter().find(|p| p.id == id).map(|p| p.spec)
}

#[tokio::test]
async fn console_connection_page_edits_its_grant_and_the_policies_and_guardrails_on_it() {
    let mut browser = Browser::start().await;
    let app = &browser.api.app;
    app.add_server("demo", "http://127.0.0.1:9/mcp").await;
    app.add_server("other", "http://127.0.0.1:9/mcp").await;
    gatehouse::admin::create_client(&*app.store, "shop", "")
        .await
        .unwrap();
    app.grant("shop", "demo", "echo").await;
    let burst = json!({"requests": 5, "period": "1m"});
    app.policy("everyone", "rate_limit", burst.clone(), (None, None, None))
        .await;
    app.policy(
        "shop-only",
        "rate_limit",
        burst.clone(),
        (Some("shop"), None, None),
    )
    .await;
    app.policy(
        "other-only",
        "rate_limit",
        burst.clone(),
        (None, Some("other"), None),
    )
    .await;
    let cards = json!({"direction": "request", "action": "block", "detectors": ["credit_card"]});
    app.policy(
        "no-cards",
        "guardrail",
        cards,
        (Some("shop"), Some("demo"), None),
    )
    .await;
    let csrf = browser.sign_in(AdminRole::Operator).await;

    // The matrix links each granted cell to its connection's page.
    let matrix = browser.get("/console/connections").await;
    matrix.assert_contains(r#"href="/console/connections/shop/demo""#);
    let page = browser.get("/console/connections/shop/demo").await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_contains("<dt>Tools</dt><dd><code>echo</code></dd>");
    page.assert_contains("<code>everyone</code>");
    page.assert_contains("<code>shop-only</code>");
    page.assert_contains("<code>no-cards</code>");
    assert!(
        !page.body.contains("<code>other-only</code>"),
        "a policy scoped to another server is not this connection's: {}",
        page.body
    );
    let guardrails = page.body.split("<h2>Guardrails</h2>").nth(1).unwrap();
    assert!(
        guardrails.contains("<code>no-cards</code>"),
        "{}",
        page.body
    );

    // The grant, edited; a bad pattern is refused beside the tools field.
    let saved = browser
        .post(
            "/console/connections/shop/demo",
            &[
                ("csrf", &csrf),
                ("tools", "echo,search_*"),
                ("resources", "on"),
            ],
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    saved.assert_contains("<dt>Tools</dt><dd><code>echo, search_*</code></dd>");
    let connections = browser.api.app.store.list_connections().await.unwrap();
    assert_eq!(connections[0].tools, ["echo", "search_*"]);
    assert!(connections[0].resources);
    let refused = browser
        .post(
            "/console/connections/shop/demo",
            &[("csrf", &csrf), ("tools", "echo,bad pattern")],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    refused.assert_contains(
        r#"aria-invalid="true" aria-describedby="grant-tools-help grant-tools-error""#,
    );
    refused.assert_contains(r#"<p class="field-error" id="grant-tools-error" role="alert">"#);
    refused.assert_contains(r#"value="echo,bad pattern""#);

    // A policy added for the connection: JSON that is not, and a spec the kind refuses, are
    // each shown beside the specification; a valid one is stored with the connection's scope.
    let add = |spec: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("id", "shop-demo-burst".to_owned()),
            ("kind", "rate_limit".to_owned()),
            ("client", "shop".to_owned()),
            ("server", "demo".to_owned()),
            ("spec", spec.to_owned()),
        ]
    };
    let fields =
        |pairs: &[(&'static str, String)]| -> Vec<(&'static str, String)> { pairs.to_vec() };
    for (spec, reason) in [
        ("{not json", "spec: not JSON"),
        (r#"{"requests": "many"}"#, "requests"),
    ] {
        let pairs = fields(&add(spec));
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let refused = browser
            .post("/console/connections/shop/demo/policies", &pairs)
            .await;
        assert_eq!(refused.status, 422, "{}", refused.body);
        refused.assert_contains(r#"<p class="field-error" id="policy-spec-error" role="alert">"#);
        refused.assert_contains(reason);
        refused.assert_contains(
            r#"aria-invalid="true" aria-describedby="policy-spec-help policy-spec-error""#,
        );
        assert_eq!(policy_spec(&browser, "shop-demo-burst").await, None);
    }
    let pairs = fields(&add(r#"{"requests": 2, "period": "1h"}"#));
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let added = browser
        .post("/console/connections/shop/demo/policies", &pairs)
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    added.assert_contains("<code>shop-demo-burst</code>");
    assert_eq!(
        policy_spec(&browser, "shop-demo-burst").await,
        Some(json!({"requests": 2, "period": "1h"}))
    );

    // Edited on its own page: an unknown kind is named beside the kind; a valid edit is kept.
    let edit = browser.get("/console/policies/shop-only").await;
    assert_eq!(edit.status, 200, "{}", edit.body);
    edit.assert_contains(r#"<option value="rate_limit" selected>rate_limit</option>"#);
    let wrong_kind = browser
        .post(
            "/console/policies/shop-only",
            &[
                ("csrf", &csrf),
                ("kind", "burst"),
                ("client", "shop"),
                ("spec", r#"{"requests": 1, "period": "1s"}"#),
            ],
        )
        .await;
    assert_eq!(wrong_kind.status, 422, "{}", wrong_kind.body);
    wrong_kind.assert_contains(
        r#"<p class="field-error" id="policy-kind-error" role="alert">unknown policy kind"#,
    );
    assert_eq!(
        policy_spec(&browser, "shop-only").await,
        Some(burst.clone())
    );
    let saved = browser
        .post(
            "/console/policies/shop-only",
            &[
                ("csrf", &csrf),
                ("kind", "rate_limit"),
                ("client", "shop"),
                ("spec", r#"{"requests": 7, "period": "1m"}"#),
            ],
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    saved.assert_contains("Saved shop-only");
    assert_eq!(
        policy_spec(&browser, "shop-only").await,
        Some(json!({"requests": 7, "period": "1m"}))
    );

    // Deleted from the connection's page, which it returns to.
    let deleted = browser
        .post(
            "/console/policies/no-cards/delete",
            &[("csrf", &csrf), ("back", "/console/connections/shop/demo")],
        )
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    assert_eq!(deleted.location(), "/console/connections/shop/demo");
    assert_eq!(policy_spec(&browser, "no-cards").await, None);

    // Revoked.
    let revoked = browser
        .post("/console/connections/shop/demo/revoke", &[("csrf", &csrf)])
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    revoked.assert_contains("Not granted: the client does not reach this server.");
    assert!(
        browser
            .api
            .app
            .store
            .list_connections()
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn console_policies_page_links_each_policy_to_its_edit_page_deletes_and_an_auditor_sees_no_form()
 {
    let mut browser = Browser::start().await;
    browser
        .api
        .app
        .policy(
            "burst",
            "rate_limit",
            json!({"requests": 5, "period": "1m"}),
            (None, None, None),
        )
        .await;
    let csrf = browser.sign_in(AdminRole::Operator).await;
    let page = browser.get("/console/policies").await;
    page.assert_contains(r#"<a href="/console/policies/burst">Edit burst</a>"#);
    page.assert_contains("Delete burst</button>");
    let deleted = browser
        .post("/console/policies/burst/delete", &[("csrf", &csrf)])
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    deleted.assert_contains("Deleted burst.");
    assert!(
        browser
            .api
            .app
            .store
            .list_policies()
            .await
            .unwrap()
            .is_empty()
    );

    browser
        .api
        .app
        .policy(
            "burst",
            "rate_limit",
            json!({"requests": 5, "period": "1m"}),
            (None, None, None),
        )
        .await;
    browser.set_cookies(&[]);
    let csrf = browser.sign_in(AdminRole::Auditor).await;
    let page = browser.get("/console/policies").await;
    page.assert_contains("<code>burst</code>");
    for form in ["Edit burst", "Delete burst", "Add a policy"] {
        assert!(!page.body.contains(form), "{form}: {}", page.body);
    }
    let refused = browser
        .post("/console/policies/burst/delete", &[("csrf", &csrf)])
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    refused.assert_contains("operator");
    assert_eq!(
        browser.api.app.store.list_policies().await.unwrap().len(),
        1
    );
}
