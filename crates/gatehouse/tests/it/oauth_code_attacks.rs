//! Refusals of the authorization-code flow: failed and forged sign-ins and consents, PKCE,
//! untrusted redirect URIs and clients, resources and scopes, replayed, stolen and expired
//! codes. Refresh tokens and disabled users: `oauth_refresh.rs`.

use serde_json::json;
use std::time::{Duration, Instant};

use crate::{
    helpers::call,
    oauth::{gateway, post_form, resource},
    oauth_browser::{
        As, Authorize, Browser, Flow, PASSWORD, Page, REDIRECT, Tokens, callback, consent_page,
        decide, echo_status, flow_setup, flow_setup_with, invalid_grant, obtain_code, pkce, redeem,
        redirect_error, refresh, refusal, spa_tokens, token_request,
    },
};

// ---------------------------------------------------------------------------------------
// Sign-in and consent refusals

#[tokio::test]
async fn a_wrong_password_shows_the_form_again_and_sets_no_session() {
    let Flow { app, .. } = flow_setup().await;
    let pkce = pkce();
    let request = Authorize::new(&app, "spa", &pkce);
    let mut browser = Browser::new(&app);
    let first = browser.get(&request.url(&app)).await;
    let mut login = browser.get(&first.location()).await;
    assert_eq!(login.status, 200);
    let req = login.hidden("req");

    for (username, password) in [("alice", "wrong-password-1234"), ("mallory", PASSWORD)] {
        let page = browser
            .post(
                "/oauth/login",
                &[
                    ("req", &login.hidden("req")),
                    ("csrf", &login.hidden("csrf")),
                    ("username", username),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(page.status, 401, "{username}: {}", page.body);
        page.assert_hardened();
        assert!(
            page.body.contains("Unknown username or wrong password."),
            "{}",
            page.body
        );
        assert!(page.location().is_empty());
        assert_eq!(page.sets_cookie("gatehouse_session"), None, "{username}");
        // The form again, with a fresh nonce (and a csrf field that matches it: the next
        // attempt posts this form).
        assert!(page.sets_cookie("gatehouse_login").is_some());
        assert_eq!(page.hidden("req"), req);
        login = page;
    }
    assert!(!browser.cookies.contains_key("gatehouse_session"));
    let again = browser.get(&request.url(&app)).await;
    assert_eq!(again.status, 303, "still not signed in");
    assert!(again.location().starts_with("/oauth/login?req="));
}

#[tokio::test]
async fn login_posts_without_the_nonce_cookie_or_with_a_bad_csrf_are_forbidden() {
    let Flow { app, .. } = flow_setup().await;
    let pkce = pkce();
    let request = Authorize::new(&app, "spa", &pkce);
    let mut browser = Browser::new(&app);
    let first = browser.get(&request.url(&app)).await;
    let login = browser.get(&first.location()).await;
    assert_eq!(login.status, 200);
    let (req, csrf) = (login.hidden("req"), login.hidden("csrf"));
    let credentials = |req: &str, csrf: &str| {
        [
            ("req", req.to_owned()),
            ("csrf", csrf.to_owned()),
            ("username", "alice".to_owned()),
            ("password", PASSWORD.to_owned()),
        ]
    };
    async fn post(browser: &mut Browser, form: [(&str, String); 4]) -> Page {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        browser.post("/oauth/login", &form).await
    }

    // Another browser (say, a login-CSRF attacker's page) has the form but not the cookie.
    let mut stranger = Browser::new(&app);
    let page = post(&mut stranger, credentials(&req, &csrf)).await;
    assert_eq!(page.status, 403, "no nonce cookie: {}", page.body);
    assert_eq!(page.sets_cookie("gatehouse_session"), None);

    // Its own nonce does not match this csrf either.
    let other_login = stranger.get(&first.location()).await;
    assert_eq!(other_login.status, 200);
    let page = post(&mut stranger, credentials(&req, &csrf)).await;
    assert_eq!(page.status, 403, "another nonce: {}", page.body);

    let page = post(&mut browser, credentials(&req, "bm90LXRoZS1jc3Jm")).await;
    assert_eq!(page.status, 403, "bad csrf: {}", page.body);
    let page = post(&mut browser, credentials(&req, "")).await;
    assert_eq!(page.status, 403, "no csrf: {}", page.body);
    assert_eq!(page.sets_cookie("gatehouse_session"), None);
    page.assert_hardened();

    // The real form still works: nothing was consumed by the refusals.
    let page = post(&mut browser, credentials(&req, &csrf)).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(page.sets_cookie("gatehouse_session").is_some());
}

#[tokio::test]
async fn consent_with_a_wrong_csrf_is_forbidden_and_denial_goes_back_as_access_denied() {
    let Flow { app, .. } = flow_setup().await;
    let pkce = pkce();
    let mut browser = Browser::new(&app);
    let request = Authorize::new(&app, "spa", &pkce);
    let consent = consent_page(&mut browser, &request.url(&app), "alice", PASSWORD).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let other_request = Authorize::new(&app, "spa", &pkce).set("state", "other-state");
    let other = browser.get(&other_request.url(&app)).await;
    assert_eq!(other.status, 200, "{}", other.body);
    let (req, csrf) = (consent.hidden("req"), consent.hidden("csrf"));
    let (other_req, other_csrf) = (other.hidden("req"), other.hidden("csrf"));

    for (label, req, csrf) in [
        (
            "made-up csrf",
            req.as_str(),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ),
        ("another request's csrf", req.as_str(), other_csrf.as_str()),
        (
            "another request under this csrf",
            other_req.as_str(),
            csrf.as_str(),
        ),
    ] {
        let page = browser
            .post(
                "/oauth/authorize",
                &[("req", req), ("csrf", csrf), ("decision", "approve")],
            )
            .await;
        assert_eq!(page.status, 403, "{label}: {}", page.body);
        assert!(page.location().is_empty(), "{label}");
        page.assert_hardened();
    }

    // Without the session cookie, the csrf is worth nothing: back to sign-in.
    let mut stranger = Browser::new(&app);
    let page = stranger
        .post(
            "/oauth/authorize",
            &[("req", &req), ("csrf", &csrf), ("decision", "approve")],
        )
        .await;
    assert_eq!(page.status, 303);
    assert!(
        page.location().starts_with("/oauth/login?req="),
        "{}",
        page.location()
    );

    let page = decide(&mut browser, &consent, "deny").await;
    assert_eq!(
        redirect_error(&app, &page, &request.state()),
        "access_denied"
    );
    // Anything but an explicit approve is a denial.
    let page = decide(&mut browser, &other, "maybe").await;
    assert_eq!(redirect_error(&app, &page, "other-state"), "access_denied");
}

// ---------------------------------------------------------------------------------------
// The authorization request

#[tokio::test]
async fn pkce_is_required_at_the_authorization_endpoint_and_checked_at_the_token_endpoint() {
    let Flow { app, .. } = flow_setup().await;
    let pkce = pkce();
    let mut browser = Browser::new(&app);
    let good = Authorize::new(&app, "spa", &pkce);
    let state = good.state();
    for (label, request) in [
        ("no challenge", good.clone().without("code_challenge")),
        (
            "no challenge, no method",
            good.clone()
                .without("code_challenge")
                .without("code_challenge_method"),
        ),
        ("plain", good.clone().set("code_challenge_method", "plain")),
        (
            "no method (RFC 7636 defaults to plain)",
            good.clone().without("code_challenge_method"),
        ),
        ("short challenge", good.clone().set("code_challenge", "abc")),
    ] {
        let page = browser.get(&request.url(&app)).await;
        assert_eq!(
            redirect_error(&app, &page, &state),
            "invalid_request",
            "{label}"
        );
    }

    let code = obtain_code(&app, &mut browser, &good).await;
    let answer = token_request(
        &app,
        As::Public("spa"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(
        refusal(&answer),
        invalid_grant(),
        "no verifier: {}",
        answer.2
    );

    let code = obtain_code(&app, &mut browser, &good).await;
    let answer = redeem(
        &app,
        As::Public("spa"),
        &code,
        &crate::oauth_browser::pkce().verifier,
    )
    .await;
    assert_eq!(
        refusal(&answer),
        invalid_grant(),
        "wrong verifier: {}",
        answer.2
    );

    let code = obtain_code(&app, &mut browser, &good).await;
    let answer = redeem(&app, As::Public("spa"), &code, &pkce.challenge).await;
    assert_eq!(
        refusal(&answer),
        invalid_grant(),
        "the challenge as a plain verifier: {}",
        answer.2
    );

    let code = obtain_code(&app, &mut browser, &good).await;
    Tokens::from(redeem(&app, As::Public("spa"), &code, &pkce.verifier).await);
}

#[tokio::test]
async fn untrusted_redirect_uris_and_clients_get_a_page_never_a_redirect() {
    let Flow { app, .. } = flow_setup().await;
    let pkce = pkce();
    let mut browser = Browser::new(&app);
    let good = Authorize::new(&app, "spa", &pkce);
    for (label, request) in [
        (
            "another host",
            good.clone().set("redirect_uri", "https://evil.example/cb"),
        ),
        (
            "another port (not a native client)",
            good.clone().set("redirect_uri", "http://127.0.0.1:10/cb"),
        ),
        (
            "a longer path",
            good.clone().set("redirect_uri", "http://127.0.0.1:9/cb/x"),
        ),
        (
            "a query added",
            good.clone()
                .set("redirect_uri", "http://127.0.0.1:9/cb?x=1"),
        ),
        (
            "another case",
            good.clone().set("redirect_uri", "http://127.0.0.1:9/CB"),
        ),
        (
            "not registered, and an implicit response type",
            good.clone()
                .set("redirect_uri", "https://evil.example/cb")
                .set("response_type", "token"),
        ),
        ("unknown client", good.clone().set("client_id", "nosuch")),
        (
            "unknown client with its own redirect URI",
            good.clone()
                .set("client_id", "nosuch")
                .set("redirect_uri", "https://evil.example/cb"),
        ),
        ("no client_id", good.clone().without("client_id")),
    ] {
        let page = browser.get(&request.url(&app)).await;
        assert_eq!(page.status, 400, "{label}: {}", page.body);
        assert!(page.headers.get("location").is_none(), "{label}");
        page.assert_hardened();
        assert!(
            page.body.contains("This sign-in request cannot continue"),
            "{label}: {}",
            page.body
        );
    }
    let page = browser
        .get(&good.clone().set("client_id", "nosuch").url(&app))
        .await;
    assert!(page.body.contains("unknown client"), "{}", page.body);

    // Once the client and redirect URI are trusted, errors go back to the client.
    let state = good.state();
    let page = browser
        .get(&good.clone().set("response_type", "token").url(&app))
        .await;
    assert_eq!(
        redirect_error(&app, &page, &state),
        "unsupported_response_type"
    );
    // Without a state, none comes back (but iss does).
    let page = browser
        .get(
            &good
                .clone()
                .set("response_type", "token")
                .without("state")
                .url(&app),
        )
        .await;
    let params = callback(&app, &page, None);
    assert_eq!(params["error"], "unsupported_response_type");
}

#[tokio::test]
async fn a_missing_response_type_is_invalid_request() {
    let Flow { app, .. } = flow_setup().await;
    let pkce = pkce();
    let request = Authorize::new(&app, "spa", &pkce);
    let page = Browser::new(&app)
        .get(&request.clone().without("response_type").url(&app))
        .await;
    // RFC 6749 §4.1.2.1: "invalid_request: The request is missing a required parameter";
    // unsupported_response_type is for a response type the server does not support.
    assert_eq!(
        redirect_error(&app, &page, &request.state()),
        "invalid_request"
    );
}

#[tokio::test]
async fn resource_and_scope_must_name_a_server_the_user_may_use() {
    let Flow { app, .. } = flow_setup().await;
    let pkce = pkce();
    let mut browser = Browser::new(&app);
    let good = Authorize::new(&app, "spa", &pkce);
    let state = good.state();
    let base = crate::oauth::base(&app);
    for (label, request, error) in [
        (
            "no resource",
            good.clone().without("resource"),
            "invalid_request",
        ),
        (
            "unknown server",
            good.clone().set("resource", &format!("{base}/nosuch/mcp")),
            "invalid_target",
        ),
        (
            "another origin",
            good.clone()
                .set("resource", "https://evil.example/demo/mcp"),
            "invalid_target",
        ),
        (
            "not an MCP URL",
            good.clone().set("resource", &base),
            "invalid_target",
        ),
        (
            "scope of another server",
            good.clone().set("scope", "mcp:other"),
            "invalid_scope",
        ),
        (
            "scope of this and another server",
            good.clone().set("scope", "mcp:demo mcp:other:read"),
            "invalid_scope",
        ),
        (
            "unknown scope",
            good.clone().set("scope", "openid"),
            "invalid_scope",
        ),
    ] {
        let page = browser.get(&request.url(&app)).await;
        assert_eq!(redirect_error(&app, &page, &state), error, "{label}");
    }
    assert!(
        browser.cookies.is_empty(),
        "refused before any sign-in: {:?}",
        browser.cookies
    );

    // What only the signed-in user decides: alice may not call `add`, nor use `other`.
    let page = consent_page(
        &mut browser,
        &good.clone().set("scope", "mcp:demo:tool:add").url(&app),
        "alice",
        PASSWORD,
    )
    .await;
    assert_eq!(redirect_error(&app, &page, &state), "invalid_scope");
    let page = browser
        .get(
            &good
                .clone()
                .set("resource", &resource(&app, "other"))
                .url(&app),
        )
        .await;
    assert_eq!(redirect_error(&app, &page, &state), "access_denied");

    // A tool scope she holds is shown and issued as asked.
    let narrow = good.clone().set("scope", "mcp:demo:tool:echo");
    let consent = browser.get(&narrow.url(&app)).await;
    assert!(
        consent.body.contains("<code>mcp:demo:tool:echo</code>"),
        "{}",
        consent.body
    );
    let answer = decide(&mut browser, &consent, "approve").await;
    let code = callback(&app, &answer, Some(&state))["code"].clone();
    let tokens = Tokens::from(redeem(&app, As::Public("spa"), &code, &pkce.verifier).await);
    assert_eq!(tokens.body["scope"], "mcp:demo:tool:echo");
    assert_eq!(echo_status(&app, &tokens.access).await, 200);
}

// ---------------------------------------------------------------------------------------
// Codes

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_it_issued() {
    let Flow { app, .. } = flow_setup().await;
    let pkce = pkce();
    let mut browser = Browser::new(&app);
    let code = obtain_code(&app, &mut browser, &Authorize::new(&app, "spa", &pkce)).await;
    let first = Tokens::from(redeem(&app, As::Public("spa"), &code, &pkce.verifier).await);
    assert_eq!(
        echo_status(&app, &first.access).await,
        200,
        "verified and cached"
    );

    let answer = redeem(&app, As::Public("spa"), &code, &pkce.verifier).await;
    assert_eq!(refusal(&answer), invalid_grant(), "{}", answer.2);
    assert_eq!(crate::oauth::header(&answer.1, "cache-control"), "no-store");
    insta::assert_json_snapshot!("invalid_grant_replay", answer.2);

    let (status, _, body) = gateway(&app, "demo", &first.access, &call("echo")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["data"]["reason"], "invalid_credential");
    let answer = refresh(&app, As::Public("spa"), &first.refresh, &[]).await;
    assert_eq!(refusal(&answer), invalid_grant(), "{}", answer.2);

    // Another grant of the same user and client is untouched.
    let other = spa_tokens(
        &app,
        &mut browser,
        &Authorize::new(&app, "spa", &pkce),
        &pkce,
    )
    .await;
    assert_eq!(echo_status(&app, &other.access).await, 200);
}

#[tokio::test]
async fn a_replayed_code_also_revokes_the_tokens_refreshed_from_it() {
    let Flow { app, .. } = flow_setup().await;
    let pkce = pkce();
    let mut browser = Browser::new(&app);
    let code = obtain_code(&app, &mut browser, &Authorize::new(&app, "spa", &pkce)).await;
    let first = Tokens::from(redeem(&app, As::Public("spa"), &code, &pkce.verifier).await);
    let refreshed = Tokens::from(refresh(&app, As::Public("spa"), &first.refresh, &[]).await);
    assert_eq!(echo_status(&app, &refreshed.access).await, 200);

    let answer = redeem(&app, As::Public("spa"), &code, &pkce.verifier).await;
    assert_eq!(refusal(&answer), invalid_grant(), "{}", answer.2);
    let answer = refresh(&app, As::Public("spa"), &refreshed.refresh, &[]).await;
    assert_eq!(
        refusal(&answer),
        invalid_grant(),
        "the family: {}",
        answer.2
    );
    assert_eq!(
        echo_status(&app, &first.access).await,
        401,
        "the code's own token"
    );
    // OAuth 2.1 §4.1.3: the server SHOULD revoke all tokens issued based on the code; the
    // error tells the client they are revoked.
    assert_eq!(
        echo_status(&app, &refreshed.access).await,
        401,
        "an access token refreshed from the replayed code"
    );
}

#[tokio::test]
async fn a_code_is_bound_to_its_client_redirect_uri_and_resource() {
    let Flow {
        app, webapp_secret, ..
    } = flow_setup().await;
    let pkce = pkce();
    let mut browser = Browser::new(&app);
    let request = Authorize::new(&app, "spa", &pkce);

    let code = obtain_code(&app, &mut browser, &request).await;
    let answer = redeem(
        &app,
        As::Basic("webapp", &webapp_secret),
        &code,
        &pkce.verifier,
    )
    .await;
    assert_eq!(
        refusal(&answer),
        invalid_grant(),
        "another client: {}",
        answer.2
    );

    let code = obtain_code(&app, &mut browser, &request).await;
    let answer = token_request(
        &app,
        As::Public("spa"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &pkce.verifier),
            ("redirect_uri", "http://127.0.0.1:9/other"),
        ],
    )
    .await;
    assert_eq!(
        refusal(&answer),
        invalid_grant(),
        "redirect_uri: {}",
        answer.2
    );

    let code = obtain_code(&app, &mut browser, &request).await;
    let other = resource(&app, "other");
    let answer = token_request(
        &app,
        As::Public("spa"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &pkce.verifier),
            ("redirect_uri", REDIRECT),
            ("resource", &other),
        ],
    )
    .await;
    assert_eq!(
        refusal(&answer),
        (400, "invalid_target".to_owned()),
        "resource: {}",
        answer.2
    );

    let answer = redeem(&app, As::Public("spa"), "not-a-code", &pkce.verifier).await;
    assert_eq!(refusal(&answer), invalid_grant(), "made up: {}", answer.2);
    // A public client still has to say who it is.
    let code = obtain_code(&app, &mut browser, &request).await;
    let (status, _, body) = post_form(
        &app,
        "/oauth/token",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &pkce.verifier),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_client")));
}

#[tokio::test]
async fn an_expired_code_is_invalid_grant() {
    let Flow { app, .. } =
        flow_setup_with(|c| c.oauth.authorization_code_ttl = Duration::from_secs(1)).await;
    let pkce = pkce();
    let mut browser = Browser::new(&app);
    let request = Authorize::new(&app, "spa", &pkce);
    // Control: redeemed at once, a code of the same configuration works.
    spa_tokens(&app, &mut browser, &request, &pkce).await;

    let code = obtain_code(&app, &mut browser, &request).await;
    // The code was stored before the redirect arrived, so it expires by `issued + 1 s`.
    let expired_by = gatehouse::now_ms() + 1_000;
    let deadline = Instant::now() + Duration::from_secs(10);
    while gatehouse::now_ms() <= expired_by {
        assert!(Instant::now() < deadline, "the clock does not move");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = redeem(&app, As::Public("spa"), &code, &pkce.verifier).await;
    assert_eq!(refusal(&answer), invalid_grant(), "{}", answer.2);
    assert_eq!(
        answer.2["error_description"],
        "the code is unknown or expired"
    );
}
