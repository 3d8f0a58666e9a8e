//! Shared runtime state that cannot be reached is refused, never decided without it: a policy
//! whose counter does not answer refuses with 503 `state_unavailable`, and a client assertion
//! whose single use cannot be checked gets 503 `temporarily_unavailable` (the credential is
//! fine, so not `invalid_client`); a DPoP proof likewise.

use gatehouse::state::{
    Charge, CounterScope, CounterStore, Denied, Gcra, QuotaCounter, RateCounter, ReplayCache,
    RuntimeState, StateFuture, Subject, Unavailable,
};
use gatehouse_model::records::{QuotaDelta, QuotaUsage};
use serde_json::json;
use std::sync::Arc;

use crate::{
    helpers::{TestApp, call},
    oauth::{Setup, setup_on as oauth_setup_on},
    oauth_assertion::{assertion, setup_on, token_with},
    oauth_dpop::{Holder, token_request, token_url},
    scripted_upstream::Upstream,
};

/// Counters and a replay cache whose backend never answers.
#[derive(Debug)]
struct Unreachable;

impl RateCounter for Unreachable {
    fn take(
        &self,
        _: Subject<'_>,
        _: Gcra,
        _: i128,
        _: bool,
    ) -> StateFuture<'_, Result<(), Denied>> {
        StateFuture::pending(async { Err(Denied::Unavailable) })
    }

    fn give_back(&self, _: Subject<'_>, _: Gcra) -> StateFuture<'_, ()> {
        StateFuture::ready(())
    }

    fn len(&self) -> usize {
        0
    }
}

impl QuotaCounter for Unreachable {
    fn charge(&self, _: Subject<'_>, _: (i64, i64), _: u64, _: bool) -> StateFuture<'_, Charge> {
        StateFuture::pending(async { Charge::Unavailable })
    }

    fn refund(&self, _: Subject<'_>, _: i64) -> StateFuture<'_, ()> {
        StateFuture::ready(())
    }

    fn seed(&self, _: Vec<QuotaUsage>) {}

    fn drain_deltas(&self) -> Vec<QuotaDelta> {
        Vec::new()
    }

    fn len(&self) -> usize {
        0
    }
}

impl CounterStore for Unreachable {
    fn rate(&self, _: CounterScope<'_>) -> Arc<dyn RateCounter> {
        Arc::new(Unreachable)
    }

    fn quota(&self, _: CounterScope<'_>) -> Arc<dyn QuotaCounter> {
        Arc::new(Unreachable)
    }

    fn preload(&self, _: Vec<QuotaUsage>) {}

    fn drain_quota_deltas(&self) -> Vec<QuotaDelta> {
        Vec::new()
    }

    fn len(&self) -> usize {
        0
    }
}

impl ReplayCache for Unreachable {
    fn first_use(&self, _: &str, _: i64, _: i64) -> StateFuture<'_, Result<bool, Unavailable>> {
        StateFuture::pending(async { Err(Unavailable) })
    }

    fn len(&self) -> usize {
        0
    }
}

async fn app_with_unreachable_state() -> TestApp {
    TestApp::start_with_runtime(|config, store| RuntimeState {
        counters: Arc::new(Unreachable),
        client_assertions: Arc::new(Unreachable),
        dpop_proofs: Arc::new(Unreachable),
        ..RuntimeState::in_memory(config, store)
    })
    .await
}

#[tokio::test]
async fn a_policy_whose_counter_cannot_be_reached_refuses_with_state_unavailable() {
    let upstream = Upstream::start().await;
    let app = app_with_unreachable_state().await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("alice", "demo", "*").await;
    for (id, kind, spec) in [
        (
            "hourly",
            "rate_limit",
            json!({ "requests": 100, "period": "1h" }),
        ),
        ("daily", "quota", json!({ "limit": 100, "window": "day" })),
    ] {
        app.policy(id, kind, spec, (None, None, None)).await;
        let response = app
            .post("demo", Some(&key), &call("echo"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503, "{kind}");
        assert_eq!(
            response.headers()["retry-after"],
            "1",
            "{kind}: worth retrying soon"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        insta::assert_json_snapshot!(format!("state_unavailable_{kind}"), body);
        app.store.delete_policy(id).await.unwrap();
        app.server.state.snapshot.reload().await.unwrap();
    }
    assert!(
        upstream.received().is_empty(),
        "nothing was forwarded undecided"
    );
}

#[tokio::test]
async fn an_assertion_whose_single_use_cannot_be_checked_is_temporarily_unavailable() {
    let (app, key) = setup_on(app_with_unreachable_state().await).await;
    let signed = assertion(&app, &key, json!({}));
    let (status, body) = token_with(&app, &signed).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable")),
        "{body}"
    );
}

#[tokio::test]
async fn a_dpop_proof_whose_single_use_cannot_be_checked_is_temporarily_unavailable() {
    let Setup { app, secret, .. } = oauth_setup_on(app_with_unreachable_state().await).await;
    let holder = Holder::new(gatehouse_model::algorithm::Algorithm::ES256);
    let proof = holder.proof("POST", &token_url(&app), None);
    let (status, _, body) = token_request(&app, &secret, Some(&proof)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable")),
        "the proof is fine; its replay check is what is missing: {body}"
    );
}
