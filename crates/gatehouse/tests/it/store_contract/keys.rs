//! API keys: insert, list, rotation, revocation and usage write-back.

use super::*;

#[tokio::test]
async fn api_keys_are_listed_by_client_then_creation_and_read_back_whole() {
    each_backend(|store| async move {
        for name in ["bob", "amy"] {
            store.insert_client(&client(name)).await.unwrap();
        }
        let before = store.generation().await.unwrap();
        let generation = store
            .insert_api_key(&api_key("k3", "bob", 30))
            .await
            .unwrap();
        assert!(generation > before);
        let unrestricted = ApiKeyRecord {
            tools: None,
            expires_at: Some(FAR_FUTURE),
            rotated_from: Some("k0".into()),
            ..api_key("k2", "amy", 20)
        };
        store.insert_api_key(&unrestricted).await.unwrap();
        store
            .insert_api_key(&api_key("k1", "amy", 10))
            .await
            .unwrap();

        let ids = |keys: Vec<ApiKeyRecord>| keys.into_iter().map(|k| k.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.list_api_keys(None).await.unwrap()),
            ["k1", "k2", "k3"]
        );
        assert_eq!(
            ids(store.list_api_keys(Some("amy")).await.unwrap()),
            ["k1", "k2"]
        );
        assert!(
            store
                .list_api_keys(Some("nobody"))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.get_api_key("k2").await.unwrap(), unrestricted);
        assert_not_found(store.get_api_key("missing").await, "API key", "missing");
    })
    .await;
}

#[tokio::test]
async fn an_api_key_needs_its_client_and_a_new_id() {
    each_backend(|store| async move {
        assert_not_found(
            store.insert_api_key(&api_key("k1", "ghost", 1)).await,
            "client",
            "ghost",
        );
        store.insert_client(&client("agent")).await.unwrap();
        store
            .insert_api_key(&api_key("k1", "agent", 1))
            .await
            .unwrap();
        let generation = store.generation().await.unwrap();
        assert_conflict(
            store.insert_api_key(&api_key("k1", "agent", 2)).await,
            "API key",
            "k1",
        );
        assert_eq!(store.get_api_key("k1").await.unwrap().created_at, 1);
        assert_eq!(store.generation().await.unwrap(), generation);
    })
    .await;
}

#[tokio::test]
async fn rotating_a_key_shortens_the_old_one_and_never_lengthens_it() {
    each_backend(|store| async move {
        store.insert_client(&client("agent")).await.unwrap();
        store
            .insert_api_key(&api_key("old", "agent", 1))
            .await
            .unwrap();
        let new = ApiKeyRecord {
            rotated_from: Some("old".into()),
            ..api_key("new", "agent", 2)
        };
        let before = store.generation().await.unwrap();
        let generation = store.rotate_api_key("old", &new, 500).await.unwrap();
        assert!(generation > before);
        assert_eq!(
            store.get_api_key("old").await.unwrap().expires_at,
            Some(500)
        );
        assert_eq!(store.get_api_key("new").await.unwrap(), new);

        // A later overlap end does not extend the earlier one.
        let newer = api_key("newer", "agent", 3);
        store.rotate_api_key("old", &newer, 900).await.unwrap();
        assert_eq!(
            store.get_api_key("old").await.unwrap().expires_at,
            Some(500)
        );
    })
    .await;
}

#[tokio::test]
async fn a_failed_rotation_leaves_nothing_behind() {
    each_backend(|store| async move {
        store.insert_client(&client("agent")).await.unwrap();
        store
            .insert_api_key(&api_key("old", "agent", 1))
            .await
            .unwrap();
        store
            .insert_api_key(&api_key("taken", "agent", 1))
            .await
            .unwrap();
        let generation = store.generation().await.unwrap();

        // The new key's id is taken: the old key must keep its validity.
        assert_conflict(
            store
                .rotate_api_key("old", &api_key("taken", "agent", 2), 500)
                .await,
            "API key",
            "taken",
        );
        assert_eq!(store.get_api_key("old").await.unwrap().expires_at, None);

        // Unknown or revoked keys cannot be rotated, and the new key is not stored.
        assert_not_found(
            store
                .rotate_api_key("missing", &api_key("n1", "agent", 2), 500)
                .await,
            "active API key",
            "missing",
        );
        store.revoke_api_key("old", 10).await.unwrap();
        assert_not_found(
            store
                .rotate_api_key("old", &api_key("n2", "agent", 2), 500)
                .await,
            "active API key",
            "old",
        );
        assert_not_found(store.get_api_key("n1").await, "API key", "n1");
        assert_not_found(store.get_api_key("n2").await, "API key", "n2");
        assert_eq!(
            store.generation().await.unwrap(),
            generation + 1,
            "only the revocation moved the generation"
        );
    })
    .await;
}

#[tokio::test]
async fn revoking_a_key_keeps_the_first_revocation_time() {
    each_backend(|store| async move {
        store.insert_client(&client("agent")).await.unwrap();
        store
            .insert_api_key(&api_key("k1", "agent", 1))
            .await
            .unwrap();
        let before = store.generation().await.unwrap();
        let first = store.revoke_api_key("k1", 100).await.unwrap();
        assert!(first > before);
        store.revoke_api_key("k1", 200).await.unwrap();
        assert_eq!(store.get_api_key("k1").await.unwrap().revoked_at, Some(100));
        assert_not_found(
            store.revoke_api_key("missing", 1).await,
            "API key",
            "missing",
        );
        // Revoked keys stay listed (for `key list`) but leave the snapshot's contents.
        assert_eq!(store.list_api_keys(None).await.unwrap().len(), 1);
        assert!(store.load_contents().await.unwrap().api_keys.is_empty());
    })
    .await;
}

#[tokio::test]
async fn key_usage_only_moves_forward_and_does_not_reload() {
    each_backend(|store| async move {
        store.insert_client(&client("agent")).await.unwrap();
        for id in ["k1", "k2"] {
            store
                .insert_api_key(&api_key(id, "agent", 1))
                .await
                .unwrap();
        }
        let generation = store.generation().await.unwrap();
        store
            .record_key_usage(&[
                ("k1".into(), 50),
                ("k2".into(), 70),
                // Unknown ids (a key deleted meanwhile) are skipped.
                ("gone".into(), 90),
            ])
            .await
            .unwrap();
        store.record_key_usage(&[("k1".into(), 40)]).await.unwrap();
        store.record_key_usage(&[]).await.unwrap();
        assert_eq!(
            store.get_api_key("k1").await.unwrap().last_used_at,
            Some(50)
        );
        assert_eq!(
            store.get_api_key("k2").await.unwrap().last_used_at,
            Some(70)
        );
        assert_eq!(store.generation().await.unwrap(), generation);
    })
    .await;
}
