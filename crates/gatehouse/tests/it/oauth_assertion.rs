//! `private_key_jwt` (RFC 7523) client authentication: a client proves itself with a JWT
//! signed by a key it registered; each assertion works once.

use gatehouse::{
    admin::{self, oauth::OAuthRegistration},
    tokens::{jwt, keys::SigningKey},
};
use gatehouse_model::algorithm::Algorithm;
use serde_json::json;

use crate::{
    helpers::{TestApp, call},
    oauth::{gateway, post_form},
};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

async fn setup() -> (TestApp, SigningKey) {
    setup_on(TestApp::start().await).await
}

pub(crate) async fn setup_on(app: TestApp) -> (TestApp, SigningKey) {
    app.add_server("demo", "http://127.0.0.1:9/mcp").await;
    admin::create_client(&*app.store, "signer", "")
        .await
        .unwrap();
    app.grant("signer", "demo", "echo").await;
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    admin::oauth::register_client(
        &app.store,
        &app.keyring,
        "signer",
        OAuthRegistration {
            grant_types: vec!["client_credentials".into()],
            auth_method: Some("private_key_jwt".into()),
            jwks: Some(json!({ "keys": [key.public_jwk()] })),
            ..OAuthRegistration::default()
        },
    )
    .await
    .unwrap();
    app.server.state.snapshot.reload().await.unwrap();
    (app, key)
}

pub(crate) fn assertion(app: &TestApp, key: &SigningKey, claims: serde_json::Value) -> String {
    let now = jiff::Timestamp::now().as_second();
    let mut body = json!({
        "iss": "signer", "sub": "signer", "aud": app.url(""),
        "iat": now, "exp": now + 60, "jti": format!("j-{}", rand_suffix()),
    });
    for (k, v) in claims.as_object().unwrap() {
        body[k] = v.clone();
    }
    jwt::encode(key, None, &body).unwrap()
}

fn rand_suffix() -> String {
    gatehouse::secrets::random_id(10).unwrap()
}

pub(crate) async fn token_with(app: &TestApp, assertion: &str) -> (u16, serde_json::Value) {
    let resource = app.url("/demo/mcp");
    let (status, _, body) = post_form(
        app,
        "/oauth/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("resource", &resource),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ],
    )
    .await;
    (status, body)
}

#[tokio::test]
async fn a_signed_assertion_authenticates_once() {
    let (app, key) = setup().await;
    let signed = assertion(&app, &key, json!({}));
    let (status, body) = token_with(&app, &signed).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    let (status, _, _) = gateway(&app, "demo", token, &call("echo")).await;
    // The upstream is unreachable; authentication passed if the gateway tried it.
    assert_eq!(status, 502);
    // The same assertion again: a replay.
    let (status, body) = token_with(&app, &signed).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // The token endpoint URL is an accepted audience too (RFC 7523).
    let endpoint = app.url("/oauth/token");
    let (status, body) = token_with(&app, &assertion(&app, &key, json!({ "aud": endpoint }))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn assertions_that_do_not_prove_the_client_are_invalid_client() {
    let (app, key) = setup().await;
    let stranger = SigningKey::generate(Algorithm::ES256).unwrap();
    let far = jiff::Timestamp::now().as_second() + 3_600;
    for (what, signed) in [
        ("another key", assertion(&app, &stranger, json!({}))),
        (
            "another audience",
            assertion(&app, &key, json!({ "aud": "https://elsewhere.example" })),
        ),
        (
            "sub is not the client",
            assertion(&app, &key, json!({ "sub": "someone" })),
        ),
        (
            "unknown client",
            assertion(&app, &key, json!({ "iss": "nobody", "sub": "nobody" })),
        ),
        (
            "lives too long",
            assertion(&app, &key, json!({ "exp": far })),
        ),
        ("expired", assertion(&app, &key, json!({ "exp": 1_000 }))),
        ("no jti", {
            let now = jiff::Timestamp::now().as_second();
            jwt::encode(
                &key,
                None,
                &json!({
                    "iss": "signer", "sub": "signer", "aud": app.url(""), "exp": now + 60,
                }),
            )
            .unwrap()
        }),
    ] {
        let (status, body) = token_with(&app, &signed).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{what}: {body}"
        );
    }
    // A secret-based method together with an assertion is a malformed request.
    let signed = assertion(&app, &key, json!({}));
    let (status, _, body) = post_form(
        &app,
        "/oauth/token",
        Some(("signer", "whatever")),
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &signed),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
}
