//! Authentication, throttling, problem documents and the audit record of a change.

use super::{AdminApi, answer};
use gatehouse::admin::Operator;
use gatehouse_model::records::AdminRole;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn refusals_are_problem_documents_with_a_stable_code() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    let _snapshots = settings.bind_to_scope();
    let api = AdminApi::start().await;
    let auditor = api.token(AdminRole::Auditor).await;
    let operator = api.token(AdminRole::Operator).await;

    let response = api
        .request(Method::GET, "/admin/api/v1/servers", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(response.headers().contains_key("www-authenticate"));
    let unauthenticated: serde_json::Value = response.json().await.unwrap();
    insta::assert_json_snapshot!("admin_api_unauthenticated", unauthenticated);

    let (status, forbidden) = answer(api.post(
        "/admin/api/v1/servers",
        &auditor,
        &json!({"name": "demo", "url": "http://127.0.0.1:1/mcp"}),
    ))
    .await;
    assert_eq!(status, 403);
    insta::assert_json_snapshot!("admin_api_forbidden", forbidden);

    let (status, not_found) = answer(api.get("/admin/api/v1/servers/nowhere", &auditor)).await;
    assert_eq!(status, 404);
    insta::assert_json_snapshot!("admin_api_not_found", not_found);

    let (status, invalid) = answer(api.post(
        "/admin/api/v1/servers",
        &operator,
        &json!({"name": "Not A Name", "url": "http://127.0.0.1:1/mcp"}),
    ))
    .await;
    assert_eq!(status, 422);
    insta::assert_json_snapshot!("admin_api_invalid", invalid);

    let (status, malformed) = answer(api.post(
        "/admin/api/v1/servers",
        &operator,
        &json!({"name": "demo", "url": "http://127.0.0.1:1/mcp", "surprise": 1}),
    ))
    .await;
    assert_eq!(status, 400);
    assert_eq!(malformed["code"], "malformed");

    let (status, unknown) = answer(api.get("/admin/api/v1/nothing-here", &auditor)).await;
    assert_eq!(status, 404);
    assert_eq!(unknown["code"], "no_such_operation");
}

#[tokio::test]
async fn expired_and_revoked_tokens_are_refused_and_last_use_is_recorded() {
    let api = AdminApi::start().await;
    let by = Operator::cli("setup", None).unwrap();
    // Created at the epoch with a lifetime of a second: long expired.
    let expired = api
        .service()
        .with_clock(|| 0)
        .create_admin_token(
            &by,
            "old",
            AdminRole::Admin,
            Some(std::time::Duration::from_secs(1)),
        )
        .await
        .unwrap();
    let (status, body) = answer(api.get("/admin/api/v1/whoami", &expired.token)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_expired"))
    );

    let live = api
        .service()
        .create_admin_token(&by, "live", AdminRole::Operator, None)
        .await
        .unwrap();
    let (status, me) = answer(api.get("/admin/api/v1/whoami", &live.token)).await;
    assert_eq!(status, 200);
    assert_eq!(
        me,
        json!({"token_id": live.record.id, "name": "live", "role": "operator"})
    );
    let stored = api
        .app
        .store
        .get_admin_token(&live.record.id)
        .await
        .unwrap();
    assert!(stored.last_used_at.is_some(), "the use was recorded");

    api.service()
        .revoke_admin_token(&by, &live.record.id)
        .await
        .unwrap();
    let (status, body) = answer(api.get("/admin/api/v1/whoami", &live.token)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_not_recognised"))
    );

    // An API key is not an admin token, though it has the same shape.
    gatehouse::admin::create_client(&*api.app.store, "agent", "")
        .await
        .unwrap();
    let key = api.app.key("agent", None).await;
    let (status, body) = answer(api.get("/admin/api/v1/whoami", &key)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_not_recognised"))
    );
}

#[tokio::test]
async fn failed_authentications_from_an_address_are_throttled_with_retry_after() {
    let api = AdminApi::start_with(|config| config.http.login_max_failures = 3).await;
    let good = api.token(AdminRole::Admin).await;
    // The last character changed, never kept: a token that already ends in `x` must not be
    // "forged" into itself (which made this test fail now and then).
    let last = if good.ends_with('x') { 'y' } else { 'x' };
    let forged = format!("{}{last}", &good[..good.len() - 1]);
    assert_ne!(forged, good);
    for _ in 0..3 {
        let (status, _) = answer(api.get("/admin/api/v1/whoami", &forged)).await;
        assert_eq!(status, 401);
    }
    let response = api.get("/admin/api/v1/whoami", &good).send().await.unwrap();
    assert_eq!(
        response.status(),
        429,
        "even a good token waits out the lock"
    );
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "throttled");
}

#[tokio::test]
async fn a_change_is_recorded_with_the_token_the_address_and_before_after() {
    let api = AdminApi::start().await;
    let operator = api.token(AdminRole::Operator).await;
    let (status, _) = answer(api.post(
        "/admin/api/v1/servers",
        &operator,
        &json!({"name": "demo", "url": "http://127.0.0.1:1/mcp"}),
    ))
    .await;
    assert_eq!(status, 201);
    let (status, updated) = answer(
        api.request(Method::PATCH, "/admin/api/v1/servers/demo", Some(&operator))
            .json(&json!({"url": "http://127.0.0.1:2/mcp"})),
    )
    .await;
    assert_eq!(
        (status, updated["url"].as_str()),
        (200, Some("http://127.0.0.1:2/mcp"))
    );

    let rows = api.app.audit().await;
    let update = rows
        .iter()
        .filter_map(|r| Some((r, r.event.operator.as_ref()?)))
        .find(|(_, op)| op.action == "server.update")
        .expect("the update is in the trail");
    let (row, op) = update;
    assert_eq!(op.origin, "api");
    assert!(
        op.actor.starts_with("admin-token:operator-token ("),
        "{}",
        op.actor
    );
    assert_eq!(row.event.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(op.before.as_ref().unwrap()["url"], "http://127.0.0.1:1/mcp");
    assert_eq!(op.after.as_ref().unwrap()["url"], "http://127.0.0.1:2/mcp");
}
