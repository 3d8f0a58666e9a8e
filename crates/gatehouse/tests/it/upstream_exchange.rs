//! Per-person upstream tokens by RFC 8693 token exchange (ADR 0006 §5): Gatehouse presents its
//! signed assertion of the caller to a scripted authorization server and each person reaches
//! the upstream with their own token; a caller that acts for no person is refused.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{Router, extract::State, routing::post};
use base64::Engine;
use gatehouse::{
    admin::{self, upstream_auth::NewUpstreamAuth},
    oauth::tokens::{MintRequest, mint},
    tokens::{
        jwt::{self, Expectations},
        keys::{VerificationKey, VerifierSet},
    },
};
use gatehouse_model::{
    scope::Scope,
    upstream_auth::{UpstreamAuthSpec, UpstreamClientAuth},
};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, call, rpc_message},
    scripted_upstream::Upstream,
};

/// An authorization server that exchanges a subject token for `token-of-{sub}-{n}`.
#[derive(Clone, Default)]
struct ExchangeServer {
    forms: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

async fn exchange(State(server): State<ExchangeServer>, body: String) -> axum::Json<Value> {
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let payload = form["subject_token"].split('.').nth(1).unwrap().to_owned();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let n = {
        let mut forms = server.forms.lock().unwrap();
        forms.push(form);
        forms.len()
    };
    axum::Json(json!({
        "access_token": format!("token-of-{}-{n}", claims["preferred_username"].as_str().unwrap()),
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "token_type": "Bearer",
        "expires_in": 3600
    }))
}

fn person_token(app: &TestApp, user_id: &str) -> String {
    let snapshot = app.server.state.snapshot.current();
    let base = app.url("");
    let base = base.trim_end_matches('/');
    mint(
        &snapshot.oauth.signing,
        &MintRequest {
            issuer: base,
            subject: user_id,
            client_id: "agent",
            audiences: &[format!("{base}/files/mcp")],
            scope: &Scope::parse("mcp:files").unwrap(),
            ttl_secs: 300,
            now_ms: gatehouse::now_ms(),
            grant: None,
            jkt: None,
        },
    )
    .unwrap()
    .token
}

#[tokio::test]
async fn each_person_reaches_the_upstream_with_their_own_exchanged_token() {
    let app = TestApp::start().await;
    let upstream = Upstream::start().await;
    let authorization_server = ExchangeServer::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token_endpoint = format!("http://{}/token", listener.local_addr().unwrap());
    let routes = Router::new()
        .route("/token", post(exchange))
        .with_state(authorization_server.clone());
    tokio::spawn(async move { axum::serve(listener, routes).await.unwrap() });
    app.add_server_with(admin::NewServer {
        name: "files".into(),
        url: upstream.url(),
        upstream_auth: Some(NewUpstreamAuth {
            spec: UpstreamAuthSpec::TokenExchange {
                token_endpoint: token_endpoint.clone(),
                client_id: "gatehouse".into(),
                auth_method: UpstreamClientAuth::ClientSecretPost,
                scope: Some("files".into()),
                resource: Some(upstream.url()),
            },
            secret: Some("s3cret".into()),
        }),
        ..Default::default()
    })
    .await;
    let key = app.client_with_key("agent", "files", "echo").await;
    admin::users::grant_group(&app.store, "staff", "files", "echo", false, false)
        .await
        .unwrap();
    let mut ids = HashMap::new();
    for name in ["ann", "bob"] {
        let (user, _) = admin::users::create_user(&app.store, name, "", None, vec!["staff".into()])
            .await
            .unwrap();
        ids.insert(name, user.id);
    }
    app.reload().await;

    for (name, round) in [("ann", 1), ("bob", 1), ("ann", 2)] {
        let token = person_token(&app, &ids[name]);
        let (status, _, body) = rpc_message(
            app.post("files", Some(&token), &call("echo"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{name} call {round}: {body}");
    }
    let seen: Vec<String> = upstream
        .received()
        .iter()
        .map(|r| r.headers["authorization"].to_str().unwrap().to_owned())
        .collect();
    // Ann's second call reuses her token; Bob never gets hers.
    assert_eq!(
        seen,
        [
            "Bearer token-of-ann-1",
            "Bearer token-of-bob-2",
            "Bearer token-of-ann-1"
        ]
    );

    let forms = authorization_server.forms.lock().unwrap().clone();
    assert_eq!(forms.len(), 2, "one exchange per person");
    let form = &forms[0];
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:token-exchange"
    );
    assert_eq!(
        form["subject_token_type"],
        "urn:ietf:params:oauth:token-type:jwt"
    );
    assert_eq!(form["client_secret"], "s3cret");
    assert_eq!(form["resource"], upstream.url());
    let jwks: Value = app
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
        ..Expectations::access_token(app.url("").trim_end_matches('/'), token_endpoint)
    };
    let subject = jwt::verify(&form["subject_token"], &keys, &expect).expect("verifies");
    assert_eq!(subject.sub(), Some(ids["ann"].as_str()));
    assert_eq!(subject.client_id(), Some("agent"));

    // The agent's own key acts for nobody: refused before the upstream.
    let hits = upstream.hits();
    let (status, _, body) = rpc_message(
        app.post("files", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(upstream.hits(), hits);
    insta::assert_json_snapshot!("upstream_needs_user", body);
}

/// An authorization server whose exchanges issue the type the test sets (`None`: the answer
/// names none).
async fn exchange_issuing(
    State(issued): State<Arc<Mutex<Option<&'static str>>>>,
) -> axum::Json<Value> {
    let mut answer =
        json!({"access_token": "exchanged", "token_type": "Bearer", "expires_in": 3600});
    if let Some(issued) = *issued.lock().unwrap() {
        answer["issued_token_type"] = json!(issued);
    }
    axum::Json(answer)
}

#[tokio::test]
async fn an_exchange_that_issues_anything_but_an_access_token_is_not_sent_upstream() {
    let app = TestApp::start().await;
    let upstream = Upstream::start().await;
    let issued: Arc<Mutex<Option<&'static str>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token_endpoint = format!("http://{}/token", listener.local_addr().unwrap());
    let routes = Router::new()
        .route("/token", post(exchange_issuing))
        .with_state(issued.clone());
    tokio::spawn(async move { axum::serve(listener, routes).await.unwrap() });
    app.add_server_with(admin::NewServer {
        name: "files".into(),
        url: upstream.url(),
        upstream_auth: Some(NewUpstreamAuth {
            spec: UpstreamAuthSpec::TokenExchange {
                token_endpoint,
                client_id: "gatehouse".into(),
                auth_method: UpstreamClientAuth::ClientSecretPost,
                scope: None,
                resource: None,
            },
            secret: Some("s3cret".into()),
        }),
        ..Default::default()
    })
    .await;
    // The client the person's token is for.
    app.client_with_key("agent", "files", "echo").await;
    admin::users::grant_group(&app.store, "staff", "files", "echo", false, false)
        .await
        .unwrap();
    let (ann, _) = admin::users::create_user(&app.store, "ann", "", None, vec!["staff".into()])
        .await
        .unwrap();
    app.reload().await;
    let token = person_token(&app, &ann.id);
    let ask = || async {
        rpc_message(
            app.post("files", Some(&token), &call("echo"))
                .send()
                .await
                .unwrap(),
        )
        .await
    };

    for refused in [
        Some("urn:ietf:params:oauth:token-type:id_token"),
        Some("urn:ietf:params:oauth:token-type:jwt"),
        None,
    ] {
        *issued.lock().unwrap() = refused;
        let (status, _, body) = ask().await;
        assert_eq!(status, 502, "{refused:?}: {body}");
        assert_eq!(
            body["error"]["data"]["reason"], "upstream_credential_unavailable",
            "{refused:?}: {body}"
        );
        assert_eq!(upstream.hits(), 0, "{refused:?}: the upstream was called");
    }
    *issued.lock().unwrap() = Some("urn:ietf:params:oauth:token-type:access_token");
    let (status, _, body) = ask().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        upstream.received()[0].headers["authorization"],
        "Bearer exchanged"
    );
}
