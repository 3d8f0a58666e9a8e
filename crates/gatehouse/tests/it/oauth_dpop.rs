//! DPoP (RFC 9449) end to end: the token endpoint binds tokens to the key of a proof, the
//! gateway wants a fresh proof by that key with every use, and the attacks the RFC names
//! (a replayed proof, another method or URL, a stale `iat`, a token without its proof,
//! another key, another token's hash) are refused before the upstream sees anything.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use gatehouse::tokens::{dpop::token_hash, keys::SigningKey};
use gatehouse_model::algorithm::Algorithm;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, call, rpc_message},
    oauth::{Setup, base, get_json, header, json_response, jwt_part, resource, setup},
    oauth_browser::{
        Authorize, Browser, Flow, REDIRECT, flow_setup, obtain_code, pkce, redirect_error,
    },
};

/// A client's DPoP key and the proofs it signs.
pub(crate) struct Holder {
    key: SigningKey,
}

impl Holder {
    pub(crate) fn new(alg: Algorithm) -> Holder {
        Holder {
            key: SigningKey::generate(alg).unwrap(),
        }
    }

    pub(crate) fn proof_with(&self, claims: Value) -> String {
        let mut jwk = self.key.public_jwk();
        jwk.as_object_mut().unwrap().remove("kid");
        let header = json!({ "typ": "dpop+jwt", "alg": self.key.alg().as_str(), "jwk": jwk });
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature = self.key.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", B64.encode(signature))
    }

    pub(crate) fn thumbprint(&self) -> String {
        self.key.thumbprint()
    }

    pub(crate) fn proof(&self, method: &str, url: &str, token: Option<&str>) -> String {
        let mut claims = json!({
            "jti": gatehouse::secrets::random_id(12).unwrap(),
            "htm": method,
            "htu": url,
            "iat": gatehouse::now_ms() / 1000,
        });
        if let Some(token) = token {
            claims["ath"] = json!(token_hash(token));
        }
        self.proof_with(claims)
    }
}

pub(crate) fn token_url(app: &TestApp) -> String {
    format!("{}/oauth/token", base(app))
}

/// A client-credentials token request for `svc`, with `proof` in a DPoP header if given.
pub(crate) async fn token_request(
    app: &TestApp,
    secret: &str,
    proof: Option<&str>,
) -> (u16, HeaderMap, Value) {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("resource", &resource(app, "demo"))
        .finish();
    let mut request = app
        .http
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", crate::oauth::basic("svc", secret))
        .body(body);
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    json_response(request.send().await.unwrap()).await
}

/// A gateway request with `Authorization: {scheme} {token}` and an optional proof.
async fn call_with(
    app: &TestApp,
    scheme: &str,
    token: &str,
    proof: Option<&str>,
) -> (u16, HeaderMap, Value) {
    let mut request = app
        .post("demo", None, &call("echo"))
        .header("authorization", format!("{scheme} {token}"));
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    rpc_message(request.send().await.unwrap()).await
}

#[tokio::test]
async fn discovery_advertises_dpop() {
    let Setup { app, .. } = setup().await;
    let (_, _, metadata) =
        get_json(&app, &app.url("/.well-known/oauth-authorization-server")).await;
    let algs = metadata["dpop_signing_alg_values_supported"].to_string();
    assert!(
        algs.contains("ES256") && algs.contains("EdDSA"),
        "{metadata}"
    );
    let (_, _, prm) = get_json(
        &app,
        &app.url("/.well-known/oauth-protected-resource/demo/mcp"),
    )
    .await;
    assert_eq!(
        prm["dpop_signing_alg_values_supported"],
        metadata["dpop_signing_alg_values_supported"]
    );
    assert_eq!(prm["dpop_bound_access_tokens_required"], false);
}

#[tokio::test]
async fn a_bound_token_works_only_with_a_fresh_proof_by_its_key() {
    let Setup {
        app,
        upstream,
        secret,
    } = setup().await;
    let holder = Holder::new(Algorithm::ES256);
    let (status, _, body) = token_request(
        &app,
        &secret,
        Some(&holder.proof("POST", &token_url(&app), None)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        jwt_part(&token, 1)["cnf"]["jkt"],
        json!(holder.key.thumbprint()),
        "bound to the proof's key (RFC 7638 thumbprint)"
    );
    let url = resource(&app, "demo");
    let (status, _, introspected) = crate::oauth::post_form(
        &app,
        "/oauth/introspect",
        Some(("svc", &secret)),
        &[("token", &token)],
    )
    .await;
    assert_eq!(status, 200, "{introspected}");
    assert_eq!(introspected["token_type"], "DPoP");
    assert_eq!(
        introspected["cnf"]["jkt"],
        json!(holder.key.thumbprint()),
        "introspection carries the binding (RFC 9449 §6.2)"
    );

    // Twice: the second use takes the cached-token path and still needs its own proof.
    for _ in 0..2 {
        let (status, _, message) = call_with(
            &app,
            "DPoP",
            &token,
            Some(&holder.proof("POST", &url, Some(&token))),
        )
        .await;
        assert_eq!(status, 200, "{message}");
        assert_eq!(message["result"]["content"][0]["text"], "called echo");
    }
    assert_eq!(upstream.received().len(), 2);

    let replayed = holder.proof("POST", &url, Some(&token));
    assert_eq!(
        call_with(&app, "DPoP", &token, Some(&replayed)).await.0,
        200
    );
    let mut refusals = vec![
        ("replayed proof", "DPoP", Some(replayed)),
        ("bearer scheme", "Bearer", None),
        (
            "bearer scheme with a proof",
            "Bearer",
            Some(holder.proof("POST", &url, Some(&token))),
        ),
        ("no proof", "DPoP", None),
        (
            "wrong htm",
            "DPoP",
            Some(holder.proof("GET", &url, Some(&token))),
        ),
        (
            "wrong htu",
            "DPoP",
            Some(holder.proof("POST", &resource(&app, "other"), Some(&token))),
        ),
        (
            "another token's hash",
            "DPoP",
            Some(holder.proof("POST", &url, Some("another-token"))),
        ),
        (
            "another key",
            "DPoP",
            Some(Holder::new(Algorithm::ES256).proof("POST", &url, Some(&token))),
        ),
    ];
    let stale = holder.proof_with(json!({
        "jti": "stale-1", "htm": "POST", "htu": url, "ath": token_hash(&token),
        "iat": gatehouse::now_ms() / 1000 - 600,
    }));
    refusals.push(("stale iat", "DPoP", Some(stale)));
    let future = holder.proof_with(json!({
        "jti": "future-1", "htm": "POST", "htu": url, "ath": token_hash(&token),
        "iat": gatehouse::now_ms() / 1000 + 600,
    }));
    refusals.push(("iat in the future", "DPoP", Some(future)));
    let before = upstream.received().len();
    for (label, scheme, proof) in refusals {
        let (status, headers, message) = call_with(&app, scheme, &token, proof.as_deref()).await;
        assert_eq!(status, 401, "{label}: {message}");
        let challenge = header(&headers, "www-authenticate");
        assert!(
            challenge.starts_with("DPoP ") && challenge.contains("algs=\""),
            "{label}: {challenge}"
        );
        let reason = message["error"]["data"]["reason"].as_str().unwrap();
        let expected = if scheme == "Bearer" {
            "dpop_proof_required"
        } else {
            "invalid_dpop_proof"
        };
        assert_eq!(reason, expected, "{label}: {message}");
    }
    assert_eq!(
        upstream.received().len(),
        before,
        "no refused request reached the upstream"
    );
    let (_, _, refused) = call_with(&app, "Bearer", &token, None).await;
    insta::assert_json_snapshot!("dpop_proof_required", refused);
    let (_, _, refused) = call_with(&app, "DPoP", &token, None).await;
    insta::assert_json_snapshot!("invalid_dpop_proof", refused);
}

#[tokio::test]
async fn an_unbound_token_is_not_accepted_under_the_dpop_scheme() {
    let Setup { app, secret, .. } = setup().await;
    let (_, _, body) = token_request(&app, &secret, None).await;
    assert_eq!(body["token_type"], "Bearer");
    let token = body["access_token"].as_str().unwrap();
    assert!(jwt_part(token, 1).get("cnf").is_none());
    let holder = Holder::new(Algorithm::EdDSA);
    let proof = holder.proof("POST", &resource(&app, "demo"), Some(token));
    let (status, _, message) = call_with(&app, "DPoP", token, Some(&proof)).await;
    assert_eq!(status, 401, "{message}");
    assert_eq!(message["error"]["data"]["reason"], "invalid_dpop_proof");
    assert_eq!(call_with(&app, "Bearer", token, None).await.0, 200);
}

#[tokio::test]
async fn the_token_endpoint_refuses_bad_proofs_and_clients_that_must_send_one() {
    let Setup { app, secret, .. } = setup().await;
    let holder = Holder::new(Algorithm::ES256);
    let proof = holder.proof("POST", &token_url(&app), None);
    assert_eq!(token_request(&app, &secret, Some(&proof)).await.0, 200);
    for (label, proof) in [
        ("replayed", proof),
        (
            "another URL",
            holder.proof("POST", &resource(&app, "demo"), None),
        ),
        (
            "another method",
            holder.proof("GET", &token_url(&app), None),
        ),
        ("not a JWT", "not-a-proof".to_owned()),
    ] {
        let (status, _, body) = token_request(&app, &secret, Some(&proof)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_dpop_proof")),
            "{label}: {body}"
        );
    }
    let mut metadata = app.store.get_client("svc").await.unwrap().oauth.unwrap();
    metadata.dpop_bound_access_tokens = true;
    app.store
        .set_client_oauth("svc", Some(&metadata))
        .await
        .unwrap();
    app.reload().await;
    let (status, _, body) = token_request(&app, &secret, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "a client that must bind its tokens: {body}"
    );
    let proof = holder.proof("POST", &token_url(&app), None);
    let (status, _, body) = token_request(&app, &secret, Some(&proof)).await;
    assert_eq!((status, body["token_type"].as_str()), (200, Some("DPoP")));
}

/// A public client's token request with an optional proof.
async fn public_token_request(
    app: &TestApp,
    params: &[(&str, &str)],
    proof: Option<&str>,
) -> (u16, HeaderMap, Value) {
    let mut all = vec![("client_id", "spa")];
    all.extend_from_slice(params);
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(all)
        .finish();
    let mut request = app
        .http
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    json_response(request.send().await.unwrap()).await
}

/// Signs alice in for the public client `spa` and redeems the code with a proof by a new
/// key: the app, that key, and the refresh token bound to it.
async fn bound_refresh_token() -> (TestApp, Holder, String) {
    let Flow { app, .. } = flow_setup().await;
    let mut browser = Browser::new(&app);
    let pkce = pkce();
    let code = obtain_code(&app, &mut browser, &Authorize::new(&app, "spa", &pkce)).await;
    let holder = Holder::new(Algorithm::ES256);
    let (status, _, body) = public_token_request(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &pkce.verifier),
            ("redirect_uri", REDIRECT),
        ],
        Some(&holder.proof("POST", &token_url(&app), None)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    (app, holder, refresh)
}

#[tokio::test]
async fn a_public_clients_refresh_token_is_bound_to_its_key() {
    let (app, holder, refresh) = bound_refresh_token().await;
    let url = token_url(&app);
    let params = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    let thief = Holder::new(Algorithm::ES256);
    for (label, proof) in [
        ("without a proof", None),
        (
            "with another key's proof",
            Some(thief.proof("POST", &url, None)),
        ),
    ] {
        let (status, _, body) = public_token_request(&app, &params, proof.as_deref()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{label}: {body}"
        );
    }
    // The thief's attempts did not burn it: the holder still refreshes, and stays bound.
    let (status, _, body) =
        public_token_request(&app, &params, Some(&holder.proof("POST", &url, None))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(
        jwt_part(body["access_token"].as_str().unwrap(), 1)["cnf"]["jkt"],
        json!(holder.key.thumbprint())
    );
}

#[tokio::test]
async fn a_bound_refresh_token_is_revoked_without_a_proof() {
    let (app, holder, refresh) = bound_refresh_token().await;
    let url = token_url(&app);
    // RFC 7009: the client revokes with the token alone (revocation takes no DPoP proof).
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("client_id", "spa"),
            ("token", refresh.as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .finish();
    let revoked = app
        .http
        .post(app.url("/oauth/revoke"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let (status, _, body) = public_token_request(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ],
        Some(&holder.proof("POST", &url, None)),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "even its holder cannot refresh it now: {body}"
    );
}

#[tokio::test]
async fn a_code_bound_with_dpop_jkt_is_redeemed_only_with_a_proof_by_that_key() {
    let Flow { app, .. } = flow_setup().await;
    let mut browser = Browser::new(&app);
    let holder = Holder::new(Algorithm::ES256);
    let thief = Holder::new(Algorithm::ES256);
    let url = token_url(&app);
    // RFC 9449 §10: the client names its key's thumbprint at the authorization request, so a
    // code intercepted on the way back cannot be redeemed with any other key (or none).
    let redeem = |code: String, verifier: String, proof: Option<String>| {
        let app = &app;
        async move {
            public_token_request(
                app,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("code_verifier", &verifier),
                    ("redirect_uri", REDIRECT),
                ],
                proof.as_deref(),
            )
            .await
        }
    };
    for (label, proof) in [
        ("without a proof", None),
        (
            "with another key's proof",
            Some(thief.proof("POST", &url, None)),
        ),
    ] {
        let pkce = pkce();
        let request = Authorize::new(&app, "spa", &pkce).set("dpop_jkt", &holder.key.thumbprint());
        let code = obtain_code(&app, &mut browser, &request).await;
        let (status, _, body) = redeem(code, pkce.verifier.clone(), proof).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{label}: {body}"
        );
    }
    let pkce = pkce();
    let request = Authorize::new(&app, "spa", &pkce).set("dpop_jkt", &holder.key.thumbprint());
    let code = obtain_code(&app, &mut browser, &request).await;
    let (status, _, body) = redeem(
        code,
        pkce.verifier.clone(),
        Some(holder.proof("POST", &url, None)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(
        jwt_part(body["access_token"].as_str().unwrap(), 1)["cnf"]["jkt"],
        json!(holder.key.thumbprint())
    );
    // A dpop_jkt that is not a SHA-256 thumbprint is refused at the authorization request.
    for bad in [
        "short",
        &format!("{}=", &holder.key.thumbprint()[..42]),
        &"A".repeat(44),
    ] {
        let request = Authorize::new(&app, "spa", &pkce).set("dpop_jkt", bad);
        let page = browser.get(&request.url(&app)).await;
        assert_eq!(
            redirect_error(&app, &page, &request.state()),
            "invalid_request",
            "dpop_jkt {bad:?}"
        );
    }
}

#[tokio::test]
async fn nonces_are_required_when_configured_and_go_stale() {
    let upstream = crate::scripted_upstream::Upstream::start().await;
    let app = TestApp::start_with(|c| c.oauth.dpop_nonce = true).await;
    app.add_server("demo", &upstream.url()).await;
    gatehouse::admin::create_client(&*app.store, "svc", "")
        .await
        .unwrap();
    app.grant("svc", "demo", "echo").await;
    let secret =
        crate::oauth::register(&app, "svc", "client_secret_basic", &["client_credentials"])
            .await
            .unwrap();
    let holder = Holder::new(Algorithm::ES256);
    let with_nonce = |method: &str, url: &str, token: Option<&str>, nonce: &str| {
        let mut claims = json!({
            "jti": gatehouse::secrets::random_id(12).unwrap(),
            "htm": method, "htu": url, "iat": gatehouse::now_ms() / 1000, "nonce": nonce,
        });
        if let Some(token) = token {
            claims["ath"] = json!(token_hash(token));
        }
        holder.proof_with(claims)
    };

    let (status, headers, body) = token_request(
        &app,
        &secret,
        Some(&holder.proof("POST", &token_url(&app), None)),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("use_dpop_nonce")),
        "{body}"
    );
    let nonce = header(&headers, "dpop-nonce");
    assert!(!nonce.is_empty());
    let proof = with_nonce("POST", &token_url(&app), None, &nonce);
    let (status, _, body) = token_request(&app, &secret, Some(&proof)).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();

    let url = resource(&app, "demo");
    let (status, headers, message) = call_with(
        &app,
        "DPoP",
        &token,
        Some(&holder.proof("POST", &url, Some(&token))),
    )
    .await;
    assert_eq!(status, 401, "{message}");
    assert_eq!(message["error"]["data"]["reason"], "use_dpop_nonce");
    assert!(header(&headers, "www-authenticate").contains("error=\"use_dpop_nonce\""));
    let nonce = header(&headers, "dpop-nonce");
    let (status, _, message) = call_with(
        &app,
        "DPoP",
        &token,
        Some(&with_nonce("POST", &url, Some(&token), &nonce)),
    )
    .await;
    assert_eq!(status, 200, "{message}");

    let now = gatehouse::now_ms() / 1000;
    let stale = gatehouse::oauth::dpop::current_nonce(&app.server.state, now - 900);
    for (label, nonce) in [
        ("stale", stale.as_str()),
        ("forged", "5999999.AAAAAAAAAAAAAAAAAAAAAAAA"),
    ] {
        let (status, _, message) = call_with(
            &app,
            "DPoP",
            &token,
            Some(&with_nonce("POST", &url, Some(&token), nonce)),
        )
        .await;
        assert_eq!(status, 401, "{label}: {message}");
        assert_eq!(
            message["error"]["data"]["reason"], "use_dpop_nonce",
            "{label}"
        );
    }
    assert_eq!(
        upstream.received().len(),
        1,
        "only the proof with a current nonce"
    );
}
