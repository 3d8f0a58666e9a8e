//! The edits operators make beside creating and deleting: rejecting held tool definitions,
//! deleting a client, a user's profile and password, importing policies, and a signing key's
//! default lead. Each change is an operator event naming the token; each role boundary holds.

use super::{AdminApi, answer};
use gatehouse_model::records::{AdminRole, ToolObservation};
use reqwest::Method;
use serde_json::{Value, json};

fn seen(tool: &str, hash: &str) -> ToolObservation {
    ToolObservation {
        server: "demo".into(),
        tool: tool.into(),
        hash: hash.into(),
        definition: format!(r#"{{"name":"{tool}","description":"{hash}"}}"#),
        suspicious: None,
        at: 1_000,
    }
}

/// The newest operator event's action and target.
async fn last_operator_event(api: &AdminApi, token: &str) -> (String, String) {
    let (_, page) =
        answer(api.get("/admin/api/v1/audit/events?kind=operator&limit=1", token)).await;
    let event = &page["items"][0]["operator"];
    (
        event["action"].as_str().unwrap_or_default().to_owned(),
        event["actor"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn a_held_tool_definition_is_rejected_and_the_approved_one_stays() {
    let api = AdminApi::start().await;
    let operator = api.token(AdminRole::Operator).await;
    let auditor = api.token(AdminRole::Auditor).await;
    let (status, _) = answer(api.post(
        "/admin/api/v1/servers",
        &operator,
        &json!({"name": "demo", "url": "http://127.0.0.1:9/mcp"}),
    ))
    .await;
    assert_eq!(status, 201);
    for (tool, hash) in [("echo", "v1"), ("echo", "v2"), ("add", "a1"), ("add", "a2")] {
        api.app.store.observe_tool(&seen(tool, hash)).await.unwrap();
    }
    let reject = "/admin/api/v1/servers/demo/tool-pins/reject";
    let (status, _) = answer(api.post(reject, &auditor, &json!({"tools": ["echo"]}))).await;
    assert_eq!(status, 403, "an auditor cannot decide on pins");
    let (status, body) = answer(api.post(reject, &operator, &json!({"tools": ["nope"]}))).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));

    let (status, body) = answer(api.post(reject, &operator, &json!({"tools": ["echo"]}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"server": "demo", "rejected": 1}));
    let (_, pins) = answer(api.get("/admin/api/v1/tool-pins?server=demo", &auditor)).await;
    let pin = |tool: &str| -> Value {
        pins["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["tool"] == tool)
            .cloned()
            .unwrap()
    };
    assert_eq!(pin("echo")["approved_hash"], "v1");
    assert_eq!(pin("echo")["pending_hash"], Value::Null);
    assert_eq!(pin("add")["pending_hash"], "a2", "only the named tool");
    let (action, actor) = last_operator_event(&api, &auditor).await;
    assert_eq!(action, "server.reject_tools");
    assert!(actor.starts_with("admin-token:operator-token"), "{actor}");

    let (status, _) = answer(api.post(
        "/admin/api/v1/servers/ghost/tool-pins/reject",
        &operator,
        &json!({}),
    ))
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_client_is_deleted_with_its_keys_unless_a_policy_is_scoped_to_it() {
    let api = AdminApi::start().await;
    let admin = api.token(AdminRole::Admin).await;
    let operator = api.token(AdminRole::Operator).await;
    let auditor = api.token(AdminRole::Auditor).await;
    answer(api.post(
        "/admin/api/v1/clients",
        &operator,
        &json!({"name": "agent"}),
    ))
    .await;
    let (status, key) =
        answer(api.post("/admin/api/v1/keys", &admin, &json!({"client": "agent"}))).await;
    assert_eq!(status, 201);
    let key_id = key["id"].as_str().unwrap().to_owned();
    answer(api.post(
        "/admin/api/v1/policies",
        &operator,
        &json!({"id": "agent-rate", "kind": "rate_limit", "client": "agent",
                "spec": {"requests": 5, "period": "1m"}}),
    ))
    .await;

    let delete = |token: &str| {
        answer(api.request(Method::DELETE, "/admin/api/v1/clients/agent", Some(token)))
    };
    assert_eq!(delete(&auditor).await.0, 403, "an auditor cannot delete");
    let (status, body) = delete(&operator).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("agent-rate"),
        "{body}"
    );
    assert_eq!(
        answer(api.get("/admin/api/v1/clients/agent", &auditor))
            .await
            .0,
        200,
        "a refused delete leaves the client"
    );

    answer(api.request(
        Method::DELETE,
        "/admin/api/v1/policies/agent-rate",
        Some(&operator),
    ))
    .await;
    assert_eq!(delete(&operator).await.0, 204);
    assert_eq!(
        answer(api.get("/admin/api/v1/clients/agent", &auditor))
            .await
            .0,
        404
    );
    let (status, _) = answer(api.get(&format!("/admin/api/v1/keys/{key_id}"), &auditor)).await;
    assert_eq!(status, 404, "its keys went with it");
    assert_eq!(last_operator_event(&api, &auditor).await.0, "client.delete");
    assert_eq!(delete(&operator).await.0, 404);
}

#[tokio::test]
async fn a_users_profile_and_password_are_edited_by_the_roles_allowed() {
    let api = AdminApi::start().await;
    let admin = api.token(AdminRole::Admin).await;
    let operator = api.token(AdminRole::Operator).await;
    let auditor = api.token(AdminRole::Auditor).await;
    answer(api.post(
        "/admin/api/v1/users",
        &operator,
        &json!({"username": "alice", "display_name": "Alice", "password": "first-password-1"}),
    ))
    .await;
    let patch = |token: &str, body: Value| {
        answer(
            api.request(Method::PATCH, "/admin/api/v1/users/alice", Some(token))
                .json(&body),
        )
    };
    assert_eq!(patch(&auditor, json!({"display_name": "A"})).await.0, 403);
    let (status, user) = patch(&operator, json!({"display_name": "Alice Liddell"})).await;
    assert_eq!(
        (status, &user["display_name"]),
        (200, &json!("Alice Liddell"))
    );
    assert_eq!(last_operator_event(&api, &auditor).await.0, "user.update");
    let (status, body) = patch(&operator, json!({"display_name": "a\u{1b}[2Jb"})).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid")));
    let (status, _) = patch(&operator, json!({"groups": ["x"]})).await;
    assert_eq!(status, 400, "groups have their own operation");

    let password = |token: &str, body: Value| {
        answer(
            api.request(
                Method::PUT,
                "/admin/api/v1/users/alice/password",
                Some(token),
            )
            .json(&body),
        )
    };
    let (status, _) = password(&operator, json!({"password": "second-password-2"})).await;
    assert_eq!(status, 403, "a password is a credential: admin only");
    let (status, body) = password(&admin, json!({"password": "short"})).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid")));
    assert_eq!(
        password(&admin, json!({"password": "second-password-2"}))
            .await
            .0,
        204
    );
    let stored = api.app.store.get_user("alice").await.unwrap();
    assert!(gatehouse::identity::passwords::verify(
        stored.password_hash.as_deref(),
        "second-password-2"
    ));
    let (action, _) = last_operator_event(&api, &auditor).await;
    assert_eq!(action, "user.set_password");
    let (_, events) = answer(api.get("/admin/api/v1/audit/events?kind=operator", &auditor)).await;
    assert!(
        !events.to_string().contains("second-password-2"),
        "the password is never recorded"
    );
    // A user who signs in through a provider gets no local password beside it.
    let mut federated = api.app.store.get_user("alice").await.unwrap();
    federated.id = "usr_federated".into();
    federated.username = "bob".into();
    federated.password_hash = None;
    federated.idp = Some("corp".into());
    federated.idp_subject = Some("bob-at-corp".into());
    api.app.store.insert_user(&federated).await.unwrap();
    let (status, body) = answer(
        api.request(
            Method::PUT,
            "/admin/api/v1/users/bob/password",
            Some(&admin),
        )
        .json(&json!({"password": "whatever-password"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("provider"),
        "{body}"
    );
    let bob = api.app.store.get_user("bob").await.unwrap();
    assert_eq!(bob.password_hash, None);
    let (status, _) = answer(
        api.request(
            Method::PUT,
            "/admin/api/v1/users/ghost/password",
            Some(&admin),
        )
        .json(&json!({"password": "whatever-password"})),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn policies_are_imported_all_or_none() {
    let api = AdminApi::start().await;
    let operator = api.token(AdminRole::Operator).await;
    let auditor = api.token(AdminRole::Auditor).await;
    let import = |token: &str, policies: Value| {
        answer(api.post(
            "/admin/api/v1/policies/import",
            token,
            &json!({ "policies": policies }),
        ))
    };
    let good = json!([
        {"id": "b-rate", "kind": "rate_limit", "spec": {"requests": 1, "period": "1s"}},
        {"id": "a-ip", "kind": "ip", "spec": {"allow": ["10.0.0.0/8"]}},
    ]);
    assert_eq!(import(&auditor, good.clone()).await.0, 403);
    let broken = json!([
        {"id": "fine", "kind": "rate_limit", "spec": {"requests": 1, "period": "1s"}},
        {"id": "broken", "kind": "ip", "spec": {"allow": ["10.0.0.0/99"]}},
    ]);
    let (status, body) = import(&operator, broken).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("broken"),
        "{body}"
    );
    let (_, listed) = answer(api.get("/admin/api/v1/policies", &auditor)).await;
    assert_eq!(
        listed["items"],
        json!([]),
        "nothing of a bad import is added"
    );

    let (status, body) = import(&operator, good).await;
    assert_eq!(status, 201, "{body}");
    let ids: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a-ip", "b-rate"]);
    assert_eq!(last_operator_event(&api, &auditor).await.0, "policy.import");
    let (status, _) = answer(
        api.request(
            Method::POST,
            "/admin/api/v1/policies/import",
            Some(&operator),
        )
        .json(&json!({"policies": {"id": "not-an-array"}})),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_signing_key_rotated_without_a_lead_waits_for_the_configured_one() {
    let api = AdminApi::start().await;
    let admin = api.token(AdminRole::Admin).await;
    let lead_ms = i64::try_from(
        api.app
            .server
            .state
            .config
            .oauth
            .key_publish_lead
            .as_millis(),
    )
    .unwrap();
    assert!(lead_ms > 0, "the default configuration publishes ahead");
    let before = gatehouse::now_ms();
    let (status, key) =
        answer(api.post("/admin/api/v1/signing-keys/rotate", &admin, &json!({}))).await;
    assert_eq!(status, 201, "{key}");
    assert!(
        key["active_at"].as_i64().unwrap() >= before + lead_ms,
        "signs only after the configured lead: {key}"
    );
    let (_, now) = answer(api.post(
        "/admin/api/v1/signing-keys/rotate",
        &admin,
        &json!({"lead_seconds": 0}),
    ))
    .await;
    assert!(now["active_at"].as_i64().unwrap() <= gatehouse::now_ms());
}
