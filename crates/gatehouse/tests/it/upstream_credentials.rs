//! Client-credentials tokens for an upstream (ADR 0006 §5): fetched from a scripted token
//! endpoint on first use, shared by concurrent first calls, refreshed when due, the live one
//! kept when a refresh fails, and a call that cannot get one answered without reaching the
//! upstream.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use axum::{Router, extract::State, http::HeaderMap, routing::post};
use gatehouse::{
    admin::{self, upstream_auth::NewUpstreamAuth},
    state::{
        RuntimeState, StateFuture, Unavailable,
        upstream_tokens::{UpstreamToken, UpstreamTokens},
    },
};
use gatehouse_model::upstream_auth::{UpstreamAuthSpec, UpstreamClientAuth};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, call, rpc_message},
    scripted_upstream::Upstream,
};

/// One token request as the endpoint saw it: headers and form.
pub type TokenRequest = (HeaderMap, HashMap<String, String>);

/// A token endpoint that hands out `t1`, `t2`, … and records every request.
#[derive(Clone, Default)]
pub struct TokenEndpoint {
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    issued: Arc<AtomicUsize>,
    pub failing: Arc<AtomicBool>,
    /// Answers after this many milliseconds, so concurrent first calls overlap.
    delay_ms: Arc<AtomicUsize>,
    pub url: String,
}

impl TokenEndpoint {
    pub async fn start() -> TokenEndpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = TokenEndpoint {
            url: format!("http://{}/token", listener.local_addr().unwrap()),
            ..TokenEndpoint::default()
        };
        let app = Router::new()
            .route("/token", post(issue))
            .with_state(endpoint.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        endpoint
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

async fn issue(
    State(endpoint): State<TokenEndpoint>,
    headers: HeaderMap,
    body: String,
) -> (axum::http::StatusCode, axum::Json<Value>) {
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    endpoint.requests.lock().unwrap().push((headers, form));
    let delay = endpoint.delay_ms.load(Ordering::SeqCst) as u64;
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    if endpoint.failing.load(Ordering::SeqCst) {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"error": "temporarily_unavailable"})),
        );
    }
    let n = endpoint.issued.fetch_add(1, Ordering::SeqCst) + 1;
    (
        axum::http::StatusCode::OK,
        axum::Json(
            json!({"access_token": format!("t{n}"), "token_type": "Bearer", "expires_in": 3600}),
        ),
    )
}

/// Upstream tokens the test can age: a map like the in-memory one, shared with the test.
#[derive(Clone, Default)]
struct AgeableTokens(Arc<Mutex<HashMap<String, UpstreamToken>>>);

impl AgeableTokens {
    /// Every kept token: due for refresh (still live), or past its expiry.
    fn age(&self, expired: bool) {
        let now = gatehouse::now_ms();
        for token in self.0.lock().unwrap().values_mut() {
            token.refresh_at_ms = now - 1;
            if expired {
                token.expires_at_ms = now - 1;
            }
        }
    }
}

impl UpstreamTokens for AgeableTokens {
    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> StateFuture<'a, Result<Option<UpstreamToken>, Unavailable>> {
        StateFuture::ready(Ok(self.0.lock().unwrap().get(key).cloned()))
    }
    fn put<'a>(
        &'a self,
        key: &'a str,
        token: UpstreamToken,
    ) -> StateFuture<'a, Result<(), Unavailable>> {
        self.0.lock().unwrap().insert(key.to_owned(), token);
        StateFuture::ready(Ok(()))
    }
    fn forget<'a>(&'a self, key: &'a str) -> StateFuture<'a, ()> {
        self.0.lock().unwrap().remove(key);
        StateFuture::ready(())
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

struct Setup {
    app: TestApp,
    upstream: Upstream,
    endpoint: TokenEndpoint,
    tokens: AgeableTokens,
    key: String,
}

async fn setup(auth_method: UpstreamClientAuth, secret: String) -> Setup {
    let tokens = AgeableTokens::default();
    let kept = tokens.clone();
    let app = TestApp::start_with_runtime(move |config, store| RuntimeState {
        upstream_tokens: Arc::new(kept),
        ..RuntimeState::in_memory(config, store)
    })
    .await;
    let upstream = Upstream::start().await;
    let endpoint = TokenEndpoint::start().await;
    app.add_server_with(admin::NewServer {
        name: "files".into(),
        url: upstream.url(),
        upstream_auth: Some(NewUpstreamAuth {
            spec: UpstreamAuthSpec::ClientCredentials {
                token_endpoint: endpoint.url.clone(),
                client_id: "gatehouse client".into(),
                auth_method,
                scope: Some("files:read".into()),
                resource: Some(upstream.url()),
            },
            secret: Some(secret),
        }),
        ..Default::default()
    })
    .await;
    let key = app.client_with_key("agent", "files", "echo").await;
    Setup {
        app,
        upstream,
        endpoint,
        tokens,
        key,
    }
}

/// The `Authorization` values the upstream received, in order.
fn upstream_authorizations(upstream: &Upstream) -> Vec<String> {
    upstream
        .received()
        .iter()
        .map(|r| {
            r.headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        })
        .collect()
}

async fn call_echo(s: &Setup) -> (u16, Value) {
    let (status, _, body) = rpc_message(
        s.app
            .post("files", Some(&s.key), &call("echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    (status, body)
}

#[tokio::test]
async fn a_token_is_fetched_once_with_client_secret_basic_and_sent_on_every_call() {
    let s = setup(UpstreamClientAuth::ClientSecretBasic, "s3cret:&=".into()).await;
    for _ in 0..2 {
        let (status, body) = call_echo(&s).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        upstream_authorizations(&s.upstream),
        ["Bearer t1", "Bearer t1"]
    );
    let requests = s.endpoint.requests();
    assert_eq!(requests.len(), 1, "one token for both calls");
    let (headers, form) = &requests[0];
    // RFC 6749 §2.3.1: both halves form-encoded before Basic.
    use base64::Engine;
    let expected =
        base64::engine::general_purpose::STANDARD.encode("gatehouse+client:s3cret%3A%26%3D");
    assert_eq!(
        headers["authorization"],
        format!("Basic {expected}").as_str()
    );
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["scope"], "files:read");
    assert_eq!(form["resource"], s.upstream.url());
    assert!(!form.contains_key("client_secret"));
    assert!(
        !upstream_authorizations(&s.upstream)
            .iter()
            .any(|a| a.contains(&s.key)),
        "the client's own key never reaches the upstream"
    );
}

#[tokio::test]
async fn concurrent_first_calls_share_one_token_request() {
    let s = setup(UpstreamClientAuth::ClientSecretPost, "s3cret".into()).await;
    s.endpoint.delay_ms.store(300, Ordering::SeqCst);
    let calls = (0..8).map(|_| call_echo(&s));
    for (status, body) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        s.endpoint.requests().len(),
        1,
        "one fetch in flight per key"
    );
    assert!(
        upstream_authorizations(&s.upstream)
            .iter()
            .all(|a| a == "Bearer t1")
    );
    let (_, form) = &s.endpoint.requests()[0];
    assert_eq!(form["client_id"], "gatehouse client");
    assert_eq!(form["client_secret"], "s3cret");
}

#[tokio::test]
async fn a_token_due_for_refresh_is_replaced_and_a_failed_refresh_keeps_the_live_one() {
    let s = setup(UpstreamClientAuth::ClientSecretPost, "s3cret".into()).await;
    assert_eq!(call_echo(&s).await.0, 200);
    s.tokens.age(false);
    assert_eq!(call_echo(&s).await.0, 200);
    assert_eq!(
        upstream_authorizations(&s.upstream),
        ["Bearer t1", "Bearer t2"]
    );

    s.endpoint.failing.store(true, Ordering::SeqCst);
    s.tokens.age(false);
    let (status, body) = call_echo(&s).await;
    assert_eq!(status, 200, "the live token still serves: {body}");
    assert_eq!(s.endpoint.requests().len(), 3, "the refresh was tried");
    assert_eq!(
        upstream_authorizations(&s.upstream).last().unwrap(),
        "Bearer t2"
    );
}

#[tokio::test]
async fn without_a_live_token_the_call_is_refused_before_the_upstream() {
    let s = setup(UpstreamClientAuth::ClientSecretPost, "s3cret".into()).await;
    assert_eq!(call_echo(&s).await.0, 200);
    s.endpoint.failing.store(true, Ordering::SeqCst);
    s.tokens.age(true);
    let hits = s.upstream.hits();
    let (status, body) = call_echo(&s).await;
    assert_eq!(status, 502);
    assert_eq!(s.upstream.hits(), hits, "the upstream was not called");
    insta::assert_json_snapshot!("upstream_credential_unavailable", body);
    let audit = s.app.audit().await;
    let last = audit.last().unwrap();
    assert_eq!(
        last.event.reason.as_deref(),
        Some("upstream_credential_unavailable")
    );
}

#[tokio::test]
async fn private_key_jwt_sends_a_client_assertion_signed_for_the_token_endpoint() {
    use base64::Engine;
    use gatehouse::tokens::{
        jwt::{self, Expectations},
        keys::{SigningKey, VerificationKey, VerifierSet},
    };
    let key = SigningKey::generate(gatehouse_model::algorithm::Algorithm::ES256).unwrap();
    let body = base64::engine::general_purpose::STANDARD.encode(key.to_pkcs8_der());
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n");
    let s = setup(UpstreamClientAuth::PrivateKeyJwt, pem).await;
    assert_eq!(call_echo(&s).await.0, 200);
    let (headers, form) = &s.endpoint.requests()[0];
    assert!(headers.get("authorization").is_none());
    assert_eq!(
        form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    let mut keys = VerifierSet::new();
    keys.insert(VerificationKey::from_jwk(&key.public_jwk()).unwrap());
    let expect = Expectations {
        typ: None,
        ..Expectations::access_token("gatehouse client", s.endpoint.url.clone())
    };
    let claims = jwt::verify(&form["client_assertion"], &keys, &expect).expect("verifies");
    assert_eq!(claims.sub(), Some("gatehouse client"));
    assert!(claims.jti().is_some_and(|j| j.len() >= 16));
    assert!(claims.exp() - claims.iat().unwrap() <= 60);
    assert_eq!(upstream_authorizations(&s.upstream), ["Bearer t1"]);
}
