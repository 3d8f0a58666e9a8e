//! The authorization-code flow (OAuth 2.1 §4.1 with PKCE, RFC 8707 resources, RFC 9207 `iss`)
//! as a browser and a public client see it: sign-in, consent, redeeming the code, the token
//! acting for the user at the gateway. Refusals: `oauth_code_attacks.rs`; dynamic client
//! registration: `oauth_registration.rs`; the browser and helpers: `oauth_browser.rs`.

use serde_json::json;

use crate::{
    helpers::{TestApp, call, list_tools, tool_names},
    oauth::{base, gateway, header, jwt_part, resource},
};

use crate::oauth_browser::*;

#[tokio::test]
async fn a_user_signs_in_consents_and_the_client_acts_for_them_at_the_gateway() {
    let Flow {
        app,
        upstream,
        alice,
        ..
    } = flow_setup().await;
    let pkce = pkce();
    let request = Authorize::new(&app, "spa", &pkce);
    let state = request.state();
    let mut browser = Browser::new(&app);

    // Not signed in: to the login page, the validated request sealed along.
    let first = browser.get(&request.url(&app)).await;
    assert_eq!(first.status, 303, "{}", first.body);
    let login_url = first.location();
    assert!(login_url.starts_with("/oauth/login?req="), "{login_url}");
    let login = browser.get(&login_url).await;
    assert_eq!(login.status, 200, "{}", login.body);
    login.assert_hardened();
    assert!(
        login.body.contains("Sign in to continue to spa"),
        "{}",
        login.body
    );
    let nonce = login.sets_cookie("gatehouse_login").unwrap();
    assert!(
        nonce.contains("HttpOnly") && nonce.contains("SameSite=Strict"),
        "{nonce}"
    );

    let signed_in = browser
        .post(
            "/oauth/login",
            &[
                ("req", &login.hidden("req")),
                ("csrf", &login.hidden("csrf")),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let session = signed_in.sets_cookie("gatehouse_session").unwrap();
    for attribute in ["Path=/", "HttpOnly", "SameSite=Lax"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(
        !session.contains("Secure"),
        "plain-http loopback: {session}"
    );
    let back = signed_in.location();
    assert!(back.starts_with("/oauth/authorize?req="), "{back}");

    let consent = browser.get(&back).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    consent.assert_hardened();
    let csp = header(&consent.headers, "content-security-policy");
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9;"),
        "{csp}"
    );
    for shown in [
        "Allow spa to use",
        "(client <code>spa</code>)",
        "<code>mcp:demo</code>",
        "you go back to <b>127.0.0.1</b>",
        "as alice",
        &resource(&app, "demo"),
    ] {
        assert!(consent.body.contains(shown), "{shown}: {}", consent.body);
    }

    let answer = decide(&mut browser, &consent, "approve").await;
    let params = callback(&app, &answer, Some(&state));
    assert_eq!(
        params.keys().collect::<Vec<_>>(),
        ["code", "iss", "state"],
        "{params:?}"
    );
    let code = &params["code"];
    assert!(code.len() >= 43, "{code}");

    let (status, headers, body) = redeem(&app, As::Public("spa"), code, &pkce.verifier).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(header(&headers, "pragma"), "no-cache");
    assert_eq!(
        (&body["token_type"], &body["expires_in"], &body["scope"]),
        (&json!("Bearer"), &json!(600), &json!("mcp:demo"))
    );
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("ghr_")),
        "{body}"
    );
    let token = body["access_token"].as_str().unwrap();
    let claims = jwt_part(token, 1);
    assert_eq!(claims["sub"].as_str(), Some(alice.as_str()));
    assert_eq!(claims["client_id"], "spa");
    assert_eq!(claims["aud"], resource(&app, "demo"));
    assert_eq!(claims["scope"], "mcp:demo");
    assert_eq!(claims["iss"].as_str(), Some(base(&app).as_str()));
    let jti = claims["jti"].as_str().unwrap().to_owned();

    // At the gateway the token carries alice's group grant, not a connection of spa's own.
    let (status, _, message) = gateway(&app, "demo", token, &call("echo")).await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(message["result"]["content"][0]["text"], "called echo");
    assert!(
        upstream
            .received()
            .last()
            .unwrap()
            .headers
            .get("authorization")
            .is_none()
    );
    let (status, _, message) = gateway(&app, "demo", token, &list_tools()).await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(tool_names(&message), ["echo"]);
    let (status, _, message) = gateway(&app, "demo", token, &call("add")).await;
    assert_eq!(status, 403, "{message}");
    assert_eq!(message["error"]["data"]["reason"], "tool_not_granted");
    let (status, _, _) = gateway(&app, "other", token, &call("echo")).await;
    assert_eq!(status, 401, "another audience");

    let rows = audit_until(&app, |rows| {
        rows.iter()
            .any(|r| r.event.rpc_method.as_deref() == Some("oauth/token:authorization_code"))
            && rows
                .iter()
                .filter(|r| r.event.tool.as_deref() == Some("add"))
                .count()
                == 1
    })
    .await;
    let issued = rows
        .iter()
        .find(|r| r.event.rpc_method.as_deref() == Some("oauth/token:authorization_code"))
        .unwrap();
    assert_eq!(
        (
            issued.event.client.as_deref(),
            issued.event.user.as_deref(),
            issued.event.credential_id.as_deref(),
            issued.event.decision.as_str(),
            issued.event.status,
        ),
        (
            Some("spa"),
            Some(alice.as_str()),
            Some(jti.as_str()),
            "allow",
            200
        )
    );
    let calls: Vec<_> = rows
        .iter()
        .filter(|r| {
            r.event.rpc_method.as_deref() == Some("tools/call")
                && r.event.server.as_deref() == Some("demo")
        })
        .map(|r| {
            (
                r.event.tool.clone().unwrap(),
                r.event.client.clone(),
                r.event.user.clone(),
                r.event.credential_id.clone(),
                r.event.decision.as_str(),
                r.event.status,
            )
        })
        .collect();
    let (who, user, cred) = (Some("spa".into()), Some(alice.clone()), Some(jti.clone()));
    assert_eq!(
        calls,
        [
            (
                "echo".into(),
                who.clone(),
                user.clone(),
                cred.clone(),
                "allow",
                200
            ),
            ("add".into(), who, user, cred, "deny", 403),
        ]
    );
    let text = serde_json::to_string(&rows).unwrap();
    assert!(
        !text.contains(token) && !text.contains(code.as_str()),
        "no secrets audited"
    );
}

#[tokio::test]
async fn a_signed_in_browser_goes_straight_to_consent_each_time() {
    let Flow { app, .. } = flow_setup().await;
    let mut browser = Browser::new(&app);
    let pkce = pkce();
    let request = Authorize::new(&app, "spa", &pkce);
    let first = obtain_code(&app, &mut browser, &request).await;

    // Consent is asked again (no silent approval), but sign-in is not.
    let again = Authorize::new(&app, "spa", &pkce);
    let consent = browser.get(&again.url(&app)).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(
        consent.body.contains("Allow spa to use"),
        "{}",
        consent.body
    );
    let answer = decide(&mut browser, &consent, "approve").await;
    let second = callback(&app, &answer, Some(&again.state()))["code"].clone();
    assert_ne!(first, second);
    for code in [first, second] {
        let tokens = Tokens::from(redeem(&app, As::Public("spa"), &code, &pkce.verifier).await);
        assert_eq!(echo_status(&app, &tokens.access).await, 200);
    }
}

#[tokio::test]
async fn a_confidential_client_redeems_with_its_secret_and_a_code_only_client_gets_no_refresh_token()
 {
    let Flow {
        app, webapp_secret, ..
    } = flow_setup().await;
    let mut browser = Browser::new(&app);
    let pkce = pkce();
    let code = obtain_code(&app, &mut browser, &Authorize::new(&app, "webapp", &pkce)).await;
    // Its secret is not optional: client_id alone is invalid_client.
    let (status, _, body) = redeem(&app, As::Public("webapp"), &code, &pkce.verifier).await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_client")));
    let tokens = webapp_tokens(&app, &mut browser, &pkce, &webapp_secret).await;
    assert_eq!(jwt_part(&tokens.access, 1)["client_id"], "webapp");
    assert!(tokens.refresh.starts_with("ghr_"));
    assert_eq!(echo_status(&app, &tokens.access).await, 200);

    register_code_client(&app, "coder", "none", &["authorization_code"]).await;
    let code = obtain_code(&app, &mut browser, &Authorize::new(&app, "coder", &pkce)).await;
    let tokens = Tokens::from(redeem(&app, As::Public("coder"), &code, &pkce.verifier).await);
    assert!(
        tokens.body.get("refresh_token").is_none(),
        "{}",
        tokens.body
    );
    assert_eq!(echo_status(&app, &tokens.access).await, 200);
}

// ---------------------------------------------------------------------------------------
// Dynamic client registration (RFC 7591)

/// Alice's tokens through `spa` and through `webapp`, after `rule` (a policy or guardrail of
/// `kind`) was attached to the agent `spa` alone: `(app, spa's access token, webapp's)`.
async fn delegated_under_rule_of_spa(
    rule: &str,
    kind: &str,
    spec: serde_json::Value,
) -> (TestApp, String, String) {
    let Flow {
        app, webapp_secret, ..
    } = flow_setup().await;
    app.policy(rule, kind, spec, (Some("spa"), None, None))
        .await;
    let mut browser = Browser::new(&app);
    let pkce = pkce();
    let request = Authorize::new(&app, "spa", &pkce);
    let spa = spa_tokens(&app, &mut browser, &request, &pkce).await;
    let webapp = webapp_tokens(&app, &mut browser, &pkce, &webapp_secret).await;
    (app, spa.access, webapp.access)
}

#[tokio::test]
async fn the_agents_own_policies_apply_to_the_tokens_users_delegate_to_it() {
    // A rule for the agent `spa` alone (no server): no call from loopback.
    let loopback = json!({ "deny": ["127.0.0.0/8", "::1/128"] });
    let (app, spa, webapp) =
        delegated_under_rule_of_spa("spa-not-from-here", "ip", loopback.clone()).await;
    let (status, _, body) = gateway(&app, "demo", &spa, &call("echo")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["data"]["reason"], "policy_denied");
    assert_eq!(body["error"]["data"]["policy"]["rule"], "spa-not-from-here");

    // The same user through another agent: the rule names `spa`, not her.
    assert_eq!(echo_status(&app, &webapp).await, 200);

    // A client → server rule applies as well.
    app.policy(
        "webapp-on-demo",
        "ip",
        loopback,
        (Some("webapp"), Some("demo"), None),
    )
    .await;
    assert_eq!(echo_status(&app, &webapp).await, 403);
}

#[tokio::test]
async fn the_agents_own_guardrails_apply_to_the_tokens_users_delegate_to_it() {
    let no_cards =
        json!({ "direction": "request", "action": "block", "detectors": ["credit_card"] });
    let (app, spa, webapp) =
        delegated_under_rule_of_spa("spa-no-cards", "guardrail", no_cards).await;
    let charge = json!({ "jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": { "name": "echo", "arguments": { "text": "charge 4111 1111 1111 1111" } } });
    let (_, _, body) = gateway(&app, "demo", &spa, &charge).await;
    assert_eq!(
        body["error"]["data"]["reason"], "guardrail_blocked",
        "{body}"
    );
    assert_eq!(body["error"]["data"]["guardrail"]["rule"], "spa-no-cards");

    let (status, _, body) = gateway(&app, "demo", &webapp, &charge).await;
    assert_eq!(status, 200);
    assert!(body.get("error").is_none(), "{body}");
}
