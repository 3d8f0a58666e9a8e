//! The admin API on several replicas of one store: a token works on every one, a revocation
//! holds on every one at once, and a retried create reaching another replica gets the first
//! answer.

use super::answer;
use crate::cluster::TestCluster;
use gatehouse::admin::{AdminService, Operator};
use gatehouse_model::records::AdminRole;
use gatehouse_testkit::redis::Redis;
use serde_json::json;

#[tokio::test]
async fn replicas_share_tokens_revocations_and_idempotent_answers() {
    let cluster = TestCluster::start_on(None, Redis::shared().url(), |config| {
        config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let [a, b] = [&cluster.replicas[0], &cluster.replicas[1]];
    let by = Operator::cli("setup", None).unwrap();
    let service = AdminService::new(
        a.store.clone(),
        a.keyring.clone(),
        a.server.state.audit.clone(),
    );
    let admin = service
        .create_admin_token(&by, "ci", AdminRole::Admin, None)
        .await
        .unwrap();
    let base = |app: &crate::helpers::TestApp| {
        format!("http://{}/admin/api/v1", app.server.admin_addr.unwrap())
    };
    let create = |app: &crate::helpers::TestApp, path: &str, body: serde_json::Value| {
        app.http
            .post(format!("{}{path}", base(app)))
            .bearer_auth(&admin.token)
            .header("Idempotency-Key", "retry-me")
            .json(&body)
    };

    let (status, _) = answer(
        a.http
            .post(format!("{}/clients", base(a)))
            .bearer_auth(&admin.token)
            .json(&json!({"name": "agent"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, first) = answer(create(a, "/keys", json!({"client": "agent"}))).await;
    assert_eq!(status, 201, "{first}");
    let (status, retried) = answer(create(b, "/keys", json!({"client": "agent"}))).await;
    assert_eq!(status, 201, "{retried}");
    assert_eq!(
        retried, first,
        "another replica answers the retry with the first answer"
    );
    assert_eq!(a.store.list_api_keys(Some("agent")).await.unwrap().len(), 1);

    service
        .revoke_admin_token(&by, &admin.record.id)
        .await
        .unwrap();
    for app in [a, b] {
        let (status, body) = answer(
            app.http
                .get(format!("{}/whoami", base(app)))
                .bearer_auth(&admin.token),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("token_not_recognised"))
        );
    }
}
