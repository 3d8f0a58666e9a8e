//! PostgreSQL stopping under a running gateway (ADR 0005 section 4): what the snapshot knows
//! keeps being served, flows that must write answer 503 `temporarily_unavailable`, `/readyz`
//! says so, and everything resumes by itself when the server returns on the same port.

use gatehouse_testkit::postgres::Postgres;
use serde_json::Value;
use std::time::{Duration, Instant};

use crate::{
    helpers::{TestApp, call},
    oauth::gateway,
    oauth_browser::{
        As, Authorize, Browser, Flow, flow_setup_with, obtain_code, pkce, redeem, refresh,
        spa_tokens,
    },
};

/// A gateway whose records and trail are on `pg`, a server this test may stop.
async fn flow_on(pg: &Postgres, durable: bool) -> Flow {
    let url = pg.empty_database();
    flow_setup_with(move |config| {
        config.database_url = Some(url);
        config.audit.durable = durable;
    })
    .await
}

async fn readyz(app: &TestApp) -> (u16, String) {
    let answer = app.http.get(app.url("/readyz")).send().await.unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

/// Polls `until` with a deadline; the last value in the failure message.
async fn poll<T: std::fmt::Debug, F: Future<Output = T>>(
    what: &str,
    mut probe: impl FnMut() -> F,
    until: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let value = probe().await;
        if until(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: still {value:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn oauth_error(answer: &(u16, http::HeaderMap, Value)) -> (u16, &str) {
    (answer.0, answer.2["error"].as_str().unwrap_or(""))
}

#[tokio::test]
async fn known_credentials_keep_working_while_postgres_is_down_and_changes_resume_after() {
    let pg = Postgres::private().unwrap();
    let Flow { app, .. } = flow_on(&pg, false).await;
    let key = app.client_with_key("agent", "demo", "*").await;
    let pkce = pkce();
    let mut browser = Browser::new(&app);
    let request = Authorize::new(&app, "spa", &pkce);
    let tokens = spa_tokens(&app, &mut browser, &request, &pkce).await;
    let unredeemed = obtain_code(&app, &mut browser, &request).await;

    pg.stop().unwrap();
    let by_key = gateway(&app, "demo", &key, &call("echo")).await;
    assert_eq!(by_key.0, 200, "an API key from the snapshot: {}", by_key.2);
    let by_jwt = gateway(&app, "demo", &tokens.access, &call("echo")).await;
    assert_eq!(by_jwt.0, 200, "a JWT already issued: {}", by_jwt.2);

    let refreshed = refresh(&app, As::Public("spa"), &tokens.refresh, &[]).await;
    assert_eq!(
        oauth_error(&refreshed),
        (503, "temporarily_unavailable"),
        "{}",
        refreshed.2
    );
    let redeemed = redeem(&app, As::Public("spa"), &unredeemed, &pkce.verifier).await;
    assert_eq!(
        oauth_error(&redeemed),
        (503, "temporarily_unavailable"),
        "{}",
        redeemed.2
    );
    let (status, text) = readyz(&app).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.starts_with("ready, degraded\n"), "{text}");
    assert!(text.contains("store: unreachable"), "{text}");

    pg.restart().unwrap();
    // Nothing was burnt while it was down: the same refresh token works now.
    let refreshed = poll(
        "the refresh once PostgreSQL is back",
        || refresh(&app, As::Public("spa"), &tokens.refresh, &[]),
        |answer| answer.0 != 503,
    )
    .await;
    assert_eq!(refreshed.0, 200, "{}", refreshed.2);
    // A change made now reaches the running gateway through its reload loop alone.
    app.store
        .revoke_api_key(&key[4..16], gatehouse::now_ms())
        .await
        .unwrap();
    poll(
        "the revocation made after the restart",
        || async { gateway(&app, "demo", &key, &call("echo")).await.0 },
        |status| *status == 401,
    )
    .await;
    let (status, text) = poll(
        "/readyz after the restart",
        || readyz(&app),
        |(_, text)| text.starts_with("ready\n"),
    )
    .await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test]
async fn readyz_is_unready_while_postgres_is_down_in_durable_mode() {
    let pg = Postgres::private().unwrap();
    let Flow { app, .. } = flow_on(&pg, true).await;
    assert_eq!(readyz(&app).await.0, 200);
    pg.stop().unwrap();
    let (status, text) = readyz(&app).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.starts_with("not ready\n"), "{text}");
    assert!(text.contains("audit events cannot be committed"), "{text}");
    pg.restart().unwrap();
    poll(
        "/readyz after the restart",
        || readyz(&app),
        |(status, _)| *status == 200,
    )
    .await;
}
