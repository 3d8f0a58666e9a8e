//! Workload identity federation: machines authenticate with their platform's tokens — a
//! Kubernetes service-account token, a GitHub Actions OIDC token — mapped onto Gatehouse
//! clients by issuer + subject rules, as the jwt-bearer grant or as a client assertion. No
//! client here has a secret or a registered key. The platforms are stand-ins on loopback.

use axum::{Json, Router, routing::get};
use gatehouse::{
    admin,
    config::WorkloadIssuerConfig,
    tokens::{jwt, keys::SigningKey},
};
use gatehouse_model::algorithm::Algorithm;
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::{
    helpers::{TestApp, call},
    oauth::{gateway, jwt_part, post_form, resource},
    scripted_upstream::Upstream,
};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const CLUSTER: &str = "https://kubernetes.default.svc.cluster.local";

/// Serves `key`'s JWKS at `/jwks` and, naming itself the issuer, discovery; its URL.
async fn platform_standin(key: &SigningKey) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let discovery = json!({ "issuer": base, "jwks_uri": format!("{base}/jwks") });
    let jwks = json!({ "keys": [key.public_jwk()] });
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { Json(discovery) }),
        )
        .route("/jwks", get(move || async move { Json(jwks) }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

struct Platforms {
    app: TestApp,
    upstream: Upstream,
    cluster_key: SigningKey,
    ci_key: SigningKey,
    /// The CI stand-in's issuer (its keys found through discovery).
    ci: String,
}

/// A cluster issuer (keys at a configured `jwks_uri`, audience `gatehouse`) mapping
/// `agents:reporter` to client `reporter` and `agents:ghost` to a client that does not
/// exist; a CI issuer (discovery, default audience) mapping acme/tools on main to `ci`.
/// `reporter` and `ci` may call `echo` on `demo`.
async fn platforms() -> Platforms {
    let cluster_key = SigningKey::generate(Algorithm::ES256).unwrap();
    let ci_key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let cluster_keys = format!("{}/jwks", platform_standin(&cluster_key).await);
    let ci = platform_standin(&ci_key).await;
    let ci_issuer = ci.clone();
    let upstream = Upstream::start().await;
    let app = TestApp::start_with(move |config| {
        let issuers: Vec<WorkloadIssuerConfig> = serde_json::from_value(json!([
            {
                "name": "cluster",
                "issuer": CLUSTER,
                "jwks_uri": cluster_keys,
                "audience": "gatehouse",
                "rules": [
                    { "subject": "system:serviceaccount:agents:reporter", "client": "reporter" },
                    { "subject": "system:serviceaccount:agents:ghost", "client": "ghost" },
                ],
            },
            {
                "name": "ci",
                "issuer": ci_issuer,
                "rules": [{
                    "subject": "repo:acme/tools:*",
                    "claims": { "repository": "acme/tools", "ref": "refs/heads/main" },
                    "client": "ci",
                }],
            },
        ]))
        .unwrap();
        config.oauth.workload_issuers = issuers;
        config.validate().unwrap();
    })
    .await;
    app.add_server("demo", &upstream.url()).await;
    for client in ["reporter", "ci"] {
        admin::create_client(&*app.store, client, "").await.unwrap();
        app.grant(client, "demo", "echo").await;
    }
    Platforms {
        app,
        upstream,
        cluster_key,
        ci_key,
        ci,
    }
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

impl Platforms {
    /// A projected service-account token of agents/reporter, with `changes`.
    fn service_account(&self, changes: Value) -> String {
        let now = gatehouse::now_ms() / 1000;
        let claims = json!({
            "iss": CLUSTER,
            "sub": "system:serviceaccount:agents:reporter",
            "aud": ["gatehouse"],
            "kubernetes.io": { "namespace": "agents", "serviceaccount": { "name": "reporter" } },
            "jti": gatehouse::secrets::random_id(12).unwrap(),
            "iat": now, "nbf": now, "exp": now + 600,
        });
        jwt::encode(&self.cluster_key, Some("JWT"), &with(claims, changes)).unwrap()
    }

    /// A GitHub Actions-style OIDC token of acme/tools on main, with `changes`.
    fn ci_token(&self, changes: Value) -> String {
        let now = gatehouse::now_ms() / 1000;
        let claims = json!({
            "iss": self.ci,
            "sub": "repo:acme/tools:ref:refs/heads/main",
            "aud": self.app.url("/oauth/token"),
            "repository": "acme/tools",
            "ref": "refs/heads/main",
            "workflow": "nightly",
            "jti": gatehouse::secrets::random_id(12).unwrap(),
            "iat": now, "exp": now + 300,
        });
        jwt::encode(&self.ci_key, Some("JWT"), &with(claims, changes)).unwrap()
    }

    async fn grant(&self, assertion: &str, extra: &[(&str, &str)]) -> (u16, Value) {
        let resource = resource(&self.app, "demo");
        let mut params = vec![
            ("grant_type", GRANT),
            ("assertion", assertion),
            ("resource", &resource),
        ];
        params.extend_from_slice(extra);
        let (status, _, body) = post_form(&self.app, "/oauth/token", None, &params).await;
        (status, body)
    }

    async fn client_assertion(&self, assertion: &str) -> (u16, Value) {
        let resource = resource(&self.app, "demo");
        let (status, _, body) = post_form(
            &self.app,
            "/oauth/token",
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", assertion),
                ("resource", &resource),
            ],
        )
        .await;
        (status, body)
    }
}

#[tokio::test]
async fn a_service_account_token_is_the_workloads_credential() {
    let platforms = platforms().await;
    let (status, body) = platforms
        .grant(&platforms.service_account(json!({})), &[])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "mcp:demo");
    assert!(body.get("refresh_token").is_none(), "{body}");
    let token = body["access_token"].as_str().unwrap();
    let claims = jwt_part(token, 1);
    assert_eq!(
        (claims["client_id"].as_str(), claims["sub"].as_str()),
        (Some("reporter"), Some("reporter"))
    );
    let (status, _, reply) = gateway(&platforms.app, "demo", token, &call("echo")).await;
    assert_eq!(status, 200, "{reply}");
    let (status, _, _) = gateway(&platforms.app, "demo", token, &call("drop_tables")).await;
    assert_eq!(status, 403, "within the client's connection");
    assert_eq!(platforms.upstream.received().len(), 1);
}

#[tokio::test]
async fn a_ci_token_authenticates_its_client_as_a_client_assertion() {
    let platforms = platforms().await;
    let (status, body) = platforms
        .client_assertion(&platforms.ci_token(json!({})))
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_part(token, 1)["client_id"], "ci");
    let (status, _, reply) = gateway(&platforms.app, "demo", token, &call("echo")).await;
    assert_eq!(status, 200, "{reply}");
    // The same token again, now as the grant: used once is used.
    let (status, body) = platforms.grant(&platforms.ci_token(json!({})), &[]).await;
    assert_eq!(status, 200, "a fresh one works as the grant too: {body}");
}

#[tokio::test]
async fn every_untrusted_or_unmapped_workload_is_refused() {
    let platforms = platforms().await;
    let stranger = SigningKey::generate(Algorithm::ES256).unwrap();
    let now = gatehouse::now_ms() / 1000;
    let used = platforms.service_account(json!({}));
    assert_eq!(platforms.grant(&used, &[]).await.0, 200);
    let unsigned = {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
        let payload = used.split('.').nth(1).unwrap();
        format!("{}.{payload}.", B64.encode(br#"{"alg":"none"}"#))
    };
    let foreign = {
        let claims = json!({
            "iss": "https://token.evil.example", "sub": "system:serviceaccount:agents:reporter",
            "aud": "gatehouse", "jti": "x", "iat": now, "exp": now + 60,
        });
        jwt::encode(&stranger, None, &claims).unwrap()
    };
    let typed = |typ: &str| {
        let claims = jwt_part(&platforms.service_account(json!({})), 1);
        jwt::encode(&platforms.cluster_key, Some(typ), &claims).unwrap()
    };
    let cases = [
        ("untrusted_issuer", foreign),
        (
            "unmapped_subject",
            platforms.service_account(json!({"sub": "system:serviceaccount:agents:intruder"})),
        ),
        (
            "claim_condition_fails",
            platforms.ci_token(
                json!({"ref": "refs/heads/dev", "sub": "repo:acme/tools:ref:refs/heads/dev"}),
            ),
        ),
        ("claim_missing", platforms.ci_token(json!({"ref": null}))),
        (
            "wrong_audience",
            platforms.service_account(json!({"aud": ["https://kubernetes.default.svc"]})),
        ),
        (
            "expired",
            platforms
                .service_account(json!({"iat": now - 1200, "nbf": now - 1200, "exp": now - 600})),
        ),
        ("unsigned", unsigned),
        (
            "signed_by_another_key",
            jwt::encode(
                &stranger,
                None,
                &jwt_part(&platforms.service_account(json!({})), 1),
            )
            .unwrap(),
        ),
        ("no_jti", platforms.service_account(json!({"jti": null}))),
        (
            "maps_to_unknown_client",
            platforms.service_account(json!({"sub": "system:serviceaccount:agents:ghost"})),
        ),
        ("an_access_token", typed("at+jwt")),
        ("typed_as_an_id_jag", typed("oauth-id-jag+jwt")),
        ("replayed", used),
    ];
    let mut bodies = BTreeMap::new();
    for (name, assertion) in &cases {
        let (status, body) = platforms.grant(assertion, &[]).await;
        let expected = if *name == "typed_as_an_id_jag" {
            // An ID-JAG needs an authenticated client; this request has none.
            401
        } else {
            400
        };
        assert_eq!(status, expected, "{name}: {body}");
        bodies.insert(*name, body);
    }
    // A client_id beside the token must name the client it maps to.
    let (status, body) = platforms
        .grant(
            &platforms.service_account(json!({})),
            &[("client_id", "ci")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    bodies.insert("client_id_of_another_client", body);
    insta::assert_json_snapshot!("workload_grant_refusals", bodies);
    assert!(platforms.upstream.received().is_empty());
}

#[tokio::test]
async fn as_a_client_assertion_every_refusal_is_invalid_client() {
    let platforms = platforms().await;
    let used = platforms.ci_token(json!({}));
    assert_eq!(platforms.client_assertion(&used).await.0, 200);
    let cases = [
        ("replayed", used),
        ("claim_condition_fails", platforms.ci_token(json!({"repository": "acme/other"}))),
        ("wrong_audience", platforms.ci_token(json!({"aud": "https://elsewhere.example"}))),
        ("expired", platforms.ci_token(json!({"iat": gatehouse::now_ms() / 1000 - 900, "exp": gatehouse::now_ms() / 1000 - 600}))),
    ];
    for (name, assertion) in &cases {
        let (status, body) = platforms.client_assertion(assertion).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{name}: {body}"
        );
    }
}

#[tokio::test]
async fn the_grant_is_advertised_with_a_workload_issuer() {
    let platforms = platforms().await;
    let metadata: Value = platforms
        .app
        .http
        .get(platforms.app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let grants = metadata["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&json!(GRANT)), "{metadata}");
    assert!(
        metadata
            .get("authorization_grant_profiles_supported")
            .is_none(),
        "no IdP accepts ID-JAGs: {metadata}"
    );
}

#[tokio::test]
async fn a_client_that_authenticates_otherwise_may_bring_only_its_own_workload_token() {
    let platforms = platforms().await;
    let registered = admin::oauth::register_client(
        &platforms.app.store,
        &platforms.app.keyring,
        "ci",
        admin::oauth::OAuthRegistration::default(),
    )
    .await
    .unwrap();
    platforms.app.reload().await;
    let secret = registered.client_secret.unwrap();
    let resource = resource(&platforms.app, "demo");
    let redeem = |assertion: String| {
        let (app, secret, resource) = (&platforms.app, secret.clone(), resource.clone());
        async move {
            let params = [
                ("grant_type", GRANT),
                ("assertion", assertion.as_str()),
                ("resource", resource.as_str()),
            ];
            post_form(app, "/oauth/token", Some(("ci", &secret)), &params).await
        }
    };
    let (status, _, body) = redeem(platforms.service_account(json!({}))).await;
    assert_eq!(
        (status, body["error_description"].as_str()),
        (400, Some("the assertion was issued to another client")),
        "reporter's token, ci's secret: {body}"
    );
    let (status, _, body) = redeem(platforms.ci_token(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        jwt_part(body["access_token"].as_str().unwrap(), 1)["client_id"],
        "ci"
    );
}

#[tokio::test]
async fn a_workload_token_is_used_once_across_replicas() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let jwks_uri = format!("{}/jwks", platform_standin(&key).await);
    let upstream = Upstream::start().await;
    let redis = gatehouse_testkit::redis::Redis::shared().url();
    let cluster = crate::cluster::TestCluster::start_on(None, redis, |config| {
        config.oauth.workload_issuers = serde_json::from_value(json!([{
            "name": "cluster", "issuer": CLUSTER, "jwks_uri": jwks_uri, "audience": "gatehouse",
            "rules": [{ "subject": "system:serviceaccount:agents:reporter", "client": "reporter" }],
        }]))
        .unwrap();
    })
    .await;
    let first = &cluster.replicas[0];
    first.add_server("demo", &upstream.url()).await;
    admin::create_client(&*first.store, "reporter", "")
        .await
        .unwrap();
    first.grant("reporter", "demo", "echo").await;
    cluster.reload().await;
    let now = gatehouse::now_ms() / 1000;
    let token = jwt::encode(
        &key,
        Some("JWT"),
        &json!({
            "iss": CLUSTER, "sub": "system:serviceaccount:agents:reporter", "aud": "gatehouse",
            "jti": "sa-token-1", "iat": now, "exp": now + 600,
        }),
    )
    .unwrap();
    let mut answers = Vec::new();
    for replica in &cluster.replicas[..2] {
        let resource = resource(replica, "demo");
        let params = [
            ("grant_type", GRANT),
            ("assertion", token.as_str()),
            ("resource", resource.as_str()),
        ];
        let (status, _, body) = post_form(replica, "/oauth/token", None, &params).await;
        answers.push((status, body["error_description"].clone()));
    }
    assert_eq!(answers[0].0, 200, "{answers:?}");
    assert_eq!(
        answers[1],
        (400, json!("the assertion was already used")),
        "another replica knows it was used"
    );
}

#[tokio::test]
async fn a_request_refused_for_its_dpop_proof_leaves_the_workload_token_usable() {
    let platforms = platforms().await;
    let token = platforms.service_account(json!({}));
    let holder = crate::oauth_dpop::Holder::new(Algorithm::ES256);
    let wrong_url = holder.proof("POST", "http://elsewhere.example/oauth/token", None);
    let resource = resource(&platforms.app, "demo");
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", GRANT),
            ("assertion", token.as_str()),
            ("resource", resource.as_str()),
        ])
        .finish();
    let refused = platforms
        .app
        .http
        .post(platforms.app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("dpop", wrong_url)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["error"], "invalid_dpop_proof", "{refused}");
    let (status, body) = platforms.grant(&token, &[]).await;
    assert_eq!(
        status, 200,
        "the token was not spent by the refused request: {body}"
    );
}

/// A replay cache whose backing state cannot be reached.
struct Unreachable;

impl gatehouse::state::ReplayCache for Unreachable {
    fn first_use(
        &self,
        _: &str,
        _: i64,
        _: i64,
    ) -> gatehouse::state::StateFuture<'_, Result<bool, gatehouse::state::Unavailable>> {
        gatehouse::state::StateFuture::ready(Err(gatehouse::state::Unavailable))
    }

    fn len(&self) -> usize {
        0
    }
}

#[tokio::test]
async fn unreachable_keys_or_replay_state_fail_closed_and_retryable() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    // Nothing listens there: the issuer's keys cannot be fetched.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/jwks", listener.local_addr().unwrap())
    };
    let live = format!("{}/jwks", platform_standin(&key).await);
    for (jwks_uri, replay_reachable) in [(closed, true), (live, false)] {
        let app = TestApp::start_with_runtime_and(
            move |config, store| {
                let runtime = gatehouse::state::RuntimeState::in_memory(config, store);
                if replay_reachable {
                    runtime
                } else {
                    gatehouse::state::RuntimeState {
                        client_assertions: std::sync::Arc::new(Unreachable),
                        ..runtime
                    }
                }
            },
            move |config| {
                config.oauth.workload_issuers = serde_json::from_value(json!([{
                    "name": "cluster", "issuer": CLUSTER, "jwks_uri": jwks_uri, "audience": "gatehouse",
                    "rules": [{ "subject": "system:serviceaccount:agents:reporter", "client": "reporter" }],
                }]))
                .unwrap();
            },
        )
        .await;
        app.add_server("demo", "http://127.0.0.1:9/mcp").await;
        admin::create_client(&*app.store, "reporter", "")
            .await
            .unwrap();
        app.grant("reporter", "demo", "echo").await;
        let now = gatehouse::now_ms() / 1000;
        let token = jwt::encode(
            &key,
            Some("JWT"),
            &json!({
                "iss": CLUSTER, "sub": "system:serviceaccount:agents:reporter", "aud": "gatehouse",
                "jti": "j-1", "iat": now, "exp": now + 600,
            }),
        )
        .unwrap();
        let resource = resource(&app, "demo");
        let params = [
            ("grant_type", GRANT),
            ("assertion", token.as_str()),
            ("resource", resource.as_str()),
        ];
        let (status, _, body) = post_form(&app, "/oauth/token", None, &params).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (503, Some("temporarily_unavailable")),
            "keys reachable: {}, replay state reachable: {replay_reachable}: {body}",
            !replay_reachable
        );
    }
}
