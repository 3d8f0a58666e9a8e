//! Users, group connections and authorization codes.

use super::*;
use gatehouse_model::records::{AuthorizationCodeRecord, CodeRedemption};

fn federated(id: &str, username: &str, subject: &str) -> UserRecord {
    UserRecord {
        password_hash: None,
        idp: Some("corp".into()),
        idp_subject: Some(subject.into()),
        ..user(id, username)
    }
}

#[tokio::test]
async fn users_are_listed_by_username_and_found_by_id_name_or_provider() {
    each_backend(|store| async move {
        let before = store.generation().await.unwrap();
        let generation = store.insert_user(&user("u2", "zoe")).await.unwrap();
        assert!(generation > before);
        store
            .insert_user(&federated("u1", "adam", "sub-1"))
            .await
            .unwrap();
        let names: Vec<_> = store
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.username)
            .collect();
        assert_eq!(names, ["adam", "zoe"]);
        assert_eq!(store.get_user("u2").await.unwrap(), user("u2", "zoe"));
        assert_eq!(store.get_user("zoe").await.unwrap(), user("u2", "zoe"));
        assert_not_found(store.get_user("ghost").await, "user", "ghost");
        assert_eq!(
            store.find_user_by_username("adam").await.unwrap(),
            Some(federated("u1", "adam", "sub-1"))
        );
        assert_eq!(store.find_user_by_username("ghost").await.unwrap(), None);
        assert_eq!(
            store.find_user_by_idp("corp", "sub-1").await.unwrap(),
            Some(federated("u1", "adam", "sub-1"))
        );
        assert_eq!(store.find_user_by_idp("corp", "sub-2").await.unwrap(), None);
        assert_eq!(
            store.find_user_by_idp("other", "sub-1").await.unwrap(),
            None
        );
    })
    .await;
}

#[tokio::test]
async fn a_username_id_or_provider_identity_is_taken_once() {
    each_backend(|store| async move {
        store
            .insert_user(&federated("u1", "adam", "sub-1"))
            .await
            .unwrap();
        let generation = store.generation().await.unwrap();
        assert_conflict(store.insert_user(&user("u2", "adam")).await, "user", "adam");
        assert_conflict(store.insert_user(&user("u1", "eve")).await, "user", "eve");
        assert_conflict(
            store.insert_user(&federated("u3", "eve", "sub-1")).await,
            "user",
            "eve",
        );
        assert_eq!(store.list_users().await.unwrap().len(), 1);
        assert_eq!(store.generation().await.unwrap(), generation);
    })
    .await;
}

#[tokio::test]
async fn profile_and_disabling_reload_while_password_and_login_do_not() {
    each_backend(|store| async move {
        store.insert_user(&user("u1", "alice")).await.unwrap();
        let before = store.generation().await.unwrap();
        let profile = store
            .update_user_profile("u1", "Alice A.", &["ops".into(), "dev".into()])
            .await
            .unwrap();
        assert!(profile > before);
        let read = store.get_user("u1").await.unwrap();
        assert_eq!(read.display_name, "Alice A.");
        assert_eq!(read.groups, ["ops", "dev"]);

        store
            .set_user_password("u1", "$argon2id$new")
            .await
            .unwrap();
        store.record_login("u1", 777).await.unwrap();
        assert_eq!(store.generation().await.unwrap(), profile);
        let read = store.get_user("u1").await.unwrap();
        assert_eq!(read.password_hash.as_deref(), Some("$argon2id$new"));
        assert_eq!(read.last_login_at, Some(777));

        let disabled = store.set_user_disabled("u1", Some(5)).await.unwrap();
        assert!(disabled > profile);
        assert_eq!(store.get_user("u1").await.unwrap().disabled_at, Some(5));
        store.set_user_disabled("u1", None).await.unwrap();
        assert_eq!(store.get_user("u1").await.unwrap().disabled_at, None);

        assert_not_found(
            store.update_user_profile("ghost", "G", &[]).await,
            "user",
            "ghost",
        );
        assert_not_found(store.set_user_password("ghost", "x").await, "user", "ghost");
        assert_not_found(
            store.set_user_disabled("ghost", None).await,
            "user",
            "ghost",
        );
    })
    .await;
}

#[tokio::test]
async fn group_connections_are_upserted_listed_in_order_and_deleted() {
    each_backend(|store| async move {
        for name in ["b", "a"] {
            store.insert_server(&server(name)).await.unwrap();
        }
        for (g, s) in [("ops", "a"), ("dev", "b"), ("dev", "a")] {
            let before = store.generation().await.unwrap();
            let generation = store
                .upsert_group_connection(&group_connection(g, s))
                .await
                .unwrap();
            assert!(generation > before);
        }
        let replaced = GroupConnectionRecord {
            tools: vec!["*".into()],
            resources: true,
            created_at: 1,
            ..group_connection("dev", "b")
        };
        store.upsert_group_connection(&replaced).await.unwrap();
        assert_eq!(
            store.list_group_connections().await.unwrap(),
            vec![
                group_connection("dev", "a"),
                GroupConnectionRecord {
                    created_at: group_connection("dev", "b").created_at,
                    ..replaced
                },
                group_connection("ops", "a"),
            ]
        );
        assert_not_found(
            store
                .upsert_group_connection(&group_connection("ops", "ghost"))
                .await,
            "server",
            "ghost",
        );
        store.delete_group_connection("ops", "a").await.unwrap();
        assert_eq!(store.list_group_connections().await.unwrap().len(), 2);
        assert!(matches!(
            store.delete_group_connection("ops", "a").await,
            Err(StoreError::NotFound {
                kind: "group connection",
                ..
            })
        ));
    })
    .await;
}

fn code(hash: &str, created_at: i64, expires_at: i64) -> AuthorizationCodeRecord {
    AuthorizationCodeRecord {
        code_hash: hash.as_bytes().to_vec(),
        client: "web".into(),
        subject: "u1".into(),
        redirect_uri: "http://127.0.0.1:9/cb".into(),
        code_challenge: "challenge".into(),
        scope: "mcp".into(),
        resource: "https://gw/mcp/demo".into(),
        created_at,
        expires_at,
        consumed_at: None,
        family: None,
        access_jti: None,
        access_expires_at: None,
        dpop_jkt: None,
    }
}

#[tokio::test]
async fn an_authorization_code_is_fresh_once_then_a_replay_naming_what_it_issued() {
    each_backend(|store| async move {
        store.insert_client(&client("web")).await.unwrap();
        store
            .insert_authorization_code(&code("c1", 100, 700))
            .await
            .unwrap();
        assert_eq!(
            store.redeem_authorization_code(b"c1", 200).await.unwrap(),
            CodeRedemption::Fresh(code("c1", 100, 700))
        );
        store
            .record_code_issue(b"c1", Some("family-1"), "jti-1", 9_000)
            .await
            .unwrap();
        let CodeRedemption::Replayed(replayed) =
            store.redeem_authorization_code(b"c1", 300).await.unwrap()
        else {
            panic!("a second redemption is a replay");
        };
        assert_eq!(replayed.consumed_at, Some(200));
        assert_eq!(replayed.family.as_deref(), Some("family-1"));
        assert_eq!(replayed.access_jti.as_deref(), Some("jti-1"));
        assert_eq!(replayed.access_expires_at, Some(9_000));
        assert_eq!(
            store
                .redeem_authorization_code(b"unknown", 200)
                .await
                .unwrap(),
            CodeRedemption::Invalid
        );
    })
    .await;
}

#[tokio::test]
async fn an_expired_code_is_invalid_and_long_expired_codes_are_dropped() {
    each_backend(|store| async move {
        store.insert_client(&client("web")).await.unwrap();
        store
            .insert_authorization_code(&code("old", 100, 700))
            .await
            .unwrap();
        assert_eq!(
            store.redeem_authorization_code(b"old", 700).await.unwrap(),
            CodeRedemption::Invalid
        );
        // Still stored: expiry alone does not consume it.
        assert_eq!(
            store.redeem_authorization_code(b"old", 650).await.unwrap(),
            CodeRedemption::Fresh(code("old", 100, 700))
        );
        store
            .insert_authorization_code(&code("stale", 100, 800))
            .await
            .unwrap();
        // A code inserted over an hour after another expired drops it.
        let later = 800 + 3_600_001;
        store
            .insert_authorization_code(&code("new", later, later + 600))
            .await
            .unwrap();
        assert_eq!(
            store
                .redeem_authorization_code(b"stale", 650)
                .await
                .unwrap(),
            CodeRedemption::Invalid
        );
        assert!(matches!(
            store
                .redeem_authorization_code(b"new", later)
                .await
                .unwrap(),
            CodeRedemption::Fresh(_)
        ));
    })
    .await;
}

fn upstream_grant(
    user_id: &str,
    server: &str,
    access: u8,
) -> gatehouse_model::records::UpstreamGrantRecord {
    gatehouse_model::records::UpstreamGrantRecord {
        user_id: user_id.into(),
        server: server.into(),
        access_sealed: vec![access, 0, 255],
        refresh_sealed: Some(vec![7, access]),
        expires_at: Some(FAR_FUTURE),
        scope: "repo read:user".into(),
        created_at: 6_000,
        refreshed_at: None,
    }
}

#[tokio::test]
async fn upstream_grants_are_kept_per_person_and_server_replaced_listed_and_deleted() {
    each_backend(|store| async move {
        for name in ["files", "mail"] {
            store.insert_server(&server(name)).await.unwrap();
        }
        store.insert_user(&user("u1", "ann")).await.unwrap();
        store.insert_user(&user("u2", "bob")).await.unwrap();
        let generation = store.generation().await.unwrap();
        store
            .put_upstream_grant(&upstream_grant("u1", "files", 1))
            .await
            .unwrap();
        store
            .put_upstream_grant(&upstream_grant("u1", "mail", 2))
            .await
            .unwrap();
        store
            .put_upstream_grant(&upstream_grant("u2", "files", 3))
            .await
            .unwrap();
        assert_eq!(
            store.generation().await.unwrap(),
            generation,
            "runtime data"
        );
        assert_eq!(
            store.get_upstream_grant("u1", "files").await.unwrap(),
            Some(upstream_grant("u1", "files", 1))
        );
        assert_eq!(store.get_upstream_grant("u2", "mail").await.unwrap(), None);

        let refreshed = gatehouse_model::records::UpstreamGrantRecord {
            refresh_sealed: None,
            expires_at: None,
            refreshed_at: Some(7_000),
            ..upstream_grant("u1", "files", 9)
        };
        store.put_upstream_grant(&refreshed).await.unwrap();
        assert_eq!(
            store.get_upstream_grant("u1", "files").await.unwrap(),
            Some(refreshed.clone())
        );
        assert_eq!(
            store.list_upstream_grants(Some("u1")).await.unwrap(),
            vec![refreshed.clone(), upstream_grant("u1", "mail", 2)]
        );
        let everyone: Vec<_> = store
            .list_upstream_grants(None)
            .await
            .unwrap()
            .into_iter()
            .map(|g| (g.user_id, g.server))
            .collect();
        assert_eq!(
            everyone,
            [("u1", "files"), ("u1", "mail"), ("u2", "files")]
                .map(|(u, s)| (u.to_owned(), s.to_owned()))
        );
        assert!(store.delete_upstream_grant("u1", "mail").await.unwrap());
        assert!(!store.delete_upstream_grant("u1", "mail").await.unwrap());
        assert_eq!(
            store.list_upstream_grants(Some("u1")).await.unwrap(),
            vec![refreshed]
        );
    })
    .await;
}

#[tokio::test]
async fn an_upstream_grant_needs_its_person_and_server_and_goes_with_the_server() {
    each_backend(|store| async move {
        store.insert_server(&server("files")).await.unwrap();
        store.insert_user(&user("u1", "ann")).await.unwrap();
        assert_not_found(
            store
                .put_upstream_grant(&upstream_grant("u1", "ghost", 1))
                .await,
            "server",
            "ghost",
        );
        assert_not_found(
            store
                .put_upstream_grant(&upstream_grant("nobody", "files", 1))
                .await,
            "user",
            "nobody",
        );
        store
            .put_upstream_grant(&upstream_grant("u1", "files", 1))
            .await
            .unwrap();
        store.delete_server("files").await.unwrap();
        assert!(store.list_upstream_grants(None).await.unwrap().is_empty());
    })
    .await;
}
