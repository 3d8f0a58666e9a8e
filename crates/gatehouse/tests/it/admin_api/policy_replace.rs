//! Replacing a policy (`PUT /policies/{id}`): one stored change and one operator event; the
//! new kind, scope and specification are checked first, so a refused replacement leaves the
//! policy in force.

use super::{AdminApi, answer};
use gatehouse_model::records::AdminRole;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_policy_is_replaced_and_a_refused_replacement_leaves_the_old_one() {
    let api = AdminApi::start().await;
    let operator = api.token(AdminRole::Operator).await;
    let auditor = api.token(AdminRole::Auditor).await;
    let (status, body) = answer(api.post(
        "/admin/api/v1/policies",
        &operator,
        &json!({"id": "burst", "kind": "rate_limit", "spec": {"requests": 5, "period": "1m"}}),
    ))
    .await;
    assert_eq!(status, 201, "{body}");
    let put = |token: &str, path: &str, body: serde_json::Value| {
        api.request(Method::PUT, path, Some(token)).json(&body)
    };

    let (status, body) = answer(put(
        &operator,
        "/admin/api/v1/policies/burst",
        json!({"kind": "rate_limit", "tools": "search_*", "spec": {"requests": 9, "period": "1h"}}),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "burst");
    assert_eq!(body["tools"], "search_*");
    assert_eq!(body["spec"], json!({"requests": 9, "period": "1h"}));
    let (_, events) =
        answer(api.get("/admin/api/v1/audit/events?kind=operator&limit=1", &auditor)).await;
    assert_eq!(
        events["items"][0]["operator"]["action"], "policy.replace",
        "one operator event: {events}"
    );

    let (status, body) = answer(put(
        &operator,
        "/admin/api/v1/policies/burst",
        json!({"kind": "rate_limit", "spec": {"requests": "many"}}),
    ))
    .await;
    assert_eq!(status, 422, "{body}");
    let (_, kept) = answer(api.get("/admin/api/v1/policies/burst", &auditor)).await;
    assert_eq!(
        kept["spec"],
        json!({"requests": 9, "period": "1h"}),
        "the refused replacement left the policy in force"
    );

    let (status, _) = answer(put(
        &auditor,
        "/admin/api/v1/policies/burst",
        json!({"kind": "rate_limit", "spec": {"requests": 1, "period": "1s"}}),
    ))
    .await;
    assert_eq!(status, 403);
    let (status, body) = answer(put(
        &operator,
        "/admin/api/v1/policies/nowhere",
        json!({"kind": "rate_limit", "spec": {"requests": 1, "period": "1s"}}),
    ))
    .await;
    assert_eq!(status, 404, "{body}");
}
