//! Per-user upstream tokens beyond the first connection (ADR 0006 §5): one refresh in flight per
//! person and server (while one call refreshes a person's token that is due but still live,
//! their other calls use the current token rather than refresh again or wait), and a token the
//! upstream itself refuses.

use std::sync::{Arc, atomic::Ordering};

use crate::{
    scripted_upstream::Fault,
    upstream_per_user::{age_grant, authorizations, call_as, connected, elicitation_url, setup},
};

#[tokio::test]
async fn a_due_token_is_refreshed_once_while_the_persons_other_calls_use_the_current_one() {
    let setup = Arc::new(setup().await);
    connected(&setup, "ann").await;
    age_grant(&setup, "ann", 9_000_000, 1_000_000).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    *setup.saas.hold_refresh.lock().unwrap() = Some(gate.clone());

    let refreshing = tokio::spawn({
        let setup = setup.clone();
        async move { call_as(&setup, "ann").await }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while setup.saas.refreshes_arrived.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first call never asked for a refresh"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The refresh is held at the upstream: a second call must not wait for it or start its own.
    let (status, body) =
        tokio::time::timeout(std::time::Duration::from_secs(10), call_as(&setup, "ann"))
            .await
            .expect("the second call waited for a refresh instead of using the live token");
    assert_eq!(status, 200, "{body}");
    assert_eq!(setup.saas.refreshes_arrived.load(Ordering::SeqCst), 1);

    gate.add_permits(1);
    let (status, body) = refreshing.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        setup.saas.refreshes_arrived.load(Ordering::SeqCst),
        1,
        "one refresh for both calls"
    );
    assert_eq!(
        authorizations(&setup.upstream),
        ["Bearer at-ann-1", "Bearer at-ann-2"],
        "the second call used the current token, the first the refreshed one"
    );
}

#[tokio::test]
async fn a_token_the_upstream_refuses_is_forgotten_and_the_person_asked_to_connect_again() {
    let setup = setup().await;
    connected(&setup, "ann").await;
    connected(&setup, "bob").await;
    setup.upstream.set_fault(Fault::Status(401));
    let (status, body) = call_as(&setup, "ann").await;
    assert_eq!(
        status, 200,
        "not the upstream's 401, which would send the agent to sign in again: {body}"
    );
    elicitation_url(&body);
    let store = &setup.app.store;
    assert!(
        store
            .get_upstream_grant(&setup.ids["ann"], "files")
            .await
            .unwrap()
            .is_none(),
        "Ann's refused grant is forgotten"
    );
    assert!(
        store
            .get_upstream_grant(&setup.ids["bob"], "files")
            .await
            .unwrap()
            .is_some(),
        "Bob's stays"
    );
}
