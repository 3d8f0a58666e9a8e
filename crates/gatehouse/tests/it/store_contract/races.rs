//! What must hold when callers race: one winner for a single-use code or refresh token, and
//! one record for a name inserted twice at once. A backend that reads and then writes without
//! holding the row (or a lock) fails these.

use super::*;
use gatehouse_model::records::{
    AuthorizationCodeRecord, CodeRedemption, RefreshOutcome, RefreshTokenRecord,
};
use tokio::task::JoinSet;

const RACERS: usize = 8;

fn refresh(id: &str) -> RefreshTokenRecord {
    RefreshTokenRecord {
        id: id.into(),
        family: "f1".into(),
        token_hash: format!("hash-{id}").into_bytes(),
        client: "web".into(),
        subject: None,
        scope: "mcp".into(),
        resource: "https://gw/mcp/demo".into(),
        created_at: 1,
        expires_at: 10_000,
        consumed_at: None,
        replaced_by: None,
        revoked_at: None,
        revocation_hash: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_of_many_concurrent_redemptions_of_a_code_is_fresh() {
    each_backend(|store| async move {
        store.insert_client(&client("web")).await.unwrap();
        store
            .insert_authorization_code(&AuthorizationCodeRecord {
                code_hash: b"code".to_vec(),
                client: "web".into(),
                subject: "u1".into(),
                redirect_uri: "http://127.0.0.1:9/cb".into(),
                code_challenge: "c".into(),
                scope: "mcp".into(),
                resource: "https://gw/mcp/demo".into(),
                created_at: 1,
                expires_at: 10_000,
                consumed_at: None,
                family: None,
                access_jti: None,
                access_expires_at: None,
                dpop_jkt: None,
            })
            .await
            .unwrap();
        let mut racers = JoinSet::new();
        for _ in 0..RACERS {
            let store = store.clone();
            racers.spawn(async move { store.redeem_authorization_code(b"code", 100).await });
        }
        let outcomes: Vec<_> = racers
            .join_all()
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let fresh = outcomes
            .iter()
            .filter(|o| matches!(o, CodeRedemption::Fresh(_)))
            .count();
        let replayed = outcomes
            .iter()
            .filter(|o| matches!(o, CodeRedemption::Replayed(_)))
            .count();
        assert_eq!((fresh, replayed), (1, RACERS - 1), "{outcomes:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_of_many_concurrent_rotations_of_a_refresh_token_wins() {
    each_backend(|store| async move {
        store.insert_client(&client("web")).await.unwrap();
        store.insert_refresh_token(&refresh("t0")).await.unwrap();
        let mut racers = JoinSet::new();
        for i in 0..RACERS {
            let store = store.clone();
            racers.spawn(async move {
                // No grace: a second presentation is always reuse.
                store
                    .rotate_refresh_token(b"hash-t0", &refresh(&format!("next{i}")), 100, 0)
                    .await
            });
        }
        let outcomes: Vec<_> = racers
            .join_all()
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let rotated = outcomes
            .iter()
            .filter(|o| **o == RefreshOutcome::Rotated)
            .count();
        assert_eq!(rotated, 1, "{outcomes:?}");
        // The first loser revokes the family (reuse); later ones find it revoked.
        assert!(outcomes.contains(&RefreshOutcome::Reused), "{outcomes:?}");
        assert_eq!(
            store
                .find_refresh_token(b"hash-t0")
                .await
                .unwrap()
                .unwrap()
                .revoked_at,
            Some(100)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_of_one_name_store_one_and_report_the_rest_as_conflicts() {
    each_backend(|store| async move {
        let mut racers = JoinSet::new();
        for i in 0..RACERS {
            let store = store.clone();
            racers.spawn(async move {
                let server = ServerRecord {
                    url: format!("http://racer{i}/mcp"),
                    ..server("demo")
                };
                store.insert_server(&server).await
            });
        }
        let outcomes = racers.join_all().await;
        let stored = outcomes.iter().filter(|o| o.is_ok()).count();
        let conflicts = outcomes
            .iter()
            .filter(|o| matches!(o, Err(StoreError::Conflict { kind: "server", .. })))
            .count();
        assert_eq!((stored, conflicts), (1, RACERS - 1), "{outcomes:?}");
        assert_eq!(store.list_servers().await.unwrap().len(), 1);
    })
    .await;
}

/// Replicas that each see a new tool for the first time, with different definitions, at once:
/// every sighting is recorded (none fails on the other's insert), one is approved and the
/// rest are pending against it, never written over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_different_first_sightings_of_a_tool_approve_one_and_hold_the_others() {
    each_backend(|store| async move {
        store.insert_server(&server("demo")).await.unwrap();
        for round in 0..4 {
            let tool = format!("t{round}");
            let mut racers = JoinSet::new();
            for n in 0..RACERS {
                let store = store.clone();
                let seen = super::pins::seen("demo", &tool, &format!("h{n}"), None);
                racers.spawn(async move { store.observe_tool(&seen).await });
            }
            for outcome in racers.join_all().await {
                outcome.expect("a concurrent first sighting is recorded, not refused");
            }
            let pin = store
                .list_tool_pins()
                .await
                .unwrap()
                .into_iter()
                .find(|p| p.tool == tool)
                .unwrap();
            let approved = pin.approved_hash.expect("one sighting approved");
            let pending = pin.pending_hash.expect("a different one pending");
            assert_ne!(approved, pending);
        }
    })
    .await;
}
