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
    oauth_dpop::Holder,
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

/// A Gatehouse whose server `github` (only) trusts the issuer whose keys are at `jwks_uri`.
async fn trusting_github(jwks_uri: String) -> TestApp {
    TestApp::start_with(|config| {
        let trusted: TrustedIssuerConfig = serde_json::from_value(json!({
            "name": "idp",
            "issuer": ISSUER,
            "jwks_uri": jwks_uri,
            "servers": ["github"],
        }))
        .unwrap();
        config.oauth.trusted_issuers = vec![trusted];
    })
    .await
}

#[tokio::test]
async fn a_cached_external_token_is_accepted_only_where_its_issuer_is_trusted() {
    let signing = SigningKey::generate(Algorithm::ES256).unwrap();
    let (jwks_uri, fetches) = key_server(json!({ "keys": [signing.public_jwk()] })).await;
    let upstream = Upstream::start().await;
    let app = trusting_github(jwks_uri).await;
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

/// An issuer that binds its tokens to a DPoP key (`cnf.jkt`, RFC 9449 §6) must not have them
/// accepted here as bearer tokens: the gateway wants a fresh proof by that key, as it does
/// for its own bound tokens; a binding it cannot check (mTLS `x5t#S256`) is refused.
#[tokio::test]
async fn an_external_token_bound_to_a_dpop_key_needs_a_proof_by_that_key() {
    let signing = SigningKey::generate(Algorithm::ES256).unwrap();
    let (jwks_uri, _) = key_server(json!({ "keys": [signing.public_jwk()] })).await;
    let upstream = Upstream::start().await;
    let app = trusting_github(jwks_uri).await;
    app.add_server("github", &upstream.url()).await;
    admin::create_client(&*app.store, "app", "").await.unwrap();
    app.grant("app", "github", "*").await;
    let holder = Holder::new(Algorithm::ES256);
    let thief = Holder::new(Algorithm::ES256);
    let token_with = |cnf: Value, jti: &str| {
        let claims = json!({
            "iss": ISSUER,
            "sub": "app",
            "aud": app.mcp("github"),
            "client_id": "app",
            "scope": "mcp:github",
            "jti": jti,
            "exp": gatehouse::now_ms() / 1000 + 600,
            "cnf": cnf,
        });
        jwt::encode(&signing, None, &claims).unwrap()
    };
    let token = token_with(json!({ "jkt": holder.thumbprint() }), "bound-1");
    let url = app.mcp("github");
    let send = |scheme: &'static str, token: String, proof: Option<String>| {
        let app = &app;
        async move {
            let mut request = app
                .post("github", None, &call("echo"))
                .header("authorization", format!("{scheme} {token}"));
            if let Some(proof) = proof {
                request = request.header("dpop", proof);
            }
            let response = request.send().await.unwrap();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (response.status().as_u16(), challenge)
        }
    };
    // Twice each: on first sight (verified now) and from the cache.
    for attempt in ["first sight", "cached"] {
        let (status, challenge) = send("Bearer", token.clone(), None).await;
        assert_eq!(status, 401, "{attempt}: as a bearer token");
        assert!(challenge.starts_with("DPoP "), "{attempt}: {challenge}");
        let (status, _) = send(
            "DPoP",
            token.clone(),
            Some(thief.proof("POST", &url, Some(&token))),
        )
        .await;
        assert_eq!(status, 401, "{attempt}: with another key's proof");
        let (status, challenge) = send(
            "DPoP",
            token.clone(),
            Some(holder.proof("POST", &url, Some(&token))),
        )
        .await;
        assert_eq!(status, 200, "{attempt}: with its key's proof ({challenge})");
    }
    assert_eq!(upstream.received().len(), 2, "only the proven requests");
    let mtls = token_with(
        json!({ "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" }),
        "bound-2",
    );
    let (status, challenge) = send("Bearer", mtls, None).await;
    assert_eq!(status, 401, "a binding Gatehouse cannot check");
    assert!(challenge.contains("invalid_token"), "{challenge}");
}
