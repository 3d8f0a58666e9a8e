//! A server's upstream token settings through the API: shown without their secret, sealed in
//! the store, replaced and removed; contradictory bodies refused.

use super::{AdminApi, answer};
use gatehouse_model::records::AdminRole;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn client_credentials_are_shown_without_their_secret_and_can_be_removed() {
    let api = AdminApi::start().await;
    let operator = api.token(AdminRole::Operator).await;
    let (status, created) = answer(api.post(
        "/admin/api/v1/servers",
        &operator,
        &json!({
            "name": "files",
            "url": "http://127.0.0.1:9/mcp",
            "identity_header": "X-Gatehouse-Identity",
            "upstream_auth": {
                "kind": "client_credentials",
                "token_endpoint": "http://127.0.0.1:9/token",
                "client_id": "gatehouse",
                "auth_method": "client_secret_post",
                "scope": "files:read",
                "client_secret": "upstream-client-s3cret"
            }
        }),
    ))
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["upstream_auth"]["kind"], "client_credentials");
    assert_eq!(
        created["upstream_auth"]["auth_method"],
        "client_secret_post"
    );
    assert_eq!(created["identity_header"], "x-gatehouse-identity");
    assert!(!created.to_string().contains("upstream-client-s3cret"));
    let stored = api.app.store.get_server("files").await.unwrap();
    let sealed = stored.upstream_auth.secret_sealed.expect("sealed secret");
    assert!(
        !sealed.windows(6).any(|w| w == b"s3cret"),
        "sealed, not plain"
    );
    let events = api
        .app
        .store
        .query_audit(&Default::default())
        .await
        .unwrap();
    assert!(
        !serde_json::to_string(&events).unwrap().contains("s3cret"),
        "the operator event keeps no secret"
    );

    let (status, updated) = answer(
        api.request(
            Method::PATCH,
            "/admin/api/v1/servers/files",
            Some(&operator),
        )
        .json(&json!({"remove_upstream_auth": true, "remove_identity_header": true})),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert!(updated["upstream_auth"].is_null(), "{updated}");
    assert!(updated["identity_header"].is_null(), "{updated}");
    let stored = api.app.store.get_server("files").await.unwrap();
    assert_eq!(stored.upstream_auth, Default::default());
}

#[tokio::test]
async fn contradictory_or_incomplete_upstream_auth_is_refused_and_nothing_is_stored() {
    let api = AdminApi::start().await;
    let operator = api.token(AdminRole::Operator).await;
    for (upstream_auth, why) in [
        (
            json!({"kind": "client_credentials", "token_endpoint": "http://as/token",
                   "client_id": "g", "auth_method": "private_key_jwt", "client_secret": "s"}),
            "private_key_jwt with a client secret",
        ),
        (
            json!({"kind": "client_credentials", "token_endpoint": "http://as/token",
                   "client_id": "g", "auth_method": "client_secret_basic"}),
            "no secret",
        ),
        (
            json!({"kind": "client_credentials", "token_endpoint": "ftp://as/token",
                   "client_id": "g", "auth_method": "client_secret_basic", "client_secret": "s"}),
            "not an http(s) token endpoint",
        ),
        (
            json!({"kind": "static", "token_endpoint": "http://as/token",
                   "client_id": "g", "auth_method": "client_secret_basic", "client_secret": "s"}),
            "an unknown kind",
        ),
    ] {
        let (status, problem) = answer(api.post(
            "/admin/api/v1/servers",
            &operator,
            &json!({"name": "files", "url": "http://127.0.0.1:9/mcp", "upstream_auth": upstream_auth}),
        ))
        .await;
        assert_eq!(status, 422, "{why}: {problem}");
        assert!(
            api.app.store.list_servers().await.unwrap().is_empty(),
            "{why}"
        );
    }
}

#[tokio::test]
async fn test_connection_probes_with_the_upstream_token() {
    use crate::{scripted_upstream::Upstream, upstream_credentials::TokenEndpoint};
    let upstream = Upstream::start().await;
    let endpoint = TokenEndpoint::start().await;
    let api = AdminApi::start().await;
    let operator = api.token(AdminRole::Operator).await;
    let server = |name: &str, client_id: &str| {
        json!({
            "name": name,
            "url": upstream.url(),
            "upstream_auth": {
                "kind": "client_credentials",
                "token_endpoint": endpoint.url,
                "client_id": client_id,
                "auth_method": "client_secret_post",
                "client_secret": "s3cret"
            }
        })
    };
    let (status, created) = answer(api.post(
        "/admin/api/v1/servers",
        &operator,
        &server("files", "gatehouse"),
    ))
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, tested) = answer(api.post(
        "/admin/api/v1/servers/files/test-connection",
        &operator,
        &json!({}),
    ))
    .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["reachable"], true, "{tested}");
    assert!(
        upstream.received().iter().all(|r| r
            .headers
            .get("authorization")
            .is_some_and(|v| v == "Bearer t1")),
        "every probe request carried the upstream token"
    );
    assert_eq!(endpoint.requests().len(), 1);

    endpoint
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, created) = answer(api.post(
        "/admin/api/v1/servers",
        &operator,
        &server("other", "another"),
    ))
    .await;
    assert_eq!(status, 201, "{created}");
    let hits = upstream.hits();
    let (status, tested) = answer(api.post(
        "/admin/api/v1/servers/other/test-connection",
        &operator,
        &json!({}),
    ))
    .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["reachable"], false, "{tested}");
    assert_eq!(upstream.hits(), hits, "not probed without its token");
}

#[tokio::test]
async fn a_static_header_and_upstream_tokens_together_are_refused_before_anything_is_stored() {
    let api = AdminApi::start().await;
    let operator = api.token(AdminRole::Operator).await;
    let tokens = json!({"kind": "client_credentials", "token_endpoint": "http://as/token",
        "client_id": "g", "auth_method": "client_secret_basic", "client_secret": "s"});
    let (status, problem) = answer(api.post(
        "/admin/api/v1/servers",
        &operator,
        &json!({"name": "files", "url": "http://127.0.0.1:9/mcp",
                "credential": "Authorization: Bearer static", "upstream_auth": tokens}),
    ))
    .await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("--no-credential"),
        "{problem}"
    );
    assert!(api.app.store.list_servers().await.unwrap().is_empty());

    // Made with tokens, a header added later is refused and the server keeps its tokens.
    let (status, created) = answer(api.post(
        "/admin/api/v1/servers",
        &operator,
        &json!({"name": "files", "url": "http://127.0.0.1:9/mcp", "upstream_auth": tokens}),
    ))
    .await;
    assert_eq!(status, 201, "{created}");
    let patch = |body: serde_json::Value| {
        api.request(
            Method::PATCH,
            "/admin/api/v1/servers/files",
            Some(&operator),
        )
        .json(&body)
    };
    let (status, problem) =
        answer(patch(json!({"credential": "Authorization: Bearer static"}))).await;
    assert_eq!(status, 422, "{problem}");
    let stored = api.app.store.get_server("files").await.unwrap();
    assert!(stored.credential_sealed.is_none() && stored.upstream_auth.spec.is_some());

    // Swapping one for the other in one change is fine.
    let (status, updated) = answer(patch(json!({
        "credential": "Authorization: Bearer static", "remove_upstream_auth": true
    })))
    .await;
    assert_eq!(status, 200, "{updated}");
    let stored = api.app.store.get_server("files").await.unwrap();
    assert!(stored.credential_sealed.is_some() && stored.upstream_auth.spec.is_none());
}
