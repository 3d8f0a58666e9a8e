//! Refresh tokens of the authorization-code flow: rotation, reuse (the grant is revoked),
//! the retry grace, scope, revocation; and users disabled while their tokens live.

use serde_json::json;
use std::time::{Duration, Instant};

use crate::{
    helpers::{call, list_tools},
    oauth::{gateway, jwt_part, post_form, resource},
    oauth_browser::{
        As, Authorize, Browser, Flow, PASSWORD, Tokens, echo_status, flow_setup, flow_setup_with,
        invalid_grant, pkce, refresh, refusal, spa_tokens,
    },
};

// ---------------------------------------------------------------------------------------
// Refresh tokens

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_its_family() {
    let Flow { app, alice, .. } =
        flow_setup_with(|c| c.oauth.refresh_reuse_grace = Duration::ZERO).await;
    let pkce = pkce();
    let mut browser = Browser::new(&app);
    let request = Authorize::new(&app, "spa", &pkce);
    let first = spa_tokens(&app, &mut browser, &request, &pkce).await;
    let bystander = spa_tokens(&app, &mut browser, &request, &pkce).await;

    let second = Tokens::from(refresh(&app, As::Public("spa"), &first.refresh, &[]).await);
    assert!(second.refresh.starts_with("ghr_"));
    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access, first.access);
    assert_eq!(second.body["scope"], "mcp:demo");
    let claims = jwt_part(&second.access, 1);
    assert_eq!(
        (claims["sub"].as_str(), &claims["client_id"]),
        (Some(alice.as_str()), &json!("spa"))
    );
    assert_eq!(echo_status(&app, &second.access).await, 200);

    // The consumed token again (no grace): theft. The whole family goes.
    let answer = refresh(&app, As::Public("spa"), &first.refresh, &[]).await;
    assert_eq!(refusal(&answer), invalid_grant(), "{}", answer.2);
    let answer = refresh(&app, As::Public("spa"), &second.refresh, &[]).await;
    assert_eq!(
        refusal(&answer),
        invalid_grant(),
        "the successor too: {}",
        answer.2
    );

    // Another grant (another family) is unaffected.
    Tokens::from(refresh(&app, As::Public("spa"), &bystander.refresh, &[]).await);
}

#[tokio::test]
async fn a_refresh_token_is_bound_to_its_client_and_cannot_widen_its_scope() {
    let Flow {
        app, webapp_secret, ..
    } = flow_setup().await;
    let pkce = pkce();
    let mut browser = Browser::new(&app);
    let request =
        Authorize::new(&app, "spa", &pkce).set("scope", "mcp:demo:tool:echo mcp:demo:read");
    let granted = "mcp:demo:read mcp:demo:tool:echo";
    let first = spa_tokens(&app, &mut browser, &request, &pkce).await;
    assert_eq!(first.body["scope"], granted);

    // A thief client is refused, and the token is not burnt for its owner.
    let answer = refresh(
        &app,
        As::Basic("webapp", &webapp_secret),
        &first.refresh,
        &[],
    )
    .await;
    assert_eq!(refusal(&answer), invalid_grant(), "{}", answer.2);
    let second = Tokens::from(refresh(&app, As::Public("spa"), &first.refresh, &[]).await);
    assert_eq!(second.body["scope"], granted);

    for wider in ["mcp:demo", "mcp:demo:read mcp:other", "mcp:demo:tool:add"] {
        let answer = refresh(
            &app,
            As::Public("spa"),
            &second.refresh,
            &[("scope", wider)],
        )
        .await;
        assert_eq!(
            refusal(&answer),
            (400, "invalid_scope".to_owned()),
            "{wider}: {}",
            answer.2
        );
    }
    let other = resource(&app, "other");
    let answer = refresh(
        &app,
        As::Public("spa"),
        &second.refresh,
        &[("resource", &other)],
    )
    .await;
    assert_eq!(refusal(&answer), (400, "invalid_target".to_owned()));

    // Refusals consumed nothing; a narrower scope is granted as asked.
    let narrow = Tokens::from(
        refresh(
            &app,
            As::Public("spa"),
            &second.refresh,
            &[("scope", "mcp:demo:tool:echo")],
        )
        .await,
    );
    assert_eq!(narrow.body["scope"], "mcp:demo:tool:echo");
    assert_eq!(jwt_part(&narrow.access, 1)["scope"], "mcp:demo:tool:echo");
    assert_eq!(echo_status(&app, &narrow.access).await, 200);
    let (status, _, _) = gateway(&app, "demo", &narrow.access, &list_tools()).await;
    assert_eq!(status, 200);
    // RFC 6749 §6: narrowing one access token does not shrink the grant.
    let after = Tokens::from(refresh(&app, As::Public("spa"), &narrow.refresh, &[]).await);
    assert_eq!(after.body["scope"], granted);
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_family_at_once() {
    let Flow { app, .. } = flow_setup().await;
    let pkce = pkce();
    let mut browser = Browser::new(&app);
    let request = Authorize::new(&app, "spa", &pkce);
    let first = spa_tokens(&app, &mut browser, &request, &pkce).await;
    let second = Tokens::from(refresh(&app, As::Public("spa"), &first.refresh, &[]).await);

    let (status, _, body) = post_form(
        &app,
        "/oauth/revoke",
        None,
        &[
            ("client_id", "spa"),
            ("token", &second.refresh),
            ("token_type_hint", "refresh_token"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer = refresh(&app, As::Public("spa"), &second.refresh, &[]).await;
    assert_eq!(refusal(&answer), invalid_grant(), "{}", answer.2);
    // Its consumed predecessor (a retry within the grace window otherwise) is dead too.
    let answer = refresh(&app, As::Public("spa"), &first.refresh, &[]).await;
    assert_eq!(refusal(&answer), invalid_grant(), "{}", answer.2);
}

#[tokio::test]
async fn within_the_grace_window_a_lost_answer_can_be_retried_once() {
    let Flow { app, .. } = flow_setup().await;
    assert_eq!(
        app.config.oauth.refresh_reuse_grace,
        Duration::from_secs(10)
    );
    let pkce = pkce();
    let mut browser = Browser::new(&app);
    let request = Authorize::new(&app, "spa", &pkce);
    let first = spa_tokens(&app, &mut browser, &request, &pkce).await;

    let lost = Tokens::from(refresh(&app, As::Public("spa"), &first.refresh, &[]).await);
    let retried = Tokens::from(refresh(&app, As::Public("spa"), &first.refresh, &[]).await);
    assert_ne!(retried.refresh, lost.refresh);
    assert_eq!(echo_status(&app, &retried.access).await, 200);
    let answer = refresh(&app, As::Public("spa"), &lost.refresh, &[]).await;
    assert_eq!(
        refusal(&answer),
        invalid_grant(),
        "the lost successor: {}",
        answer.2
    );

    // The retry's successor is the live one; once it is used, the first token is theft.
    let third = Tokens::from(refresh(&app, As::Public("spa"), &retried.refresh, &[]).await);
    let answer = refresh(&app, As::Public("spa"), &first.refresh, &[]).await;
    assert_eq!(refusal(&answer), invalid_grant(), "{}", answer.2);
    let answer = refresh(&app, As::Public("spa"), &third.refresh, &[]).await;
    assert_eq!(
        refusal(&answer),
        invalid_grant(),
        "family revoked: {}",
        answer.2
    );
}

// ---------------------------------------------------------------------------------------
// Users

#[tokio::test]
async fn a_disabled_users_tokens_stop_working() {
    let Flow { app, alice, .. } = flow_setup().await;
    let pkce = pkce();
    let mut browser = Browser::new(&app);
    let request = Authorize::new(&app, "spa", &pkce);
    let tokens = spa_tokens(&app, &mut browser, &request, &pkce).await;
    assert_eq!(echo_status(&app, &tokens.access).await, 200);

    app.store
        .set_user_disabled(&alice, Some(gatehouse::now_ms()))
        .await
        .unwrap();
    // No explicit reload: the snapshot poller must pick the change up.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, _, body) = loop {
        let answer = gateway(&app, "demo", &tokens.access, &call("echo")).await;
        if answer.0 != 200 {
            break answer;
        }
        assert!(Instant::now() < deadline, "still accepted after 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["data"]["reason"], "invalid_credential");
    let answer = refresh(&app, As::Public("spa"), &tokens.refresh, &[]).await;
    assert_eq!(refusal(&answer), invalid_grant(), "{}", answer.2);

    // The session no longer counts, and signing in again fails.
    let page = browser.get(&request.url(&app)).await;
    assert_eq!(page.status, 303);
    assert!(page.location().starts_with("/oauth/login?req="));
    let login = browser.get(&page.location()).await;
    let page = browser
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
    assert_eq!(page.status, 401, "{}", page.body);
    assert_eq!(page.sets_cookie("gatehouse_session"), None);
}
