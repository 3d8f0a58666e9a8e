//! Tokens from a trusted external issuer: verified against its published keys once, then
//! answered from the cache, where every per-request check still applies.

use axum::{Json, Router, routing::get};
use gatehouse::{
    admin,
    config::TrustedIssuerConfig,
    tokens::{jwt, keys::SigningKey},
};
use gatehouse_model::algorithm::Algorithm;
use serde_json::{Value, json};
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use crate::{
    helpers::{TestApp, call},
    scripted_upstream::Upstream,
};

const ISSUER: &str = "https://idp.example";

/// Serves `jwks` at `/jwks` and counts the fetches.
async fn key_server(jwks: Value) -> (String, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let app = Router::new().route(
        "/jwks",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let jwks = jwks.clone();
            async move { Json(jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/jwks"), fetches)
}

#[tokio::test]
async fn a_cached_external_token_is_accepted_only_where_its_issuer_is_trusted() {
    let signing = SigningKey::generate(Algorithm::ES256).unwrap();
    let (jwks_uri, fetches) = key_server(json!({ "keys": [signing.public_jwk()] })).await;
    let upstream = Upstream::start().await;
    let app = TestApp::start_with(|config| {
        let trusted: TrustedIssuerConfig = serde_json::from_value(json!({
            "name": "idp",
            "issuer": ISSUER,
            "jwks_uri": jwks_uri,
            "servers": ["github"],
        }))
        .unwrap();
        config.oauth.trusted_issuers = vec![trusted];
    })
    .await;
    for server in ["github", "slack"] {
        app.add_server(server, &upstream.url()).await;
    }
    admin::create_client(&*app.store, "app", "").await.unwrap();
    app.grant("app", "github", "*").await;
    app.grant("app", "slack", "*").await;
    // Valid for both servers' audiences and scopes: only the trust setting tells them apart.
    let claims = json!({
        "iss": ISSUER,
        "sub": "app",
        "aud": [app.mcp("github"), app.mcp("slack")],
        "client_id": "app",
        "scope": "mcp:github mcp:slack",
        "jti": "ext-1",
        "exp": gatehouse::now_ms() / 1000 + 600,
    });
    let token = jwt::encode(&signing, None, &claims).unwrap();

    for attempt in ["first sight", "cached"] {
        let response = app
            .post("github", Some(&token), &call("echo"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{attempt}");
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "the second request is answered from the cache"
    );
    // The token is cached now; slack does not trust its issuer, so the cache must not help.
    let elsewhere = app
        .post("slack", Some(&token), &call("echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 401);
    assert_eq!(upstream.received().len(), 2);
}
