//! The admin API's records: tokens and idempotency keys, the same on every backend (replicas
//! of one deployment agree through them).

use super::*;
use gatehouse::store::admin_api::Claim;
use gatehouse_model::records::{AdminRole, AdminTokenRecord};

fn token(id: &str, created_at: i64) -> AdminTokenRecord {
    AdminTokenRecord {
        id: id.into(),
        name: format!("{id}-name"),
        role: AdminRole::Operator,
        secret_hash: vec![0, 1, 2, 254, 255],
        created_at,
        created_by: "cli:alice".into(),
        expires_at: Some(FAR_FUTURE),
        revoked_at: None,
        last_used_at: None,
    }
}

#[tokio::test]
async fn admin_tokens_round_trip_are_revoked_once_and_never_duplicated() {
    each_backend(|store| async move {
        store.insert_admin_token(&token("b", 2)).await.unwrap();
        store.insert_admin_token(&token("a", 1)).await.unwrap();
        assert_conflict(
            store.insert_admin_token(&token("a", 3)).await,
            "admin token",
            "a",
        );
        assert_eq!(store.get_admin_token("a").await.unwrap(), token("a", 1));
        let ids: Vec<String> = store
            .list_admin_tokens()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(ids, ["a", "b"], "by creation time");

        store.revoke_admin_token("a", 10).await.unwrap();
        store.revoke_admin_token("a", 20).await.unwrap();
        store.touch_admin_token("a", 30).await.unwrap();
        let a = store.get_admin_token("a").await.unwrap();
        assert_eq!((a.revoked_at, a.last_used_at), (Some(10), Some(30)));
        assert_not_found(store.revoke_admin_token("z", 1).await, "admin token", "z");
        assert_not_found(store.get_admin_token("z").await, "admin token", "z");
    })
    .await;
}

#[tokio::test]
async fn an_idempotency_key_is_claimed_once_answered_released_and_forgotten() {
    each_backend(|store| async move {
        assert_eq!(
            store.claim_idempotency("t1", "k", "h1", 100).await.unwrap(),
            Claim::Claimed
        );
        let Claim::Held(held) = store.claim_idempotency("t1", "k", "h2", 101).await.unwrap() else {
            panic!("a second claim of the same key must find the first");
        };
        assert_eq!((held.request_hash.as_str(), held.answer), ("h1", None));
        assert_eq!(
            store.claim_idempotency("t2", "k", "h1", 102).await.unwrap(),
            Claim::Claimed,
            "keys are per token"
        );

        store
            .answer_idempotency("t1", "k", 201, &[0, 9, 255])
            .await
            .unwrap();
        let Claim::Held(held) = store.claim_idempotency("t1", "k", "h1", 103).await.unwrap() else {
            panic!("still held");
        };
        assert_eq!(held.answer, Some((201, vec![0, 9, 255])));

        store.release_idempotency("t2", "k").await.unwrap();
        assert_eq!(
            store.claim_idempotency("t2", "k", "h3", 104).await.unwrap(),
            Claim::Claimed,
            "a released key can be claimed again"
        );
        assert_eq!(store.forget_idempotency_before(104).await.unwrap(), 1);
        assert_eq!(
            store.claim_idempotency("t1", "k", "h9", 105).await.unwrap(),
            Claim::Claimed,
            "a forgotten key is free"
        );
    })
    .await;
}
