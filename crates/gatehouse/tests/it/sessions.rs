//! Legacy sessions are bound to the principal that opened them.

use serde_json::json;

use crate::{
    helpers::{TestApp, call},
    scripted_upstream::Upstream,
};

fn initialize() -> serde_json::Value {
    json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": { "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } } })
}

#[tokio::test]
async fn another_principal_cannot_use_a_session() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let alice = app.client_with_key("alice", "demo", "*").await;
    let mallory = app.client_with_key("mallory", "demo", "*").await;

    let response = app
        .post("demo", Some(&alice), &initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();

    let own = app
        .post("demo", Some(&alice), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);

    let stolen = app
        .post("demo", Some(&mallory), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), 404);
    let body: serde_json::Value = stolen.json().await.unwrap();
    assert_eq!(body["error"]["data"]["reason"], "session_not_found");

    let made_up = app
        .post("demo", Some(&alice), &call("echo"))
        .header("mcp-session-id", "guessed")
        .send()
        .await
        .unwrap();
    assert_eq!(made_up.status(), 404);

    // A second key of the same client keeps the session (rotation must not break clients).
    let alice_second_key = app.key("alice", None).await;
    let same_client = app
        .post("demo", Some(&alice_second_key), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(same_client.status(), 200);

    let stolen_delete = app
        .http
        .delete(app.mcp("demo"))
        .bearer_auth(&mallory)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stolen_delete.status(), 404);
    let deleted = app
        .http
        .delete(app.mcp("demo"))
        .bearer_auth(&alice)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let after = app
        .post("demo", Some(&alice), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 404, "a deleted session is gone");

    let forwarded = upstream
        .received()
        .iter()
        .filter(|r| r.headers.get("mcp-session-id").is_some())
        .count();
    assert_eq!(
        forwarded, 3,
        "only the owner's requests (2 calls and the DELETE) reached the upstream"
    );
    assert_eq!(
        upstream.received().last().unwrap().http_method,
        reqwest::Method::DELETE
    );
}

#[tokio::test]
async fn sessions_with_the_real_example_server() {
    let cancel = tokio_util::sync::CancellationToken::new();
    let example = gatehouse_example_server::ExampleServer::start(
        "127.0.0.1:0".parse().unwrap(),
        cancel.clone(),
    )
    .await
    .unwrap();
    let app = TestApp::start().await;
    app.add_server("demo", &example.mcp_url()).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    let other = app.client_with_key("other", "demo", "echo").await;
    let response = app
        .post("demo", Some(&key), &initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let notification = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    let accepted = app
        .post("demo", Some(&key), &notification)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let refused = app
        .post("demo", Some(&other), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    cancel.cancel();
}

/// A token for `user` through the public client `spa` (the code flow, signed in as `user`).
async fn spa_token_for(app: &TestApp, user: &str, password: &str) -> String {
    use crate::oauth_browser::{
        As, Authorize, Browser, Tokens, callback, consent_page, decide, pkce, redeem,
    };
    let mut browser = Browser::new(app);
    let pkce = pkce();
    let request = Authorize::new(app, "spa", &pkce);
    let consent = consent_page(&mut browser, &request.url(app), user, password).await;
    let answer = decide(&mut browser, &consent, "approve").await;
    let params = callback(app, &answer, Some(&request.state()));
    Tokens::from(redeem(app, As::Public("spa"), &params["code"], &pkce.verifier).await).access
}

#[tokio::test]
async fn users_of_one_oauth_client_cannot_use_each_others_sessions() {
    use crate::oauth_browser::{PASSWORD, flow_setup};
    let flow = flow_setup().await;
    let app = &flow.app;
    gatehouse::admin::users::create_user(
        &app.store,
        "bob",
        "Bob",
        Some("bob-password-1234"),
        vec!["analysts".into()],
    )
    .await
    .unwrap();
    app.reload().await;
    let alice = spa_token_for(app, "alice", PASSWORD).await;
    let bob = spa_token_for(app, "bob", "bob-password-1234").await;

    let response = app
        .post("demo", Some(&alice), &initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();

    let stolen_post = app
        .post("demo", Some(&bob), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(
        stolen_post.status(),
        404,
        "same client, another user: not their session"
    );
    let stolen_stream = app
        .http
        .get(app.mcp("demo"))
        .bearer_auth(&bob)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stolen_stream.status(), 404);
    let stolen_delete = app
        .http
        .delete(app.mcp("demo"))
        .bearer_auth(&bob)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stolen_delete.status(), 404);

    let own = app
        .post("demo", Some(&alice), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200, "the user who opened it keeps it");
    let with_session = flow
        .upstream
        .received()
        .iter()
        .filter(|r| r.headers.get("mcp-session-id").is_some())
        .count();
    assert_eq!(
        with_session, 1,
        "only alice's call carried the session upstream"
    );
}

#[tokio::test]
async fn the_stateless_marker_does_not_carry_a_session_upstream() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let alice = app.client_with_key("alice", "demo", "*").await;
    let mallory = app.client_with_key("mallory", "demo", "*").await;
    let response = app
        .post("demo", Some(&alice), &initialize())
        .send()
        .await
        .unwrap();
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();

    let mut marked = call("echo");
    marked["params"]["_meta"] = json!({ "io.modelcontextprotocol/protocolVersion": "2026-07-28" });
    let by_meta = app
        .post("demo", Some(&mallory), &marked)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "echo")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(by_meta.status(), 200);
    let by_header = app
        .post_stateless("demo", Some(&mallory), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 200);

    let received = upstream.received();
    assert_eq!(received.len(), 3, "initialize and the two calls");
    for request in &received[1..] {
        assert!(
            request.headers.get("mcp-session-id").is_none(),
            "a stateless-era request went upstream with a session id: {:?}",
            request.headers
        );
    }
}

#[tokio::test]
async fn two_session_headers_are_refused() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let alice = app.client_with_key("alice", "demo", "*").await;
    let response = app
        .post("demo", Some(&alice), &initialize())
        .send()
        .await
        .unwrap();
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let twice = app
        .post("demo", Some(&alice), &call("echo"))
        .header("mcp-session-id", &session)
        .header("mcp-session-id", "someone-elses")
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 400);
    let body: serde_json::Value = twice.json().await.unwrap();
    assert_eq!(body["error"]["data"]["reason"], "invalid_request");
    assert_eq!(
        upstream.received().len(),
        1,
        "only the initialize went upstream"
    );
}

#[tokio::test]
async fn an_owner_over_the_session_cap_loses_its_least_recently_used_session() {
    let cancel = tokio_util::sync::CancellationToken::new();
    let example = gatehouse_example_server::ExampleServer::start(
        "127.0.0.1:0".parse().unwrap(),
        cancel.clone(),
    )
    .await
    .unwrap();
    let app = TestApp::start_with(|c| c.gateway.max_sessions_per_owner = 2).await;
    app.add_server("demo", &example.mcp_url()).await;
    let alice = app.client_with_key("alice", "demo", "echo").await;
    let bob = app.client_with_key("bob", "demo", "echo").await;
    let open = |key: String| {
        let request = app.post("demo", Some(&key), &initialize());
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.headers()["mcp-session-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    let ping = |key: &str, session: &str| {
        app.post(
            "demo",
            Some(key),
            &json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
        )
        .header("mcp-session-id", session)
        .send()
    };
    let bobs = open(bob.clone()).await;
    let first = open(alice.clone()).await;
    let second = open(alice.clone()).await;
    let third = open(alice.clone()).await;
    assert_eq!(app.server.state.sessions.len(), 3);
    assert_eq!(ping(&alice, &first).await.unwrap().status(), 404);
    assert_eq!(ping(&alice, &second).await.unwrap().status(), 202);
    assert_eq!(ping(&alice, &third).await.unwrap().status(), 202);
    assert_eq!(
        ping(&bob, &bobs).await.unwrap().status(),
        202,
        "another owner's sessions are untouched"
    );
    cancel.cancel();
}

#[tokio::test]
async fn people_behind_one_external_app_cannot_use_each_others_sessions() {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
    use gatehouse::tokens::keys::SigningKey;
    use gatehouse_model::algorithm::Algorithm;
    let key = std::sync::Arc::new(SigningKey::generate(Algorithm::ES256).unwrap());
    let jwks = json!({ "keys": [key.public_jwk()] });
    let keys = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_uri = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, keys).await.unwrap() });

    const ISSUER: &str = "https://idp.example.com";
    let upstream = Upstream::start().await;
    let app = TestApp::start_with(|c| {
        c.oauth.trusted_issuers = vec![
            serde_json::from_value(json!({
                "name": "corp", "issuer": ISSUER, "jwks_uri": jwks_uri, "servers": ["demo"],
            }))
            .unwrap(),
        ];
    })
    .await;
    app.add_server("demo", &upstream.url()).await;
    gatehouse::admin::create_client(&*app.store, "corp-app", "")
        .await
        .unwrap();
    app.grant("corp-app", "demo", "echo").await;
    // Two people's tokens for one application, without groups: both map onto `corp-app`.
    let token_for = |sub: &str| {
        let now = gatehouse::now_ms() / 1000;
        let header = json!({ "alg": "ES256", "kid": key.kid(), "typ": "JWT" });
        let claims = json!({
            "iss": ISSUER, "sub": sub, "aud": app.mcp("demo"), "client_id": "corp-app",
            "scope": "mcp:demo", "iat": now, "exp": now + 600, "jti": format!("jti-{sub}"),
        });
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature = key.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", B64.encode(signature))
    };
    let alice = token_for("alice@corp");
    let bob = token_for("bob@corp");

    let response = app
        .post("demo", Some(&alice), &initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let own = app
        .post("demo", Some(&alice), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    let stolen = app
        .post("demo", Some(&bob), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(
        stolen.status(),
        404,
        "same application, another person: not their session"
    );
}

#[tokio::test]
async fn a_session_the_upstream_no_longer_knows_on_a_stream_is_forgotten() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let alice = app.client_with_key("alice", "demo", "*").await;
    let response = app
        .post("demo", Some(&alice), &initialize())
        .send()
        .await
        .unwrap();
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();

    let stream = app
        .http
        .get(app.mcp("demo"))
        .bearer_auth(&alice)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("x-test-session-gone", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        stream.status(),
        404,
        "the upstream's answer reaches the client"
    );

    let reached = upstream.received().len();
    let after = app
        .post("demo", Some(&alice), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 404, "an ended session is gone");
    let body: serde_json::Value = after.json().await.unwrap();
    assert_eq!(body["error"]["data"]["reason"], "session_not_found");
    assert_eq!(
        upstream.received().len(),
        reached,
        "a call in the ended session never reaches the upstream"
    );
}
