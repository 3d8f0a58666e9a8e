//! Refresh-token families: rotation, reuse detection and the retry grace.

use super::*;
use gatehouse_model::records::{RefreshOutcome, RefreshTokenRecord};

fn token(id: &str, family: &str) -> RefreshTokenRecord {
    RefreshTokenRecord {
        id: id.into(),
        family: family.into(),
        token_hash: format!("hash-{id}").into_bytes(),
        client: "web".into(),
        subject: Some("u1".into()),
        scope: "mcp".into(),
        resource: "https://gw/mcp/demo".into(),
        created_at: 100,
        expires_at: 10_000,
        consumed_at: None,
        replaced_by: None,
        revoked_at: None,
        revocation_hash: None,
    }
}

async fn with_family(store: &DynStore) {
    store.insert_client(&client("web")).await.unwrap();
    store
        .insert_refresh_token(&token("t1", "f1"))
        .await
        .unwrap();
}

async fn find(store: &DynStore, id: &str) -> RefreshTokenRecord {
    store
        .find_refresh_token(format!("hash-{id}").as_bytes())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("refresh token {id} is stored"))
}

#[tokio::test]
async fn a_bound_token_is_found_for_revocation_by_either_hash_and_for_refresh_by_its_own() {
    each_backend(|store| async move {
        with_family(&store).await;
        let bound = RefreshTokenRecord {
            revocation_hash: Some(b"plain-t2".to_vec()),
            ..token("t2", "f1")
        };
        store.insert_refresh_token(&bound).await.unwrap();
        assert_eq!(
            store.find_refresh_token(b"plain-t2").await.unwrap(),
            None,
            "the refresh grant must not find a bound token without its key"
        );
        for hash in [&b"hash-t2"[..], b"plain-t2"] {
            assert_eq!(
                store.find_refresh_token_to_revoke(hash).await.unwrap(),
                Some(bound.clone())
            );
        }
        assert_eq!(
            store
                .find_refresh_token_to_revoke(b"hash-t1")
                .await
                .unwrap(),
            Some(token("t1", "f1")),
            "an unbound token by its own hash"
        );
        assert_eq!(
            store
                .find_refresh_token_to_revoke(b"unknown")
                .await
                .unwrap(),
            None
        );
    })
    .await;
}

#[tokio::test]
async fn a_refresh_token_is_found_by_its_hash_and_its_id_is_unique() {
    each_backend(|store| async move {
        with_family(&store).await;
        let generation = store.generation().await.unwrap();
        assert_eq!(find(&store, "t1").await, token("t1", "f1"));
        assert_eq!(store.find_refresh_token(b"unknown").await.unwrap(), None);
        assert_conflict(
            store.insert_refresh_token(&token("t1", "f2")).await,
            "refresh token",
            "t1",
        );
        assert_eq!(
            store.generation().await.unwrap(),
            generation,
            "refresh tokens are not part of the snapshot"
        );
    })
    .await;
}

#[tokio::test]
async fn rotating_consumes_the_presented_token_and_stores_its_successor() {
    each_backend(|store| async move {
        with_family(&store).await;
        let outcome = store
            .rotate_refresh_token(b"hash-t1", &token("t2", "f1"), 500, 1_000)
            .await
            .unwrap();
        assert_eq!(outcome, RefreshOutcome::Rotated);
        let t1 = find(&store, "t1").await;
        assert_eq!(
            (t1.consumed_at, t1.replaced_by.as_deref()),
            (Some(500), Some("t2"))
        );
        assert_eq!(find(&store, "t2").await, token("t2", "f1"));
    })
    .await;
}

#[tokio::test]
async fn unknown_expired_or_revoked_tokens_are_invalid_and_store_nothing() {
    each_backend(|store| async move {
        with_family(&store).await;
        let next = token("t2", "f1");
        let rotate = |presented: &'static [u8], now| {
            let store = store.clone();
            let next = next.clone();
            async move {
                store
                    .rotate_refresh_token(presented, &next, now, 1_000)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(rotate(b"unknown", 500).await, RefreshOutcome::Invalid);
        assert_eq!(rotate(b"hash-t1", 10_000).await, RefreshOutcome::Invalid);
        assert_eq!(store.revoke_refresh_family("f1", 600).await.unwrap(), 1);
        assert_eq!(store.revoke_refresh_family("f1", 700).await.unwrap(), 0);
        assert_eq!(rotate(b"hash-t1", 800).await, RefreshOutcome::Invalid);
        assert_eq!(store.find_refresh_token(b"hash-t2").await.unwrap(), None);
        assert_eq!(find(&store, "t1").await.revoked_at, Some(600));
    })
    .await;
}

#[tokio::test]
async fn presenting_a_consumed_token_after_the_grace_revokes_the_family() {
    each_backend(|store| async move {
        with_family(&store).await;
        store
            .rotate_refresh_token(b"hash-t1", &token("t2", "f1"), 500, 1_000)
            .await
            .unwrap();
        let outcome = store
            .rotate_refresh_token(b"hash-t1", &token("t3", "f1"), 1_500, 1_000)
            .await
            .unwrap();
        assert_eq!(outcome, RefreshOutcome::Reused);
        assert_eq!(find(&store, "t1").await.revoked_at, Some(1_500));
        assert_eq!(find(&store, "t2").await.revoked_at, Some(1_500));
        assert_eq!(store.find_refresh_token(b"hash-t3").await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn a_retry_within_the_grace_replaces_the_unused_successor() {
    each_backend(|store| async move {
        with_family(&store).await;
        store
            .rotate_refresh_token(b"hash-t1", &token("t2", "f1"), 500, 1_000)
            .await
            .unwrap();
        let outcome = store
            .rotate_refresh_token(b"hash-t1", &token("t3", "f1"), 900, 1_000)
            .await
            .unwrap();
        assert_eq!(outcome, RefreshOutcome::Rotated);
        let t1 = find(&store, "t1").await;
        assert_eq!(t1.consumed_at, Some(500), "the first use stays recorded");
        assert_eq!(t1.replaced_by.as_deref(), Some("t3"));
        assert_eq!(find(&store, "t2").await.revoked_at, Some(900));
        assert_eq!(find(&store, "t3").await.revoked_at, None);

        // Once the successor has been used, presenting t1 again is reuse even in the grace.
        store
            .rotate_refresh_token(b"hash-t3", &token("t4", "f1"), 950, 1_000)
            .await
            .unwrap();
        let outcome = store
            .rotate_refresh_token(b"hash-t1", &token("t5", "f1"), 960, 1_000)
            .await
            .unwrap();
        assert_eq!(outcome, RefreshOutcome::Reused);
        assert_eq!(find(&store, "t4").await.revoked_at, Some(960));
    })
    .await;
}

#[tokio::test]
async fn a_rotation_whose_successor_cannot_be_stored_consumes_nothing() {
    each_backend(|store| async move {
        with_family(&store).await;
        store
            .insert_refresh_token(&token("taken", "f1"))
            .await
            .unwrap();
        assert_conflict(
            store
                .rotate_refresh_token(b"hash-t1", &token("taken", "f1"), 500, 1_000)
                .await,
            "refresh token",
            "taken",
        );
        let t1 = find(&store, "t1").await;
        assert_eq!((t1.consumed_at, t1.replaced_by), (None, None));
        let outcome = store
            .rotate_refresh_token(b"hash-t1", &token("t2", "f1"), 600, 1_000)
            .await
            .unwrap();
        assert_eq!(outcome, RefreshOutcome::Rotated, "t1 is still usable");
    })
    .await;
}
