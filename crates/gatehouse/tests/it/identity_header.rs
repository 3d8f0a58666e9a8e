//! The identity assertion to the upstream (ADR 0006 §6): a JWT naming the caller that the
//! upstream verifies with Gatehouse's JWKS; never one a client wrote.

use crate::{
    helpers::{TestApp, call, rpc_message},
    scripted_upstream::Upstream,
};
use gatehouse::{
    admin,
    tokens::{
        jwt::{self, Expectations},
        keys::{VerificationKey, VerifierSet},
    },
};

#[tokio::test]
async fn the_identity_header_names_the_caller_and_verifies_with_the_jwks() {
    let app = TestApp::start().await;
    let upstream = Upstream::start().await;
    app.add_server_with(admin::NewServer {
        name: "files".into(),
        url: upstream.url(),
        identity_header: Some("X-Gatehouse-Identity".into()),
        ..Default::default()
    })
    .await;
    let key = app.client_with_key("agent", "files", "echo").await;
    let (status, _, body) = rpc_message(
        app.post("files", Some(&key), &call("echo"))
            // A client cannot speak for Gatehouse: its own value is replaced.
            .header("x-gatehouse-identity", "forged")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let received = upstream.received();
    let assertion = received[0].headers["x-gatehouse-identity"]
        .to_str()
        .unwrap();
    assert_ne!(assertion, "forged");

    let jwks: serde_json::Value = app
        .http
        .get(app.url("/oauth/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut keys = VerifierSet::new();
    for jwk in jwks["keys"].as_array().unwrap() {
        keys.insert(VerificationKey::from_jwk(jwk).unwrap());
    }
    let expect = Expectations {
        typ: Some("gatehouse-id+jwt".into()),
        ..Expectations::access_token(app.url(""), upstream.url())
    };
    let claims = jwt::verify(assertion, &keys, &expect).expect("verifies with the JWKS");
    assert_eq!(claims.sub(), Some("agent"));
    assert_eq!(claims.client_id(), Some("agent"));
    assert!(claims.exp() - claims.iat().unwrap() <= 60);
    let audit = app.audit().await;
    assert_eq!(
        claims.jti(),
        Some(audit.last().unwrap().event.request_id.as_str()),
        "the assertion names the audited request"
    );
    // Not an access token: Gatehouse's own servers refuse it.
    let refused = app
        .post("files", Some(assertion), &call("echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

#[tokio::test]
async fn without_the_setting_a_clients_identity_header_is_not_forwarded() {
    let app = TestApp::start().await;
    let upstream = Upstream::start().await;
    app.add_server("files", &upstream.url()).await;
    let key = app.client_with_key("agent", "files", "echo").await;
    let response = app
        .post("files", Some(&key), &call("echo"))
        .header("x-gatehouse-identity", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        upstream.received()[0]
            .headers
            .get("x-gatehouse-identity")
            .is_none()
    );
}
