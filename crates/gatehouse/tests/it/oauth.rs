//! The authorization server (client credentials) as a client sees it: discovery, issuing
//! tokens, audience and scope at the gateway. Revocation, introspection, rotation and the
//! audit trail: `oauth_lifecycle.rs`; refusals and attacks: `oauth_attacks.rs`.

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64},
};
use gatehouse::admin::{self, oauth::OAuthRegistration};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, call, list_tools, rpc_message},
    scripted_upstream::Upstream,
};

pub struct Setup {
    pub app: TestApp,
    pub upstream: Upstream,
    /// `svc`'s secret (client_secret_basic; connections to `demo` (echo, add) and `other`).
    pub secret: String,
}

/// Servers `demo`, `other` and `third`; client `svc` connected to the first two only.
pub async fn setup() -> Setup {
    setup_on(TestApp::start().await).await
}

/// [`setup`] on an app the caller started (for example with other runtime state).
pub async fn setup_on(app: TestApp) -> Setup {
    let upstream = Upstream::start().await;
    for server in ["demo", "other", "third"] {
        app.add_server(server, &upstream.url()).await;
    }
    admin::create_client(&*app.store, "svc", "").await.unwrap();
    app.grant("svc", "demo", "echo,add").await;
    app.grant("svc", "other", "*").await;
    let secret = register(&app, "svc", "client_secret_basic", &["client_credentials"])
        .await
        .unwrap();
    Setup {
        app,
        upstream,
        secret,
    }
}

/// Registers an existing client for OAuth as the CLI does; returns its first secret.
pub async fn register(
    app: &TestApp,
    client: &str,
    method: &str,
    grant_types: &[&str],
) -> Option<String> {
    let code = grant_types.contains(&"authorization_code");
    let registered = admin::oauth::register_client(
        &app.store,
        &app.keyring,
        client,
        OAuthRegistration {
            grant_types: grant_types.iter().map(|g| (*g).to_owned()).collect(),
            auth_method: Some(method.into()),
            redirect_uris: if code {
                vec!["http://127.0.0.1:9/callback".into()]
            } else {
                vec![]
            },
            native: false,
            jwks: None,
            require_dpop: false,
        },
    )
    .await
    .unwrap();
    app.reload().await;
    registered.client_secret
}

/// A second confidential client, `poster` (client_secret_post, `demo`: echo); its secret.
pub async fn poster(app: &TestApp) -> String {
    admin::create_client(&*app.store, "poster", "")
        .await
        .unwrap();
    app.grant("poster", "demo", "echo").await;
    register(app, "poster", "client_secret_post", &["client_credentials"])
        .await
        .unwrap()
}

pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

pub fn base(app: &TestApp) -> String {
    app.server.local_url()
}

pub fn resource(app: &TestApp, server: &str) -> String {
    format!("{}/{server}/mcp", base(app))
}

pub async fn json_response(response: reqwest::Response) -> (u16, HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// A form POST to an OAuth endpoint, with HTTP Basic client authentication when given.
pub async fn post_form(
    app: &TestApp,
    path: &str,
    auth: Option<(&str, &str)>,
    params: &[(&str, &str)],
) -> (u16, HeaderMap, Value) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let mut request = app
        .http
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some((id, secret)) = auth {
        request = request.header("authorization", basic(id, secret));
    }
    json_response(request.send().await.unwrap()).await
}

/// A successful client-credentials token response for `svc` (Basic).
pub async fn issue(app: &TestApp, secret: &str, extra: &[(&str, &str)]) -> Value {
    let mut params = vec![("grant_type", "client_credentials")];
    params.extend_from_slice(extra);
    let (status, _, body) = post_form(app, "/oauth/token", Some(("svc", secret)), &params).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// An access token for `svc` bound to `server`.
pub async fn token_for(app: &TestApp, secret: &str, server: &str) -> String {
    let resource = resource(app, server);
    let body = issue(app, secret, &[("resource", &resource)]).await;
    body["access_token"].as_str().unwrap().to_owned()
}

/// Header (0) or claims (1) of a JWT, decoded without verification.
pub fn jwt_part(token: &str, index: usize) -> Value {
    let segment = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&B64.decode(segment).unwrap()).unwrap()
}

pub async fn gateway(
    app: &TestApp,
    server: &str,
    token: &str,
    body: &Value,
) -> (u16, HeaderMap, Value) {
    rpc_message(app.post(server, Some(token), body).send().await.unwrap()).await
}

pub fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The exact challenge of a refused access token on `server`.
pub fn invalid_token_challenge(app: &TestApp, server: &str) -> String {
    format!(
        "Bearer error=\"invalid_token\", resource_metadata=\"{}/.well-known/oauth-protected-resource/{server}/mcp\", scope=\"mcp:{server}\"",
        base(app)
    )
}

pub async fn jwks(app: &TestApp) -> Value {
    let response = app
        .http
        .get(app.url("/oauth/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

pub fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

pub async fn get_json(app: &TestApp, url: &str) -> (u16, HeaderMap, Value) {
    json_response(app.http.get(url).send().await.unwrap()).await
}

// ---------------------------------------------------------------------------------------
// Discovery

#[tokio::test]
async fn discovery_documents_name_this_gatehouse() {
    let Setup { app, .. } = setup().await;
    let base = base(&app);
    assert_eq!(base, app.config.public_url, "the test's own public URL");
    let (status, headers, metadata) =
        get_json(&app, &app.url("/.well-known/oauth-authorization-server")).await;
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type").starts_with("application/json"));
    // RFC 8414 §3.3: byte-identical to the issuer the client derived the URL from.
    assert_eq!(metadata["issuer"].as_str(), Some(base.as_str()));
    assert_eq!(metadata["token_endpoint"], format!("{base}/oauth/token"));
    assert_eq!(metadata["jwks_uri"], format!("{base}/oauth/jwks.json"));
    assert_eq!(
        metadata["revocation_endpoint"],
        format!("{base}/oauth/revoke")
    );
    assert_eq!(
        metadata["introspection_endpoint"],
        format!("{base}/oauth/introspect")
    );
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        json!(["S256"])
    );
    assert_eq!(
        metadata["grant_types_supported"],
        json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    assert_eq!(
        metadata["authorization_endpoint"],
        format!("{base}/oauth/authorize")
    );
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none"
        ])
    );
    assert_eq!(metadata["client_id_metadata_document_supported"], true);

    let (status, _, openid) = get_json(&app, &app.url("/.well-known/openid-configuration")).await;
    assert_eq!(status, 200);
    assert_eq!(openid, metadata);

    let (status, _, prm) = get_json(
        &app,
        &app.url("/.well-known/oauth-protected-resource/demo/mcp"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(prm["resource"], format!("{base}/demo/mcp"));
    assert_eq!(prm["authorization_servers"], json!([base]));
    assert_eq!(prm["bearer_methods_supported"], json!(["header"]));

    let (status, _, _) = get_json(
        &app,
        &app.url("/.well-known/oauth-protected-resource/nosuch/mcp"),
    )
    .await;
    assert_eq!(status, 404);

    let response = app
        .http
        .get(app.url("/oauth/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(response.headers(), "content-type"),
        "application/jwk-set+json"
    );
    let set: Value = response.json().await.unwrap();
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{set}");
    assert_eq!(
        (&keys[0]["kty"], &keys[0]["alg"]),
        (&json!("OKP"), &json!("EdDSA"))
    );
    assert!(keys[0].get("d").is_none(), "no private member published");
}

#[tokio::test]
async fn a_401_leads_a_client_to_the_authorization_server() {
    let Setup { app, .. } = setup().await;
    let (status, headers, _) =
        rpc_message(app.post("demo", None, &call("echo")).send().await.unwrap()).await;
    assert_eq!(status, 401);
    let challenge = header(&headers, "www-authenticate");
    let expected = format!(
        "{}/.well-known/oauth-protected-resource/demo/mcp",
        base(&app)
    );
    assert!(
        challenge.contains(&format!("resource_metadata=\"{expected}\"")),
        "{challenge}"
    );
    let url = challenge
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    let (status, _, prm) = get_json(&app, url).await;
    assert_eq!(status, 200);
    assert_eq!(prm["resource"], resource(&app, "demo"));
    let issuer = prm["authorization_servers"][0].as_str().unwrap();
    let (status, _, metadata) = get_json(
        &app,
        &format!("{issuer}/.well-known/oauth-authorization-server"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(metadata["issuer"], issuer);
}

// ---------------------------------------------------------------------------------------
// Issuing tokens

#[tokio::test]
async fn client_secret_basic_token_is_an_rfc9068_jwt_that_works_at_the_gateway() {
    let Setup {
        app,
        upstream,
        secret,
    } = setup().await;
    let demo = resource(&app, "demo");
    let before = gatehouse::now_ms() / 1000;
    let (status, headers, body) = post_form(
        &app,
        "/oauth/token",
        Some(("svc", &secret)),
        &[("grant_type", "client_credentials"), ("resource", &demo)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(header(&headers, "pragma"), "no-cache");
    assert!(header(&headers, "content-type").starts_with("application/json"));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "mcp:demo");
    assert!(
        body.get("refresh_token").is_none(),
        "none for client credentials"
    );
    let token = body["access_token"].as_str().unwrap();

    let head = jwt_part(token, 0);
    assert_eq!(
        (&head["typ"], &head["alg"]),
        (&json!("at+jwt"), &json!("EdDSA"))
    );
    let kid = head["kid"].as_str().unwrap();
    assert!(kids(&jwks(&app).await).iter().any(|k| k == kid), "{kid}");
    let claims = jwt_part(token, 1);
    assert_eq!(claims["iss"].as_str(), Some(app.config.public_url.as_str()));
    assert_eq!(claims["sub"], "svc");
    assert_eq!(claims["client_id"], "svc");
    assert_eq!(claims["aud"], demo);
    assert_eq!(claims["scope"], "mcp:demo");
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!(
        (before..=before + 5).contains(&iat),
        "iat {iat} now {before}"
    );
    assert_eq!(exp - iat, 600);
    assert!(claims["jti"].as_str().unwrap().len() >= 16);

    let (status, _, message) = gateway(&app, "demo", token, &call("echo")).await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(message["result"]["content"][0]["text"], "called echo");
    let forwarded = upstream.received();
    let last = forwarded.last().unwrap();
    assert_eq!(last.body["method"], "tools/call");
    assert!(
        last.headers.get("authorization").is_none(),
        "the access token is not forwarded upstream"
    );
}

#[tokio::test]
async fn client_secret_post_token_works_at_the_gateway() {
    let Setup { app, .. } = setup().await;
    let secret = poster(&app).await;
    let (status, headers, body) = post_form(
        &app,
        "/oauth/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "poster"),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(
        (&body["token_type"], &body["expires_in"]),
        (&json!("Bearer"), &json!(600))
    );
    // Neither resource nor scope: every server the client is connected to (just `demo`).
    assert_eq!(body["scope"], "mcp:demo");
    let token = body["access_token"].as_str().unwrap();
    let claims = jwt_part(token, 1);
    assert_eq!(
        (&claims["sub"], &claims["client_id"]),
        (&json!("poster"), &json!("poster"))
    );
    assert_eq!(claims["aud"], resource(&app, "demo"));
    let (status, _, message) = gateway(&app, "demo", token, &call("echo")).await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(message["result"]["content"][0]["text"], "called echo");
}

#[tokio::test]
async fn without_resource_the_token_names_every_connected_server() {
    let Setup { app, secret, .. } = setup().await;
    let body = issue(&app, &secret, &[]).await;
    assert_eq!(body["scope"], "mcp:demo mcp:other");
    let token = body["access_token"].as_str().unwrap();
    let claims = jwt_part(token, 1);
    assert_eq!(
        claims["aud"],
        json!([resource(&app, "demo"), resource(&app, "other")])
    );
    for server in ["demo", "other"] {
        let (status, _, message) = gateway(&app, server, token, &call("echo")).await;
        assert_eq!(status, 200, "{server}: {message}");
    }
    let (status, headers, _) = gateway(&app, "third", token, &call("echo")).await;
    assert_eq!(status, 401);
    assert_eq!(
        header(&headers, "www-authenticate"),
        invalid_token_challenge(&app, "third")
    );
}

// ---------------------------------------------------------------------------------------
// Audience and scope

#[tokio::test]
async fn a_token_for_one_server_is_refused_by_another_even_once_cached() {
    let Setup { app, secret, .. } = setup().await;
    let token = token_for(&app, &secret, "demo").await;
    let fresh = token_for(&app, &secret, "demo").await;
    let (status, _, _) = gateway(&app, "demo", &token, &call("echo")).await;
    assert_eq!(status, 200, "verified and cached at demo");
    // `svc` is connected to `other` too: only the audience can refuse these.
    for (label, token) in [("cached", &token), ("never used", &fresh)] {
        let (status, headers, body) = gateway(&app, "other", token, &call("echo")).await;
        assert_eq!(status, 401, "{label}");
        assert_eq!(
            header(&headers, "www-authenticate"),
            invalid_token_challenge(&app, "other"),
            "{label}"
        );
        assert_eq!(
            body["error"]["data"]["reason"], "invalid_credential",
            "{label}"
        );
    }
    let (status, _, _) = gateway(&app, "demo", &token, &call("echo")).await;
    assert_eq!(status, 200, "still good where it belongs");
}

#[tokio::test]
async fn a_tool_scope_narrows_the_token_within_the_connection() {
    let Setup { app, secret, .. } = setup().await;
    let demo = resource(&app, "demo");
    let body = issue(
        &app,
        &secret,
        &[("resource", &demo), ("scope", "mcp:demo:tool:echo")],
    )
    .await;
    assert_eq!(body["scope"], "mcp:demo:tool:echo");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_part(token, 1)["scope"], "mcp:demo:tool:echo");

    let (status, _, _) = gateway(&app, "demo", token, &call("echo")).await;
    assert_eq!(status, 200);
    let (status, _, _) = gateway(&app, "demo", token, &list_tools()).await;
    assert_eq!(status, 200, "listing comes with a tool scope");

    // `add` is granted by the connection but not by the token: step up.
    let (status, headers, body) = gateway(&app, "demo", token, &call("add")).await;
    assert_eq!(status, 403);
    assert_eq!(
        header(&headers, "www-authenticate"),
        format!(
            "Bearer error=\"insufficient_scope\", scope=\"mcp:demo:tool:add mcp:demo:tool:echo\", resource_metadata=\"{}/.well-known/oauth-protected-resource/demo/mcp\"",
            base(&app)
        )
    );
    assert_eq!(body["error"]["data"]["reason"], "insufficient_scope");
    assert_eq!(body["id"], 7);
    insta::assert_json_snapshot!("insufficient_scope", body);

    // Beyond the connection it is a grant refusal, not a scope one.
    let (status, _, body) = gateway(&app, "demo", token, &call("delete_records")).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["data"]["reason"], "tool_not_granted");
}
