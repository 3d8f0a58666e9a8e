//! Client assertions and DPoP proofs are remembered in caches of their own: sustained DPoP
//! traffic filling its cache must not refuse a `private_key_jwt` assertion as a replay, nor
//! the reverse.

use gatehouse::state::{ReplayCache, RuntimeState, StateFuture, Unavailable};
use serde_json::json;
use std::sync::Arc;

use crate::{
    helpers::TestApp,
    oauth::{Setup, setup_on as oauth_setup_on},
    oauth_assertion::{assertion, setup_on, token_with},
    oauth_dpop::{Holder, token_request, token_url},
};

/// A cache full of live ids: every new one is refused (as `MemoryReplay` does when full).
struct Full;

impl ReplayCache for Full {
    fn first_use(&self, _: &str, _: i64, _: i64) -> StateFuture<'_, Result<bool, Unavailable>> {
        StateFuture::ready(Ok(false))
    }

    fn len(&self) -> usize {
        usize::MAX
    }
}

#[tokio::test]
async fn a_full_assertion_cache_does_not_refuse_dpop_proofs() {
    let app = TestApp::start_with_runtime(|config, store| RuntimeState {
        client_assertions: Arc::new(Full),
        ..RuntimeState::in_memory(config, store)
    })
    .await;
    let Setup { app, secret, .. } = oauth_setup_on(app).await;
    let holder = Holder::new(gatehouse_model::algorithm::Algorithm::ES256);
    let proof = holder.proof("POST", &token_url(&app), None);
    let (status, _, body) = token_request(&app, &secret, Some(&proof)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
}

#[tokio::test]
async fn a_full_dpop_cache_does_not_refuse_client_assertions() {
    let app = TestApp::start_with_runtime(|config, store| RuntimeState {
        dpop_proofs: Arc::new(Full),
        ..RuntimeState::in_memory(config, store)
    })
    .await;
    let (app, key) = setup_on(app).await;
    let signed = assertion(&app, &key, json!({}));
    let (status, body) = token_with(&app, &signed).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_dpop_cache_is_sized_by_the_configuration() {
    let store = TestApp::start().await.store.clone();
    let mut config = gatehouse::Config::default();
    config.oauth.dpop_replay_capacity = 16;
    let state = RuntimeState::in_memory(&config, &store);
    let mut remembered = 0;
    // 16 shards of one id each: the cache refuses once the id's shard is taken.
    while state
        .dpop_proofs
        .first_use(&format!("proof-{remembered}"), 2_000, 1_000)
        .await
        .unwrap()
    {
        remembered += 1;
        assert!(remembered <= 16, "more than the capacity remembered");
    }
    assert!(
        state
            .client_assertions
            .first_use("an assertion", 2_000, 1_000)
            .await
            .unwrap(),
        "the assertion cache is another"
    );
}

#[tokio::test]
async fn a_shorter_proof_window_refuses_older_proofs() {
    let app = TestApp::start_with(|config| {
        config.oauth.dpop_proof_max_age = std::time::Duration::from_secs(30);
    })
    .await;
    let Setup { app, secret, .. } = oauth_setup_on(app).await;
    let holder = Holder::new(gatehouse_model::algorithm::Algorithm::ES256);
    let made_ago = |seconds: i64| {
        holder.proof_with(json!({
            "jti": gatehouse::secrets::random_id(12).unwrap(),
            "htm": "POST",
            "htu": token_url(&app),
            "iat": gatehouse::now_ms() / 1000 - seconds,
        }))
    };
    // Within the default five minutes, beyond the configured 30 s (and the 60 s of skew).
    let (status, _, body) = token_request(&app, &secret, Some(&made_ago(120))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "{body}"
    );
    let (status, _, body) = token_request(&app, &secret, Some(&made_ago(5))).await;
    assert_eq!(status, 200, "{body}");
}
