//! Enterprise-managed authorization: a client redeems an ID-JAG its enterprise IdP issued
//! (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`, `typ: oauth-id-jag+jwt`) for a
//! token acting for the person, within that person's groups. The IdP is a stand-in on
//! loopback serving discovery and its keys; every attack the extension names is refused.

use axum::{Json, Router, routing::get};
use gatehouse::{
    admin::{self, oauth::OAuthRegistration},
    config::IdentityProviderConfig,
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

pub const GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TYP: &str = "oauth-id-jag+jwt";

/// An OpenID provider on loopback: discovery and a JWKS with `key`'s public half.
pub async fn idp_standin(key: &SigningKey) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let discovery = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
    });
    let jwks = json!({ "keys": [key.public_jwk()] });
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { Json(discovery) }),
        )
        .route("/jwks", get(move || async move { Json(jwks) }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    issuer
}

pub struct Enterprise {
    pub app: TestApp,
    pub upstream: Upstream,
    pub idp: String,
    pub key: SigningKey,
    /// Secret of `agent`, registered for the jwt-bearer grant (client_secret_basic).
    pub secret: String,
}

/// Servers `demo` and `other`; group `analysts` may call `echo` on `demo`; IdP `corp`
/// accepting ID-JAGs (groups in `groups`); client `agent` registered for the jwt-bearer grant,
/// with no connection of its own.
pub async fn enterprise(link_by_email: bool) -> Enterprise {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let idp = idp_standin(&key).await;
    let upstream = Upstream::start().await;
    let issuer = idp.clone();
    let app = TestApp::start_with(move |config| {
        let provider: IdentityProviderConfig = serde_json::from_value(json!({
            "name": "corp",
            "issuer": issuer,
            "client_id": "gatehouse",
            "client_secret_env": "CORP_SECRET_UNUSED",
            "groups_claim": "groups",
            "accept_id_jag": true,
            "link_by_email": link_by_email,
        }))
        .unwrap();
        config.oauth.providers = vec![provider];
    })
    .await;
    for server in ["demo", "other"] {
        app.add_server(server, &upstream.url()).await;
    }
    admin::users::grant_group(&app.store, "analysts", "demo", "echo", true, false)
        .await
        .unwrap();
    admin::create_client(&*app.store, "agent", "")
        .await
        .unwrap();
    let registered = admin::oauth::register_client(
        &app.store,
        &app.keyring,
        "agent",
        OAuthRegistration {
            grant_types: vec![GRANT.into()],
            auth_method: Some("client_secret_basic".into()),
            ..OAuthRegistration::default()
        },
    )
    .await
    .unwrap();
    app.reload().await;
    Enterprise {
        app,
        upstream,
        idp,
        key,
        secret: registered.client_secret.unwrap(),
    }
}

impl Enterprise {
    /// An ID-JAG for alice (`sub` u-alice) to `agent` for `demo`, with `changes` applied
    /// (`null` removes a claim).
    pub fn id_jag(&self, changes: Value) -> String {
        self.id_jag_signed(&self.key, Some(TYP), changes)
    }

    pub fn id_jag_signed(&self, key: &SigningKey, typ: Option<&str>, changes: Value) -> String {
        let now = gatehouse::now_ms() / 1000;
        let mut claims = json!({
            "iss": self.idp,
            "sub": "u-alice",
            "aud": self.app.url(""),
            "client_id": "agent",
            "resource": resource(&self.app, "demo"),
            "email": "alice@corp.example",
            "groups": ["analysts"],
            "jti": gatehouse::secrets::random_id(12).unwrap(),
            "iat": now,
            "exp": now + 300,
        });
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        jwt::encode(key, typ, &claims).unwrap()
    }

    pub async fn redeem(&self, assertion: &str, extra: &[(&str, &str)]) -> (u16, Value) {
        let mut params = vec![("grant_type", GRANT), ("assertion", assertion)];
        params.extend_from_slice(extra);
        let (status, _, body) = post_form(
            &self.app,
            "/oauth/token",
            Some(("agent", &self.secret)),
            &params,
        )
        .await;
        (status, body)
    }
}

#[tokio::test]
async fn an_id_jag_gets_a_token_for_the_person_within_their_groups() {
    let ema = enterprise(false).await;
    let (status, body) = ema.redeem(&ema.id_jag(json!({})), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "mcp:demo");
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token for this grant: {body}"
    );
    let token = body["access_token"].as_str().unwrap();
    let claims = jwt_part(token, 1);
    assert_eq!(
        claims["aud"],
        resource(&ema.app, "demo"),
        "the ID-JAG's resource"
    );
    assert_eq!(claims["client_id"], "agent");
    let user = claims["sub"].as_str().unwrap().to_owned();
    let linked = ema
        .app
        .store
        .find_user_by_idp("corp", "u-alice")
        .await
        .unwrap();
    assert_eq!(
        linked.map(|u| u.id),
        Some(user.clone()),
        "the person became a user"
    );

    let (status, _, reply) = gateway(&ema.app, "demo", token, &call("echo")).await;
    assert_eq!(status, 200, "{reply}");
    let (status, _, reply) = gateway(&ema.app, "demo", token, &call("delete_everything")).await;
    assert_eq!(status, 403, "only what the groups grant: {reply}");
    assert_eq!(ema.upstream.received().len(), 1);

    // The same person again, by `sub`, with no groups claim this time: same user, groups kept.
    let (status, body) = ema.redeem(&ema.id_jag(json!({"groups": null})), &[]).await;
    assert_eq!(status, 200, "{body}");
    let again = jwt_part(body["access_token"].as_str().unwrap(), 1);
    assert_eq!(again["sub"], user.as_str());
    let (status, _, reply) = gateway(
        &ema.app,
        "demo",
        body["access_token"].as_str().unwrap(),
        &call("echo"),
    )
    .await;
    assert_eq!(status, 200, "groups recorded before still apply: {reply}");
}

#[tokio::test]
async fn the_requested_scope_is_narrowed_to_the_id_jags() {
    let ema = enterprise(false).await;
    let jag = ema.id_jag(json!({"scope": "mcp:demo:tool:echo"}));
    let (status, body) = ema
        .redeem(&jag, &[("scope", "mcp:demo mcp:demo:tool:echo")])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "mcp:demo:tool:echo", "the intersection");

    let jag = ema.id_jag(json!({"scope": "mcp:demo:tool:echo"}));
    let (status, body) = ema.redeem(&jag, &[("scope", "mcp:demo:tool:add")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope")),
        "{body}"
    );
}

#[tokio::test]
async fn email_links_a_local_user_only_when_configured() {
    for link_by_email in [true, false] {
        let ema = enterprise(link_by_email).await;
        let (bob, _) = admin::users::create_user(
            &ema.app.store,
            "bob@corp.example",
            "Bob",
            None,
            vec!["analysts".into()],
        )
        .await
        .unwrap();
        ema.app.reload().await;
        let jag = ema.id_jag(json!({"sub": "u-bob", "email": "bob@corp.example", "groups": null}));
        let (status, body) = ema.redeem(&jag, &[]).await;
        if link_by_email {
            assert_eq!(status, 200, "{body}");
            let claims = jwt_part(body["access_token"].as_str().unwrap(), 1);
            assert_eq!(claims["sub"], bob.id.as_str(), "the local user bob");
        } else {
            // A new user with no groups: nothing on demo.
            assert_eq!(status, 400, "{body}");
            assert_eq!(body["error"], "invalid_grant");
            let created = ema
                .app
                .store
                .find_user_by_idp("corp", "u-bob")
                .await
                .unwrap()
                .unwrap();
            assert_ne!(created.id, bob.id, "not linked by email");
        }
    }
}

#[tokio::test]
async fn every_attack_is_refused_and_says_why() {
    let ema = enterprise(false).await;
    let stranger = SigningKey::generate(Algorithm::ES256).unwrap();
    let now = gatehouse::now_ms() / 1000;
    let other_resource = resource(&ema.app, "other");
    let used = ema.id_jag(json!({}));
    assert_eq!(ema.redeem(&used, &[]).await.0, 200);
    let unsigned = {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
        let payload = used.split('.').nth(1).unwrap();
        format!(
            "{}.{payload}.",
            B64.encode(br#"{"alg":"none","typ":"oauth-id-jag+jwt"}"#)
        )
    };
    type Case<'a> = (&'a str, String, Vec<(&'a str, String)>);
    let cases: Vec<Case<'_>> = vec![
        (
            "another_audience",
            ema.id_jag(json!({"aud": "https://other-as.example"})),
            vec![],
        ),
        (
            "another_resource",
            ema.id_jag(json!({"resource": "https://mcp.elsewhere.example/mcp"})),
            vec![],
        ),
        (
            "resource_param_differs",
            ema.id_jag(json!({})),
            vec![("resource", other_resource.clone())],
        ),
        (
            "no_access_to_resource",
            ema.id_jag(json!({"resource": other_resource.clone()})),
            vec![],
        ),
        (
            "expired",
            ema.id_jag(json!({"iat": now - 900, "exp": now - 600})),
            vec![],
        ),
        ("unsigned", unsigned, vec![]),
        (
            "signed_by_another_key",
            ema.id_jag_signed(&stranger, Some(TYP), json!({})),
            vec![],
        ),
        (
            "untrusted_issuer",
            ema.id_jag(json!({"iss": "https://idp.evil.example"})),
            vec![],
        ),
        (
            "another_client",
            ema.id_jag(json!({"client_id": "someone-else"})),
            vec![],
        ),
        ("no_jti", ema.id_jag(json!({"jti": null})), vec![]),
        (
            "no_client_id",
            ema.id_jag(json!({"client_id": null})),
            vec![],
        ),
        (
            "foreign_scope",
            ema.id_jag(json!({"scope": "chat.read"})),
            vec![],
        ),
        ("replayed", used, vec![]),
    ];
    let mut bodies = BTreeMap::new();
    for (name, assertion, extra) in &cases {
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = ema.redeem(assertion, &extra).await;
        assert!(status == 400, "{name}: {status} {body}");
        bodies.insert(*name, body);
    }
    insta::assert_json_snapshot!("id_jag_refusals", bodies);
    assert!(ema.upstream.received().is_empty());
}

#[tokio::test]
async fn only_a_client_registered_for_the_grant_may_redeem() {
    let ema = enterprise(false).await;
    admin::create_client(&*ema.app.store, "plain", "")
        .await
        .unwrap();
    let plain = admin::oauth::register_client(
        &ema.app.store,
        &ema.app.keyring,
        "plain",
        OAuthRegistration::default(),
    )
    .await
    .unwrap()
    .client_secret
    .unwrap();
    ema.app.reload().await;
    let jag = ema.id_jag(json!({"client_id": "plain"}));
    let (status, _, body) = post_form(
        &ema.app,
        "/oauth/token",
        Some(("plain", &plain)),
        &[("grant_type", GRANT), ("assertion", &jag)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{body}"
    );
    // And without client authentication an ID-JAG is not a credential of its own.
    let (status, _, body) = post_form(
        &ema.app,
        "/oauth/token",
        None,
        &[("grant_type", GRANT), ("assertion", &ema.id_jag(json!({})))],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
}

#[tokio::test]
async fn metadata_and_discovery_advertise_the_grant() {
    let ema = enterprise(false).await;
    let metadata: Value = ema
        .app
        .http
        .get(ema.app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let grants = metadata["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&json!(GRANT)), "{metadata}");
    assert_eq!(
        metadata["authorization_grant_profiles_supported"],
        json!(["urn:ietf:params:oauth:grant-profile:id-jag"])
    );
    // Without an IdP accepting ID-JAGs (and no workload issuer), neither is advertised.
    let plain = TestApp::start().await;
    let metadata: Value = plain
        .http
        .get(plain.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !metadata["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(GRANT))
    );
    assert!(
        metadata
            .get("authorization_grant_profiles_supported")
            .is_none()
    );
}

/// An upstream whose `server/discover` names no extension of its own.
async fn discovering_upstream() -> String {
    let answer = |axum::Json(request): axum::Json<Value>| async move {
        axum::Json(
            json!({ "jsonrpc": "2.0", "id": request["id"].clone(), "result": {
                "supportedVersions": ["2026-07-28"], "capabilities": { "tools": {} },
            }}),
        )
    };
    let router = Router::new().route("/mcp", axum::routing::post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

async fn discovered_extensions(app: &TestApp) -> Value {
    app.add_server("modern", &discovering_upstream().await)
        .await;
    let key = app.client_with_key("caller", "modern", "*").await;
    let discover = json!({ "jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    }});
    let (status, _, message) = crate::helpers::rpc_message(
        app.post_stateless("modern", Some(&key), &discover)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{message}");
    message["result"]["capabilities"]["extensions"].clone()
}

#[tokio::test]
async fn server_discover_names_the_extension_only_while_an_idp_is_trusted_for_it() {
    const EMA: &str = "io.modelcontextprotocol/enterprise-managed-authorization";
    let ema = enterprise(false).await;
    let extensions = discovered_extensions(&ema.app).await;
    assert!(extensions.get(EMA).is_some(), "{extensions}");
    assert!(
        extensions
            .get("io.modelcontextprotocol/oauth-client-credentials")
            .is_some(),
        "{extensions}"
    );
    let plain = TestApp::start().await;
    let extensions = discovered_extensions(&plain).await;
    assert!(extensions.get(EMA).is_none(), "{extensions}");
}

#[tokio::test]
async fn groups_follow_the_id_jag_and_the_rest_of_the_profile_stays() {
    let ema = enterprise(false).await;
    admin::users::grant_group(&ema.app.store, "writers", "other", "*", true, false)
        .await
        .unwrap();
    ema.app.reload().await;
    let (status, body) = ema
        .redeem(&ema.id_jag(json!({"name": "Alice Example"})), &[])
        .await;
    assert_eq!(status, 200, "{body}");
    let user = ema
        .app
        .store
        .find_user_by_idp("corp", "u-alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.display_name, "Alice Example");

    // Moved to `writers` at the IdP: the next ID-JAG, for `other`, carries the new group.
    let jag = ema.id_jag(json!({"groups": ["writers"], "resource": resource(&ema.app, "other")}));
    let (status, body) = ema.redeem(&jag, &[]).await;
    assert_eq!(status, 200, "the new group reaches other at once: {body}");
    let user = ema.app.store.get_user(&user.id).await.unwrap();
    assert_eq!(user.groups, ["writers"]);
    assert_eq!(
        user.display_name, "Alice Example",
        "an ID-JAG without a name leaves the name"
    );
}

#[tokio::test]
async fn an_id_jag_redeemed_with_a_dpop_proof_gets_a_bound_token() {
    let ema = enterprise(false).await;
    let holder = crate::oauth_dpop::Holder::new(Algorithm::ES256);
    let proof = holder.proof("POST", &crate::oauth_dpop::token_url(&ema.app), None);
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("grant_type", GRANT), ("assertion", &ema.id_jag(json!({})))])
        .finish();
    let response = ema
        .app
        .http
        .post(ema.app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", crate::oauth::basic("agent", &ema.secret))
        .header("dpop", proof)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let claims = jwt_part(body["access_token"].as_str().unwrap(), 1);
    assert!(claims["cnf"]["jkt"].is_string(), "{claims}");
    // Without a proof by that key the bound token is refused at the gateway.
    let token = body["access_token"].as_str().unwrap();
    let (status, _, _) = gateway(&ema.app, "demo", token, &call("echo")).await;
    assert_eq!(status, 401, "a bound token sent as a bearer token");
}
