//! The life of credentials at the authorization server: revocation and introspection,
//! secret and signing-key rotation, and the audit trail of issuance. Helpers: `oauth.rs`.

use gatehouse::admin::{self};
use serde_json::json;
use std::time::Duration;

use crate::helpers::call;

use crate::oauth::*;

// ---------------------------------------------------------------------------------------
// Revocation and introspection

#[tokio::test]
async fn a_revoked_access_token_is_refused_on_the_next_request() {
    let Setup { app, secret, .. } = setup().await;
    let token = token_for(&app, &secret, "demo").await;
    let (status, _, _) = gateway(&app, "demo", &token, &call("echo")).await;
    assert_eq!(status, 200, "verified and cached");
    let (status, headers, body) = post_form(
        &app,
        "/oauth/revoke",
        Some(("svc", &secret)),
        &[("token", &token), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    let (status, headers, body) = gateway(&app, "demo", &token, &call("echo")).await;
    assert_eq!(status, 401);
    assert_eq!(
        header(&headers, "www-authenticate"),
        invalid_token_challenge(&app, "demo")
    );
    assert_eq!(body["error"]["data"]["reason"], "invalid_credential");
    // Revoking again, or with an unknown hint, is still 200 (RFC 7009 §2.1, §2.2).
    let (status, _, _) = post_form(
        &app,
        "/oauth/revoke",
        Some(("svc", &secret)),
        &[("token", &token), ("token_type_hint", "bogus")],
    )
    .await;
    assert_eq!(status, 200);
    // Other tokens of the same client are unaffected.
    let other = token_for(&app, &secret, "demo").await;
    let (status, _, _) = gateway(&app, "demo", &other, &call("echo")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn revoking_a_token_gatehouse_did_not_issue_is_answered_like_an_invalid_one() {
    // RFC 7009 §2.2: no `unsupported_token_type`, no other error, whatever the token and hint.
    let Setup { app, secret, .. } = setup().await;
    let foreign_jwt =
        "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4IiwiaXNzIjoiaHR0cHM6Ly9lbHNld2hlcmUifQ.c2ln";
    for (token, hint) in [
        (foreign_jwt, "access_token"),
        ("ghr_unknown", "refresh_token"),
        ("gth_nosuchid_secret", "api_key"),
        ("opaque-token", "bogus"),
        ("opaque-token", "refresh_token"),
    ] {
        let (status, _, body) = post_form(
            &app,
            "/oauth/revoke",
            Some(("svc", &secret)),
            &[("token", token), ("token_type_hint", hint)],
        )
        .await;
        assert_eq!(
            (status, body.get("error")),
            (200, None),
            "{token} as {hint}"
        );
    }
}

#[tokio::test]
async fn an_api_key_can_be_revoked_through_the_revocation_endpoint() {
    let Setup { app, secret, .. } = setup().await;
    let key = app.key("svc", None).await;
    let (status, _, _) = gateway(&app, "demo", &key, &call("echo")).await;
    assert_eq!(status, 200);
    let (status, _, body) = post_form(
        &app,
        "/oauth/introspect",
        Some(("svc", &secret)),
        &[("token", &key)],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (&body["active"], &body["token_type"], &body["client_id"]),
        (&json!(true), &json!("api_key"), &json!("svc"))
    );
    let (status, _, _) = post_form(
        &app,
        "/oauth/revoke",
        Some(("svc", &secret)),
        &[("token", &key), ("token_type_hint", "api_key")],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, body) = gateway(&app, "demo", &key, &call("echo")).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["data"]["reason"], "invalid_credential");
    assert!(
        app.store
            .get_api_key(&key[4..16])
            .await
            .unwrap()
            .revoked_at
            .is_some(),
        "revoked in the store, not only in memory"
    );
}

#[tokio::test]
async fn introspection_describes_live_tokens_and_only_to_confidential_clients() {
    let Setup { app, secret, .. } = setup().await;
    let token = token_for(&app, &secret, "demo").await;
    let claims = jwt_part(&token, 1);
    let (status, headers, body) = post_form(
        &app,
        "/oauth/introspect",
        Some(("svc", &secret)),
        &[("token", &token)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "mcp:demo");
    assert_eq!(body["client_id"], "svc");
    assert_eq!(body["sub"], "svc");
    assert_eq!(body["iss"].as_str(), Some(base(&app).as_str()));
    assert_eq!(body["aud"], json!([resource(&app, "demo")]));
    assert_eq!(body["exp"], claims["exp"]);
    assert_eq!(body["jti"], claims["jti"]);

    let (status, _, body) = post_form(
        &app,
        "/oauth/introspect",
        Some(("svc", &secret)),
        &[("token", "eyJnot.a.token")],
    )
    .await;
    assert_eq!((status, body), (200, json!({ "active": false })));

    // Public clients and anonymous callers may not introspect (RFC 7662 §2.1).
    admin::create_client(&*app.store, "spa", "").await.unwrap();
    register(&app, "spa", "none", &["authorization_code"]).await;
    let (status, _, body) = post_form(
        &app,
        "/oauth/introspect",
        None,
        &[("client_id", "spa"), ("token", &token)],
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("invalid_client")),
        "public"
    );
    let (status, _, body) = post_form(
        &app,
        "/oauth/introspect",
        Some(("svc", "gcs_wrong")),
        &[("token", &token)],
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("invalid_client")),
        "wrong secret"
    );

    let (status, _, _) = post_form(
        &app,
        "/oauth/revoke",
        Some(("svc", &secret)),
        &[("token", &token)],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, body) = post_form(
        &app,
        "/oauth/introspect",
        Some(("svc", &secret)),
        &[("token", &token)],
    )
    .await;
    assert_eq!((status, body), (200, json!({ "active": false })));
}

#[tokio::test]
async fn introspection_without_client_authentication_is_invalid_client() {
    let Setup { app, secret, .. } = setup().await;
    let token = token_for(&app, &secret, "demo").await;
    let (status, _, body) = post_form(&app, "/oauth/introspect", None, &[("token", &token)]).await;
    assert_eq!(body["error"], "invalid_client", "{body}");
    assert_eq!(status, 401);
    assert!(body.get("active").is_none());
}

// ---------------------------------------------------------------------------------------
// Rotation

#[tokio::test]
async fn a_rotated_secret_overlaps_only_as_long_as_asked() {
    let Setup { app, secret, .. } = setup().await;
    let try_secret = |presented: String| {
        let app = &app;
        async move {
            let (status, _, body) = post_form(
                app,
                "/oauth/token",
                Some(("svc", &presented)),
                &[("grant_type", "client_credentials")],
            )
            .await;
            (status, body["error"].as_str().unwrap_or("").to_owned())
        }
    };
    let (second, _, _) = admin::oauth::rotate_client_secret(
        &app.store,
        &app.keyring,
        "svc",
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    app.reload().await;
    assert_ne!(second, secret);
    assert_eq!(
        try_secret(secret.clone()).await,
        (200, String::new()),
        "old, in overlap"
    );
    assert_eq!(
        try_secret(second.clone()).await,
        (200, String::new()),
        "new"
    );

    let (third, _, _) =
        admin::oauth::rotate_client_secret(&app.store, &app.keyring, "svc", Duration::ZERO)
            .await
            .unwrap();
    app.reload().await;
    let refused = (401, "invalid_client".to_owned());
    assert_eq!(try_secret(secret).await, refused, "first");
    assert_eq!(try_secret(second).await, refused, "second");
    assert_eq!(try_secret(third).await, (200, String::new()), "third");
}

#[tokio::test]
async fn signing_key_rotation_keeps_earlier_tokens_valid() {
    let Setup { app, secret, .. } = setup().await;
    let used = token_for(&app, &secret, "demo").await;
    let unused = token_for(&app, &secret, "demo").await;
    let (status, _, _) = gateway(&app, "demo", &used, &call("echo")).await;
    assert_eq!(status, 200);
    let old_kid = jwt_part(&used, 0)["kid"].as_str().unwrap().to_owned();

    // Scheduled: published now, signs later. Tokens keep the old key meanwhile.
    let (scheduled, _) = admin::oauth::rotate_signing_key(
        &app.store,
        &app.keyring,
        "EdDSA",
        Some(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    app.reload().await;
    assert!(kids(&jwks(&app).await).contains(&scheduled.kid));
    let meanwhile = token_for(&app, &secret, "demo").await;
    assert_eq!(jwt_part(&meanwhile, 0)["kid"], old_kid);

    // At once, and to another algorithm.
    let (now_key, _) = admin::oauth::rotate_signing_key(&app.store, &app.keyring, "ES256", None)
        .await
        .unwrap();
    app.reload().await;
    let fresh = token_for(&app, &secret, "demo").await;
    let head = jwt_part(&fresh, 0);
    assert_eq!(
        (&head["kid"], &head["alg"]),
        (&json!(now_key.kid), &json!("ES256"))
    );
    assert_ne!(now_key.kid, old_kid);
    let published = kids(&jwks(&app).await);
    assert!(
        published.contains(&old_kid) && published.contains(&now_key.kid),
        "{published:?}"
    );
    for (label, token) in [
        ("fresh", &fresh),
        ("cached old", &used),
        ("unused old", &unused),
    ] {
        let (status, _, body) = gateway(&app, "demo", token, &call("echo")).await;
        assert_eq!(status, 200, "{label}: {body}");
    }
}

// ---------------------------------------------------------------------------------------
// Audit

#[tokio::test]
async fn issuance_and_refusals_are_audited() {
    let Setup { app, secret, .. } = setup().await;
    let body = issue(&app, &secret, &[("resource", &resource(&app, "demo"))]).await;
    let token = body["access_token"].as_str().unwrap();
    let jti = jwt_part(token, 1)["jti"].as_str().unwrap().to_owned();
    let (status, _, _) = post_form(
        &app,
        "/oauth/token",
        Some(("svc", &secret)),
        &[("grant_type", "client_credentials"), ("scope", "mcp:third")],
    )
    .await;
    assert_eq!(status, 400);
    let (status, _, _) = post_form(
        &app,
        "/oauth/token",
        Some(("svc", "gcs_wrong")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 401);

    // The token endpoint records its events without waiting for them: poll, bounded.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows: Vec<_> = app
            .audit()
            .await
            .into_iter()
            .filter(|r| {
                r.event
                    .rpc_method
                    .as_deref()
                    .is_some_and(|m| m.starts_with("oauth/"))
            })
            .collect();
        if rows.len() >= 3 {
            break rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "audit events not written: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let summary: Vec<_> = rows
        .iter()
        .map(|r| {
            let e = &r.event;
            (
                e.rpc_method.clone().unwrap(),
                e.client.clone(),
                e.decision.as_str(),
                e.reason.clone(),
                e.status,
            )
        })
        .collect();
    let method = "oauth/token:client_credentials".to_owned();
    assert_eq!(
        summary,
        vec![
            (method.clone(), Some("svc".into()), "allow", None, 200),
            (
                method,
                Some("svc".into()),
                "deny",
                Some("invalid_scope".into()),
                400
            ),
            // Authentication failed, so neither the client nor the grant is known.
            (
                "oauth/token".into(),
                None,
                "deny",
                Some("invalid_client".into()),
                401
            ),
        ]
    );
    assert_eq!(rows[0].event.credential_id.as_deref(), Some(jti.as_str()));
    assert_eq!(rows[0].event.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(rows[0].event.server, None);

    // The token's use at the gateway names the same credential.
    let (status, _, _) = gateway(&app, "demo", token, &call("echo")).await;
    assert_eq!(status, 200);
    let all = app.audit().await;
    let used = all.last().unwrap();
    assert_eq!(
        (
            used.event.client.as_deref(),
            used.event.credential_id.as_deref(),
            used.event.server.as_deref(),
            used.event.tool.as_deref()
        ),
        (Some("svc"), Some(jti.as_str()), Some("demo"), Some("echo"))
    );
    let text = serde_json::to_string(&all).unwrap();
    assert!(
        !text.contains(&secret) && !text.contains(token),
        "no secrets audited"
    );
    assert!(
        gatehouse::audit::chain::verify(&*app.store, &app.keyring)
            .await
            .unwrap()
            .is_intact()
    );
}
