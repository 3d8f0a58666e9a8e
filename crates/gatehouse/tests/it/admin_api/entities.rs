//! Entities through the API: test-connection, key secrets, pagination, idempotency.

use super::{AdminApi, answer};
use crate::scripted_upstream::Upstream;
use gatehouse_model::records::AdminRole;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn test_connection_lists_the_upstreams_tools_and_grants_nothing() {
    let upstream = Upstream::start().await;
    let api = AdminApi::start().await;
    let operator = api.token(AdminRole::Operator).await;
    let (status, _) = answer(api.post(
        "/admin/api/v1/servers",
        &operator,
        &json!({"name": "demo", "url": upstream.url(), "credential": "X-Upstream-Key: s3cret"}),
    ))
    .await;
    assert_eq!(status, 201);
    let (status, tested) = answer(api.post(
        "/admin/api/v1/servers/demo/test-connection",
        &operator,
        &json!({}),
    ))
    .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["reachable"], true);
    let names: Vec<&str> = tested["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"echo"), "{names:?}");
    let received = upstream.received();
    assert!(
        received.iter().all(|r| r
            .headers
            .get("x-upstream-key")
            .is_some_and(|v| v == "s3cret")),
        "the server's credential went with every probe request"
    );
    assert!(api.app.store.list_connections().await.unwrap().is_empty());
    assert!(
        api.app.store.list_tool_pins().await.unwrap().is_empty(),
        "nothing was pinned"
    );

    let (status, unreachable) = answer(api.post(
        "/admin/api/v1/servers",
        &operator,
        &json!({"name": "gone", "url": "http://127.0.0.1:1/mcp"}),
    ))
    .await;
    assert_eq!(status, 201, "{unreachable}");
    let (status, tested) = answer(api.post(
        "/admin/api/v1/servers/gone/test-connection",
        &operator,
        &json!({}),
    ))
    .await;
    assert_eq!(
        status, 200,
        "an unreachable upstream is an answer: {tested}"
    );
    assert_eq!(tested["reachable"], false);
    assert!(tested["error"].is_string(), "{tested}");
}

#[tokio::test]
async fn a_key_secret_is_shown_once_to_an_admin_and_never_to_an_operator() {
    let api = AdminApi::start().await;
    let admin = api.token(AdminRole::Admin).await;
    let operator = api.token(AdminRole::Operator).await;
    let (status, _) = answer(api.post(
        "/admin/api/v1/clients",
        &operator,
        &json!({"name": "agent"}),
    ))
    .await;
    assert_eq!(status, 201);

    let (status, refused) =
        answer(api.post("/admin/api/v1/keys", &operator, &json!({"client": "agent"}))).await;
    assert_eq!((status, refused["code"].as_str()), (403, Some("forbidden")));

    let (status, created) = answer(api.post(
        "/admin/api/v1/keys",
        &admin,
        &json!({"client": "agent", "label": "ci", "expires_in_seconds": 3600}),
    ))
    .await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("gth_"));
    let id = created["id"].as_str().unwrap().to_owned();

    for (path, who) in [
        (format!("/admin/api/v1/keys/{id}"), &operator),
        ("/admin/api/v1/keys?client=agent".to_owned(), &operator),
        (format!("/admin/api/v1/keys/{id}"), &admin),
    ] {
        let response = api.get(&path, who).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert!(text.contains(&id), "{path}: {text}");
        assert!(
            !text.contains(&token[17..]),
            "{path} shows the secret: {text}"
        );
        assert!(!text.contains("token\""), "{path}: {text}");
    }

    let (status, rotated) = answer(api.post(
        &format!("/admin/api/v1/keys/{id}/rotate"),
        &admin,
        &json!({"overlap_seconds": 60}),
    ))
    .await;
    assert_eq!(status, 201, "{rotated}");
    assert_eq!(rotated["rotated_from"], id.as_str());
    let (_, old) = answer(api.get(&format!("/admin/api/v1/keys/{id}"), &operator)).await;
    let until = old["expires_at"].as_i64().unwrap();
    let now = gatehouse::now_ms();
    assert!(
        until > now && until <= now + 60_000,
        "the old key overlaps for a minute"
    );

    let (status, revoked) = answer(api.post(
        &format!("/admin/api/v1/keys/{id}/revoke"),
        &operator,
        &json!({}),
    ))
    .await;
    assert_eq!(status, 200);
    assert!(revoked["revoked_at"].is_i64());
}

#[tokio::test]
async fn lists_page_with_an_opaque_cursor_and_a_bounded_limit() {
    let api = AdminApi::start().await;
    let operator = api.token(AdminRole::Operator).await;
    for n in 0..5 {
        let (status, _) = answer(api.post(
            "/admin/api/v1/clients",
            &operator,
            &json!({"name": format!("client-{n}")}),
        ))
        .await;
        assert_eq!(status, 201);
    }
    api.service()
        .set_client_enabled(
            &gatehouse::admin::Operator::cli("setup", None).unwrap(),
            "client-3",
            false,
        )
        .await
        .unwrap();
    let mut names = Vec::new();
    let mut path = "/admin/api/v1/clients?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = answer(api.get(&path, &operator)).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            names.push(item["name"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/admin/api/v1/clients?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        names,
        ["client-0", "client-1", "client-2", "client-3", "client-4"]
    );

    let (_, disabled) = answer(api.get("/admin/api/v1/clients?disabled=true", &operator)).await;
    assert_eq!(disabled["items"].as_array().unwrap().len(), 1);
    assert_eq!(disabled["items"][0]["name"], "client-3");

    for bad in ["limit=0", "limit=501", "cursor=bm90LW91cnM", "limit=two"] {
        let (status, problem) =
            answer(api.get(&format!("/admin/api/v1/clients?{bad}"), &operator)).await;
        assert_eq!(status, 400, "{bad}: {problem}");
    }
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_body() {
    let api = AdminApi::start().await;
    let admin = api.token(AdminRole::Admin).await;
    answer(api.post("/admin/api/v1/clients", &admin, &json!({"name": "agent"}))).await;
    let create = |body: serde_json::Value| {
        api.request(Method::POST, "/admin/api/v1/keys", Some(&admin))
            .header("Idempotency-Key", "create-agent-key-1")
            .json(&body)
    };
    let body = json!({"client": "agent", "label": "once"});
    let first = create(body.clone()).send().await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: serde_json::Value = first.json().await.unwrap();

    let again = create(body.clone()).send().await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again, first, "the same key, token included");
    assert_eq!(
        api.app
            .store
            .list_api_keys(Some("agent"))
            .await
            .unwrap()
            .len(),
        1,
        "one key was created"
    );

    let (status, reused) = answer(create(json!({"client": "agent", "label": "other"}))).await;
    assert_eq!(
        (status, reused["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );

    // A refused create is not kept: the same key runs again once the request is right.
    let (status, _) = answer(
        api.request(Method::POST, "/admin/api/v1/clients", Some(&admin))
            .header("Idempotency-Key", "client-x")
            .json(&json!({"name": "Bad Name"})),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = answer(
        api.request(Method::POST, "/admin/api/v1/clients", Some(&admin))
            .header("Idempotency-Key", "client-x")
            .json(&json!({"name": "Bad Name"})),
    )
    .await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn users_groups_signing_keys_and_explain_through_the_api() {
    let upstream = Upstream::start().await;
    let api = AdminApi::start().await;
    let operator = api.token(AdminRole::Operator).await;
    let auditor = api.token(AdminRole::Auditor).await;
    api.app.add_server("demo", &upstream.url()).await;

    let (status, user) = answer(api.post(
        "/admin/api/v1/users",
        &operator,
        &json!({"username": "alice", "password": "correct horse battery", "groups": ["eng"]}),
    ))
    .await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(
        (user["local"].as_bool(), &user["groups"]),
        (Some(true), &json!(["eng"]))
    );
    assert!(
        !user.to_string().contains("horse"),
        "the password is never shown"
    );
    let (status, user) = answer(
        api.request(
            Method::PUT,
            "/admin/api/v1/users/alice/groups",
            Some(&operator),
        )
        .json(&json!({"groups": ["eng", "ops"]})),
    )
    .await;
    assert_eq!((status, &user["groups"]), (200, &json!(["eng", "ops"])));
    let (status, granted) = answer(
        api.request(
            Method::PUT,
            "/admin/api/v1/group-connections/eng/demo",
            Some(&operator),
        )
        .json(&json!({"tools": "echo"})),
    )
    .await;
    assert_eq!((status, &granted["tools"]), (200, &json!(["echo"])));

    let (status, keys) = answer(api.get("/admin/api/v1/signing-keys", &auditor)).await;
    assert_eq!(status, 200);
    let first = &keys["items"][0];
    assert!(first["public_jwk"]["kty"].is_string(), "{keys}");
    assert!(
        first["public_jwk"].get("d").is_none(),
        "never the private part"
    );

    answer(api.post(
        "/admin/api/v1/clients",
        &operator,
        &json!({"name": "agent"}),
    ))
    .await;
    answer(
        api.request(
            Method::PUT,
            "/admin/api/v1/connections/agent/demo",
            Some(&operator),
        )
        .json(&json!({"tools": "echo"})),
    )
    .await;
    api.app.reload().await;
    let (status, allowed) = answer(api.post(
        "/admin/api/v1/policy/explain",
        &auditor,
        &json!({"client": "agent", "server": "demo", "tool": "echo"}),
    ))
    .await;
    assert_eq!(status, 200, "{allowed}");
    assert_eq!(allowed["explanation"]["decision"], "allow");
    let (_, denied) = answer(api.post(
        "/admin/api/v1/policy/explain",
        &auditor,
        &json!({"client": "agent", "server": "demo", "tool": "add"}),
    ))
    .await;
    assert_eq!(denied["explanation"]["decision"], "deny", "{denied}");
}

#[tokio::test]
async fn oauth_secrets_are_shown_to_an_admin_once_and_listed_without_them() {
    let api = AdminApi::start().await;
    let admin = api.token(AdminRole::Admin).await;
    let operator = api.token(AdminRole::Operator).await;
    answer(api.post("/admin/api/v1/clients", &operator, &json!({"name": "svc"}))).await;

    let (status, refused) =
        answer(api.post("/admin/api/v1/clients/svc/oauth", &operator, &json!({}))).await;
    assert_eq!((status, refused["code"].as_str()), (403, Some("forbidden")));
    let (status, registered) =
        answer(api.post("/admin/api/v1/clients/svc/oauth", &admin, &json!({}))).await;
    assert_eq!(status, 201, "{registered}");
    let first = registered["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(
        registered["metadata"]["grant_types"],
        json!(["client_credentials"])
    );

    let (status, rotated) = answer(api.post(
        "/admin/api/v1/clients/svc/secrets/rotate",
        &admin,
        &json!({"overlap_seconds": 60}),
    ))
    .await;
    assert_eq!(status, 201, "{rotated}");
    let second = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(first, second);

    let response = api
        .get("/admin/api/v1/clients/svc/secrets", &operator)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains(&first) && !text.contains(&second), "{text}");
    let listed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);

    let id = rotated["id"].as_str().unwrap();
    let (status, _) = answer(api.post(
        &format!("/admin/api/v1/client-secrets/{id}/revoke"),
        &operator,
        &json!({}),
    ))
    .await;
    assert_eq!(status, 204);
}
