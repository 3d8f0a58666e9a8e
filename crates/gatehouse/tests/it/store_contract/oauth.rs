//! The authorization server's records: client OAuth metadata, client secrets, signing keys
//! and revoked access tokens.

use super::*;
use gatehouse_model::records::RevokedToken;

#[tokio::test]
async fn client_oauth_metadata_is_set_and_cleared() {
    each_backend(|store| async move {
        store.insert_client(&client("web")).await.unwrap();
        let before = store.generation().await.unwrap();
        let set = store
            .set_client_oauth("web", Some(&oauth_metadata()))
            .await
            .unwrap();
        assert!(set > before);
        assert_eq!(
            store.get_client("web").await.unwrap().oauth,
            Some(oauth_metadata())
        );
        store.set_client_oauth("web", None).await.unwrap();
        assert_eq!(store.get_client("web").await.unwrap().oauth, None);
        assert_not_found(
            store.set_client_oauth("ghost", None).await,
            "client",
            "ghost",
        );
    })
    .await;
}

#[tokio::test]
async fn client_secrets_are_listed_per_client_in_creation_order() {
    each_backend(|store| async move {
        for name in ["web", "other"] {
            store.insert_client(&client(name)).await.unwrap();
        }
        let before = store.generation().await.unwrap();
        let generation = store
            .insert_client_secret(&client_secret("s2", "web", 20))
            .await
            .unwrap();
        assert!(generation > before);
        store
            .insert_client_secret(&client_secret("s1", "web", 10))
            .await
            .unwrap();
        store
            .insert_client_secret(&client_secret("s3", "other", 5))
            .await
            .unwrap();
        assert_eq!(
            store.list_client_secrets("web").await.unwrap(),
            vec![
                client_secret("s1", "web", 10),
                client_secret("s2", "web", 20)
            ]
        );
        assert!(store.list_client_secrets("ghost").await.unwrap().is_empty());
        assert_not_found(
            store
                .insert_client_secret(&client_secret("s9", "ghost", 1))
                .await,
            "client",
            "ghost",
        );
        assert_conflict(
            store
                .insert_client_secret(&client_secret("s1", "web", 30))
                .await,
            "client secret",
            "s1",
        );
    })
    .await;
}

#[tokio::test]
async fn rotating_a_secret_shortens_the_clients_other_live_secrets() {
    each_backend(|store| async move {
        for name in ["web", "other"] {
            store.insert_client(&client(name)).await.unwrap();
        }
        let soon = ClientSecretRecord {
            expires_at: Some(100),
            ..client_secret("soon", "web", 1)
        };
        store.insert_client_secret(&soon).await.unwrap();
        store
            .insert_client_secret(&client_secret("open", "web", 2))
            .await
            .unwrap();
        store
            .insert_client_secret(&client_secret("revoked", "web", 3))
            .await
            .unwrap();
        store.revoke_client_secret("revoked", 4).await.unwrap();
        store
            .insert_client_secret(&client_secret("theirs", "other", 5))
            .await
            .unwrap();

        store
            .rotate_client_secret(&client_secret("new", "web", 6), 500)
            .await
            .unwrap();
        let expiry = |secrets: &[ClientSecretRecord], id: &str| {
            secrets.iter().find(|s| s.id == id).unwrap().expires_at
        };
        let web = store.list_client_secrets("web").await.unwrap();
        assert_eq!(expiry(&web, "soon"), Some(100), "never lengthened");
        assert_eq!(expiry(&web, "open"), Some(500));
        assert_eq!(
            expiry(&web, "revoked"),
            None,
            "revoked secrets are left alone"
        );
        assert_eq!(expiry(&web, "new"), None);
        let other = store.list_client_secrets("other").await.unwrap();
        assert_eq!(expiry(&other, "theirs"), None, "another client's secret");

        // A failed rotation shortens nothing.
        assert_conflict(
            store
                .rotate_client_secret(&client_secret("new", "web", 7), 50)
                .await,
            "client secret",
            "new",
        );
        let web = store.list_client_secrets("web").await.unwrap();
        assert_eq!(expiry(&web, "open"), Some(500));
        assert_not_found(
            store
                .rotate_client_secret(&client_secret("x", "ghost", 1), 1)
                .await,
            "client",
            "ghost",
        );
    })
    .await;
}

#[tokio::test]
async fn a_secret_is_revoked_once() {
    each_backend(|store| async move {
        store.insert_client(&client("web")).await.unwrap();
        store
            .insert_client_secret(&client_secret("s1", "web", 1))
            .await
            .unwrap();
        let before = store.generation().await.unwrap();
        let generation = store.revoke_client_secret("s1", 10).await.unwrap();
        assert!(generation > before);
        assert_eq!(
            store.list_client_secrets("web").await.unwrap()[0].revoked_at,
            Some(10)
        );
        assert_not_found(
            store.revoke_client_secret("s1", 20).await,
            "client secret",
            "s1",
        );
        assert_not_found(
            store.revoke_client_secret("ghost", 20).await,
            "client secret",
            "ghost",
        );
        assert_eq!(
            store.list_client_secrets("web").await.unwrap()[0].revoked_at,
            Some(10)
        );
    })
    .await;
}

#[tokio::test]
async fn signing_keys_are_listed_by_activation_retired_and_purged() {
    each_backend(|store| async move {
        for (kid, active_at) in [("k-late", 30), ("k-b", 10), ("k-a", 10)] {
            store
                .insert_signing_key(&signing_key(kid, active_at))
                .await
                .unwrap();
        }
        let kids =
            |keys: Vec<SigningKeyRecord>| keys.into_iter().map(|k| k.kid).collect::<Vec<_>>();
        assert_eq!(
            kids(store.list_signing_keys().await.unwrap()),
            ["k-a", "k-b", "k-late"]
        );
        assert_conflict(
            store.insert_signing_key(&signing_key("k-a", 99)).await,
            "signing key",
            "k-a",
        );

        store.retire_signing_keys("k-b", 100).await.unwrap();
        // Already retired keys keep their first retirement time.
        store.retire_signing_keys("k-late", 200).await.unwrap();
        let retired: Vec<_> = store
            .list_signing_keys()
            .await
            .unwrap()
            .into_iter()
            .map(|k| (k.kid, k.retired_at))
            .collect();
        assert_eq!(
            retired,
            [
                ("k-a", Some(100)),
                ("k-b", Some(200)),
                ("k-late", Some(100))
            ]
            .map(|(k, r)| (k.to_string(), r))
        );

        let generation = store.generation().await.unwrap();
        assert_eq!(store.purge_signing_keys(100).await.unwrap(), 0);
        assert_eq!(
            store.generation().await.unwrap(),
            generation,
            "purging nothing does not reload"
        );
        assert_eq!(store.purge_signing_keys(150).await.unwrap(), 2);
        assert!(store.generation().await.unwrap() > generation);
        assert_eq!(kids(store.list_signing_keys().await.unwrap()), ["k-b"]);
    })
    .await;
}

#[tokio::test]
async fn revoked_access_tokens_are_kept_until_they_expire() {
    each_backend(|store| async move {
        let token = |jti: &str, expires_at| RevokedToken {
            jti: jti.into(),
            expires_at,
        };
        let before = store.generation().await.unwrap();
        let generation = store
            .revoke_access_token(&token("a", FAR_FUTURE), 1)
            .await
            .unwrap();
        assert!(generation > before);
        // Revoking twice is not an error.
        store
            .revoke_access_token(&token("a", FAR_FUTURE), 2)
            .await
            .unwrap();
        store.revoke_access_token(&token("b", 50), 1).await.unwrap();
        store
            .revoke_access_token(&token("c", 150), 1)
            .await
            .unwrap();

        let generation = store.generation().await.unwrap();
        assert_eq!(store.purge_revoked_tokens(100).await.unwrap(), 1);
        assert_eq!(
            store.generation().await.unwrap(),
            generation,
            "forgetting expired tokens cannot re-enable anything"
        );
        assert_eq!(store.purge_revoked_tokens(100).await.unwrap(), 0);
        // Contents hold only tokens not yet expired by the wall clock.
        assert_eq!(
            store.load_contents().await.unwrap().revoked_tokens,
            vec![token("a", FAR_FUTURE)]
        );
    })
    .await;
}
