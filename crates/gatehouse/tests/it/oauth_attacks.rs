//! Refusals: forged and tampered access tokens at the gateway (each a 401 `invalid_token`
//! that never reaches the upstream), token requests beyond the grant, failed client
//! authentication, malformed requests, and revocation attempts on others' credentials.
//!
//! Forgeries are signed with the real signing key where that isolates the one thing wrong
//! with them; a control token built the same way is accepted.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use gatehouse::{admin, tokens::keys::SigningKey};
use gatehouse_model::algorithm::Algorithm;
use serde_json::{Value, json};
use std::sync::Arc;

use crate::{
    helpers::{TestApp, call},
    oauth::{
        Setup, base, basic, gateway, header, invalid_token_challenge, issue, json_response,
        jwt_part, post_form, poster, register, resource, setup, token_for,
    },
};

/// The key the running Gatehouse signs with now.
fn real_key(app: &TestApp) -> Arc<SigningKey> {
    let snapshot = app.server.state.snapshot.current();
    snapshot
        .oauth
        .signing
        .signer(gatehouse::now_ms())
        .unwrap()
        .clone()
}

fn claims(app: &TestApp) -> Value {
    let now = gatehouse::now_ms() / 1000;
    json!({
        "iss": base(app), "sub": "svc", "aud": resource(app, "demo"), "client_id": "svc",
        "scope": "mcp:demo", "iat": now, "nbf": now, "exp": now + 600, "jti": "forged-0001",
    })
}

fn std_header(key: &SigningKey) -> Value {
    json!({ "alg": key.alg().as_str(), "kid": key.kid(), "typ": "at+jwt" })
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    )
}

/// `header.claims.signature`, signed by `key` whatever the header says.
fn forge(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = signing_input(header, claims);
    let signature = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", B64.encode(signature))
}

fn with(mut value: Value, name: &str, member: Value) -> Value {
    value[name] = member;
    value
}

fn without(mut value: Value, name: &str) -> Value {
    value.as_object_mut().unwrap().remove(name);
    value
}

fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = signing_input(header, claims);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", B64.encode(tag.as_ref()))
}

fn tool_calls(upstream: &crate::scripted_upstream::Upstream) -> usize {
    upstream
        .received()
        .iter()
        .filter(|r| r.body["method"] == "tools/call")
        .count()
}

#[tokio::test]
async fn forged_and_tampered_tokens_are_invalid_token() {
    let Setup {
        app,
        upstream,
        secret,
    } = setup().await;
    let real = real_key(&app);
    let good_header = std_header(&real);
    let good_claims = claims(&app);

    // Control: a token built by this test with the real key passes, so each refusal below
    // is down to the one thing changed.
    let control = forge(&real, &good_header, &good_claims);
    let (status, _, body) = gateway(&app, "demo", &control, &call("echo")).await;
    assert_eq!(status, 200, "control: {body}");
    let calls_before = tool_calls(&upstream);

    let attacker = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let jwk = real.public_jwk();
    let raw_public = B64.decode(jwk["x"].as_str().unwrap()).unwrap();
    let hs_header = with(good_header.clone(), "alg", json!("HS256"));
    let issued = token_for(&app, &secret, "demo").await;
    let (input, signature) = issued.rsplit_once('.').unwrap();
    let mut flipped = B64.decode(signature).unwrap();
    flipped[10] ^= 1;
    let now = gatehouse::now_ms() / 1000;
    let c = |name: &str, value: Value| {
        forge(&real, &good_header, &with(good_claims.clone(), name, value))
    };
    let h = |name: &str, value: Value| {
        forge(&real, &with(good_header.clone(), name, value), &good_claims)
    };

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            format!(
                "{}.",
                signing_input(
                    &with(good_header.clone(), "alg", json!("none")),
                    &good_claims
                )
            ),
            "invalid_credential",
        ),
        (
            "HS256 keyed with the raw public key",
            hs256(&raw_public, &hs_header, &good_claims),
            "invalid_credential",
        ),
        (
            "HS256 keyed with the published JWK",
            hs256(jwk.to_string().as_bytes(), &hs_header, &good_claims),
            "invalid_credential",
        ),
        (
            "unknown kid",
            forge(&attacker, &std_header(&attacker), &good_claims),
            "invalid_credential",
        ),
        (
            "impostor key under the real kid",
            forge(&attacker, &good_header, &good_claims),
            "invalid_credential",
        ),
        (
            "jku",
            h("jku", json!("https://evil.example/jwks.json")),
            "invalid_credential",
        ),
        (
            "x5u",
            h("x5u", json!("https://evil.example/cert.pem")),
            "invalid_credential",
        ),
        ("jwk", h("jwk", attacker.public_jwk()), "invalid_credential"),
        ("crit", h("crit", json!(["exp"])), "invalid_credential"),
        (
            "flipped signature byte",
            format!("{input}.{}", B64.encode(&flipped)),
            "invalid_credential",
        ),
        ("expired", c("exp", json!(now - 3600)), "expired_credential"),
        (
            "not yet valid",
            c("nbf", json!(now + 3600)),
            "invalid_credential",
        ),
        (
            "issued in the future",
            c("iat", json!(now + 3600)),
            "invalid_credential",
        ),
        (
            "wrong iss",
            c("iss", json!("https://evil.example")),
            "invalid_credential",
        ),
        (
            "iss with a trailing slash",
            c("iss", json!(format!("{}/", base(&app)))),
            "invalid_credential",
        ),
        ("typ JWT", h("typ", json!("JWT")), "invalid_credential"),
        (
            "no typ",
            forge(&real, &without(good_header.clone(), "typ"), &good_claims),
            "invalid_credential",
        ),
        (
            "no exp",
            forge(&real, &good_header, &without(good_claims.clone(), "exp")),
            "invalid_credential",
        ),
        (
            "over 8 KiB",
            c("pad", json!("x".repeat(8 * 1024))),
            "invalid_credential",
        ),
    ];
    for (label, token, reason) in cases {
        let (status, headers, body) = gateway(&app, "demo", &token, &call("echo")).await;
        assert_eq!(status, 401, "{label}: {body}");
        assert_eq!(
            header(&headers, "www-authenticate"),
            invalid_token_challenge(&app, "demo"),
            "{label}"
        );
        assert_eq!(body["error"]["data"]["reason"], reason, "{label}: {body}");
    }
    assert_eq!(tool_calls(&upstream), calls_before, "nothing forwarded");
    // The real token whose signature was tampered with still works untouched.
    let (status, _, _) = gateway(&app, "demo", &issued, &call("echo")).await;
    assert_eq!(status, 200);
    assert_eq!(jwt_part(&issued, 0)["kid"], real.kid());
}

#[tokio::test]
async fn a_token_in_the_query_string_is_refused() {
    let Setup {
        app,
        upstream,
        secret,
    } = setup().await;
    let token = token_for(&app, &secret, "demo").await;
    let send = |url: String, bearer: bool| {
        let mut request = app
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("accept", crate::helpers::ACCEPT)
            .body(call("echo").to_string());
        if bearer {
            request = request.bearer_auth(&token);
        }
        request.send()
    };
    for bearer in [false, true] {
        let url = format!("{}?access_token={token}", app.mcp("demo"));
        let (status, headers, body) =
            crate::helpers::rpc_message(send(url, bearer).await.unwrap()).await;
        assert_eq!(status, 401, "header too: {bearer}");
        assert_eq!(
            header(&headers, "www-authenticate"),
            invalid_token_challenge(&app, "demo")
        );
        assert_eq!(body["error"]["data"]["reason"], "invalid_credential");
        assert_eq!(
            body["error"]["message"],
            "invalid credential: credentials are not accepted in the query string"
        );
    }
    assert!(upstream.received().is_empty(), "nothing forwarded");
    let (status, _, _) = gateway(&app, "demo", &token, &call("echo")).await;
    assert_eq!(status, 200, "the same token in the header works");
}

#[tokio::test]
async fn a_disabled_clients_tokens_stop_working() {
    let Setup { app, secret, .. } = setup().await;
    let token = token_for(&app, &secret, "demo").await;
    let (status, _, _) = gateway(&app, "demo", &token, &call("echo")).await;
    assert_eq!(status, 200);
    app.store
        .set_client_disabled("svc", Some(gatehouse::now_ms()))
        .await
        .unwrap();
    app.reload().await;
    let (status, headers, _) = gateway(&app, "demo", &token, &call("echo")).await;
    assert_eq!(status, 401, "cached, yet refused");
    assert_eq!(
        header(&headers, "www-authenticate"),
        invalid_token_challenge(&app, "demo")
    );
    let (status, _, body) = post_form(
        &app,
        "/oauth/token",
        Some(("svc", &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_client")));
}

// ---------------------------------------------------------------------------------------
// Token requests beyond the grant

#[tokio::test]
async fn requests_beyond_the_grant_are_invalid_scope_or_invalid_target() {
    let Setup { app, secret, .. } = setup().await;
    let demo = resource(&app, "demo");
    let third = resource(&app, "third");
    let nosuch = resource(&app, "nosuch");
    let elsewhere = "https://elsewhere.example/demo/mcp";
    let demo_slash = format!("{demo}/");
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "tool the connection lacks",
            vec![
                ("resource", &demo),
                ("scope", "mcp:demo:tool:delete_records"),
            ],
            "invalid_scope",
        ),
        ("unknown scope", vec![("scope", "openid")], "invalid_scope"),
        (
            "unknown suffix",
            vec![("scope", "mcp:demo:write")],
            "invalid_scope",
        ),
        (
            "tool wildcard",
            vec![("scope", "mcp:demo:tool:*")],
            "invalid_scope",
        ),
        (
            "scope outside the resource",
            vec![("resource", &demo), ("scope", "mcp:other")],
            "invalid_scope",
        ),
        (
            "unconnected server scope",
            vec![("scope", "mcp:third")],
            "invalid_scope",
        ),
        (
            "offline_access only",
            vec![("scope", "offline_access")],
            "invalid_scope",
        ),
        (
            "no connection",
            vec![("resource", &third)],
            "invalid_target",
        ),
        (
            "unknown server",
            vec![("resource", &nosuch)],
            "invalid_target",
        ),
        (
            "foreign URL",
            vec![("resource", elsewhere)],
            "invalid_target",
        ),
        (
            "not exact",
            vec![("resource", &demo_slash)],
            "invalid_target",
        ),
        (
            "one bad among good",
            vec![("resource", &demo), ("resource", &third)],
            "invalid_target",
        ),
    ];
    for (label, extra, expected) in cases {
        let mut params = vec![("grant_type", "client_credentials")];
        params.extend(extra);
        let (status, headers, body) =
            post_form(&app, "/oauth/token", Some(("svc", &secret)), &params).await;
        assert_eq!(status, 400, "{label}: {body}");
        assert_eq!(body["error"], expected, "{label}: {body}");
        assert_eq!(header(&headers, "cache-control"), "no-store", "{label}");
        assert!(body.get("access_token").is_none(), "{label}");
    }

    insta::assert_json_snapshot!(
        "invalid_scope",
        refusal(
            &app,
            &secret,
            &[
                ("resource", &demo),
                ("scope", "mcp:demo:tool:delete_records")
            ]
        )
        .await
    );
    insta::assert_json_snapshot!(
        "invalid_target_no_connection",
        refusal(&app, &secret, &[("resource", &third)]).await
    );
    insta::assert_json_snapshot!(
        "invalid_target_unknown",
        refusal(&app, &secret, &[("resource", elsewhere)]).await
    );
}

/// The error body of a refused token request, with the (random-port) base URL named.
async fn refusal(app: &TestApp, secret: &str, extra: &[(&str, &str)]) -> Value {
    let mut params = vec![("grant_type", "client_credentials")];
    params.extend_from_slice(extra);
    let (_, _, body) = post_form(app, "/oauth/token", Some(("svc", secret)), &params).await;
    serde_json::from_str(&body.to_string().replace(&base(app), "{base}")).unwrap()
}

// ---------------------------------------------------------------------------------------
// Client authentication

#[tokio::test]
async fn failed_client_authentication_is_invalid_client() {
    let Setup { app, secret, .. } = setup().await;
    let post_secret = poster(&app).await;
    let grant = ("grant_type", "client_credentials");

    // Basic attempts: 401 with a Basic challenge (RFC 6749 §5.2), one answer for all.
    let mut bodies = Vec::new();
    for (label, id, presented) in [
        ("wrong secret", "svc", "gcs_wrong"),
        ("unknown client", "nobody", secret.as_str()),
        ("post client via Basic", "poster", post_secret.as_str()),
    ] {
        let (status, headers, body) =
            post_form(&app, "/oauth/token", Some((id, presented)), &[grant]).await;
        assert_eq!(status, 401, "{label}");
        assert_eq!(body["error"], "invalid_client", "{label}");
        assert!(
            header(&headers, "www-authenticate").starts_with("Basic "),
            "{label}: {headers:?}"
        );
        assert_eq!(header(&headers, "cache-control"), "no-store", "{label}");
        bodies.push(body);
    }
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "no oracle: {bodies:?}"
    );
    insta::assert_json_snapshot!("invalid_client", bodies[0]);

    // Body attempts: 401 without a Basic challenge.
    for (label, id, presented) in [
        ("wrong posted secret", "poster", "gcs_wrong"),
        ("basic client's secret posted", "svc", secret.as_str()),
        ("unknown client posted", "nobody", post_secret.as_str()),
    ] {
        let (status, headers, body) = post_form(
            &app,
            "/oauth/token",
            None,
            &[grant, ("client_id", id), ("client_secret", presented)],
        )
        .await;
        assert_eq!(status, 401, "{label}");
        assert_eq!(body["error"], "invalid_client", "{label}");
        assert!(headers.get("www-authenticate").is_none(), "{label}");
    }

    // A confidential client naming itself without any secret.
    let (status, _, body) =
        post_form(&app, "/oauth/token", None, &[grant, ("client_id", "svc")]).await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_client")));

    // Two methods at once is a malformed request, whichever would have worked.
    let (status, _, body) = post_form(
        &app,
        "/oauth/token",
        Some(("svc", &secret)),
        &[grant, ("client_secret", &secret)],
    )
    .await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_request")));

    // The right secrets still work, so the refusals above were about the method.
    issue(&app, &secret, &[]).await;
}

#[tokio::test]
async fn a_request_without_client_authentication_is_invalid_client() {
    let Setup { app, .. } = setup().await;
    // RFC 6749 §5.2: invalid_client covers "no client authentication included".
    let (status, _, body) = post_form(
        &app,
        "/oauth/token",
        None,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(body["error"], "invalid_client", "{body}");
    assert_eq!(status, 401);
}

#[tokio::test]
async fn clients_not_registered_for_client_credentials_are_unauthorized_client() {
    let Setup { app, .. } = setup().await;
    // A public client identifies itself with client_id alone (its registered method, so
    // client authentication as such succeeds) but may not use the grant (RFC 6749 §4.4).
    admin::create_client(&*app.store, "spa", "").await.unwrap();
    app.grant("spa", "demo", "*").await;
    assert_eq!(
        register(&app, "spa", "none", &["authorization_code"]).await,
        None
    );
    let (status, headers, body) = post_form(
        &app,
        "/oauth/token",
        None,
        &[("grant_type", "client_credentials"), ("client_id", "spa")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "unauthorized_client");
    assert!(body.get("access_token").is_none());
    assert_eq!(header(&headers, "cache-control"), "no-store");

    // A confidential client registered for authorization_code only: authenticated, and
    // still not allowed this grant.
    admin::create_client(&*app.store, "webapp", "")
        .await
        .unwrap();
    app.grant("webapp", "demo", "*").await;
    let secret = register(
        &app,
        "webapp",
        "client_secret_basic",
        &["authorization_code"],
    )
    .await
    .unwrap();
    let (status, _, body) = post_form(
        &app,
        "/oauth/token",
        Some(("webapp", &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("unauthorized_client"))
    );
}

// ---------------------------------------------------------------------------------------
// Malformed requests

#[tokio::test]
async fn malformed_token_requests_are_refused() {
    let Setup { app, secret, .. } = setup().await;
    let auth = basic("svc", &secret);
    let send = |content_type: &'static str, body: String| {
        app.http
            .post(app.url("/oauth/token"))
            .header("authorization", &auth)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let form = "application/x-www-form-urlencoded";

    let (status, _, body) = json_response(
        send(
            "application/json",
            json!({"grant_type": "client_credentials"}).to_string(),
        )
        .await
        .unwrap(),
    )
    .await;
    // RFC 6749 §5.2: a body in another format is an invalid_request, 400.
    assert_eq!((status, &body["error"]), (400, &json!("invalid_request")));

    let (status, _, body) = json_response(
        send(
            form,
            "grant_type=client_credentials&grant_type=client_credentials".into(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_request")));

    let padded = format!(
        "grant_type=client_credentials&pad={}",
        "x".repeat(16 * 1024)
    );
    let (status, _, body) = json_response(send(form, padded).await.unwrap()).await;
    assert_eq!((status, &body["error"]), (413, &json!("invalid_request")));

    // The same without a Content-Length: the limit applies to what is read.
    let chunks: Vec<Result<String, std::io::Error>> =
        (0..20).map(|_| Ok("x".repeat(1024))).collect();
    let streamed = app
        .http
        .post(app.url("/oauth/token"))
        .header("authorization", &auth)
        .header("content-type", form)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            std::iter::once(Ok("grant_type=client_credentials&pad=".to_owned())).chain(chunks),
        )))
        .send()
        .await
        .unwrap();
    let (status, _, body) = json_response(streamed).await;
    assert_eq!((status, &body["error"]), (413, &json!("invalid_request")));

    let (status, _, body) =
        json_response(send(form, "scope=mcp%3Ademo".into()).await.unwrap()).await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_request")));

    let (status, _, body) =
        json_response(send(form, "grant_type=password".into()).await.unwrap()).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("unsupported_grant_type"))
    );
    insta::assert_json_snapshot!("unsupported_grant_type", body);

    let response = app.http.get(app.url("/oauth/token")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(header(response.headers(), "allow"), "POST");

    // Parameters are case-sensitive and the media type may carry a charset.
    let (status, _, body) = json_response(
        send(
            "application/x-www-form-urlencoded; charset=UTF-8",
            "grant_type=client_credentials".into(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

// ---------------------------------------------------------------------------------------
// Revocation by someone else

#[tokio::test]
async fn a_client_cannot_revoke_another_clients_credentials() {
    let Setup { app, secret, .. } = setup().await;
    let post_secret = poster(&app).await;
    let token = token_for(&app, &secret, "demo").await;
    let svc_key = app.key("svc", None).await;
    for credential in [&token, &svc_key] {
        let (status, _, body) = post_form(
            &app,
            "/oauth/revoke",
            None,
            &[
                ("client_id", "poster"),
                ("client_secret", &post_secret),
                ("token", credential),
            ],
        )
        .await;
        assert_eq!(status, 200, "no probing: {body}");
        let (status, _, _) = gateway(&app, "demo", credential, &call("echo")).await;
        assert_eq!(status, 200, "still works");
    }
    let (status, _, body) = post_form(
        &app,
        "/oauth/introspect",
        Some(("svc", &secret)),
        &[("token", &token)],
    )
    .await;
    assert_eq!((status, &body["active"]), (200, &json!(true)));
}

// ---------------------------------------------------------------------------------------
// Error bodies

/// RFC 6749 §5.2: `error_description` is limited to %x20-21 / %x23-5B / %x5D-7E (no `"`,
/// no `\`, nothing outside printable ASCII), whatever the client sent.
#[tokio::test]
async fn error_descriptions_use_only_the_characters_rfc6749_allows() {
    let Setup { app, secret, .. } = setup().await;
    let grant = ("grant_type", "client_credentials");
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("unknown scope", vec![grant, ("scope", "openid")]),
        ("scope with a quote", vec![grant, ("scope", "mcp:\"x")]),
        (
            "foreign resource",
            vec![grant, ("resource", "https://elsewhere.example/\"é\\/mcp")],
        ),
        ("unsupported grant", vec![("grant_type", "pässword\"\\")]),
        (
            "repeated parameter",
            vec![grant, ("scope", "mcp:demo"), ("scope", "mcp:demo")],
        ),
        ("missing grant_type", vec![("scope", "mcp:demo")]),
    ];
    let mut offending = Vec::new();
    for (label, params) in cases {
        let (status, _, body) =
            post_form(&app, "/oauth/token", Some(("svc", &secret)), &params).await;
        assert_eq!(status, 400, "{label}: {body}");
        let description = body["error_description"].as_str().unwrap().to_owned();
        let allowed = |c: char| matches!(c as u32, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E);
        if !description.chars().all(allowed) {
            offending.push(format!("{label}: {description}"));
        }
    }
    assert!(
        offending.is_empty(),
        "descriptions with characters RFC 6749 §5.2 excludes:\n{}",
        offending.join("\n")
    );
}
