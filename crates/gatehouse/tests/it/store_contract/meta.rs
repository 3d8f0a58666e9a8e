//! The generation, the consistent read the snapshot is built from, and what a running server
//! reports back (heartbeat, reload report).

use super::*;
use gatehouse::store::{RecordIssue, ReloadReport, RevokedToken, replicas::ReplicaHeartbeat};

#[tokio::test]
async fn contents_hold_what_the_snapshot_is_built_from_and_nothing_retired() {
    each_backend(|store| async move {
        store.insert_server(&server("demo")).await.unwrap();
        store.insert_client(&client("agent")).await.unwrap();
        store
            .insert_api_key(&api_key("live", "agent", 1))
            .await
            .unwrap();
        store
            .insert_api_key(&api_key("revoked", "agent", 2))
            .await
            .unwrap();
        store.revoke_api_key("revoked", 3).await.unwrap();
        store
            .upsert_connection(&connection("agent", "demo"))
            .await
            .unwrap();
        store
            .insert_policy(&policy("p1", Some("agent"), None))
            .await
            .unwrap();
        store
            .observe_tool(&super::pins::seen("demo", "echo", "h1", None))
            .await
            .unwrap();
        store
            .insert_client_secret(&client_secret("s-live", "agent", 1))
            .await
            .unwrap();
        store
            .insert_client_secret(&client_secret("s-revoked", "agent", 2))
            .await
            .unwrap();
        store.revoke_client_secret("s-revoked", 3).await.unwrap();
        store
            .insert_signing_key(&signing_key("kid1", 1))
            .await
            .unwrap();
        let live_token = RevokedToken {
            jti: "live".into(),
            expires_at: FAR_FUTURE,
        };
        store.revoke_access_token(&live_token, 1).await.unwrap();
        let expired = RevokedToken {
            jti: "expired".into(),
            expires_at: 1,
        };
        store.revoke_access_token(&expired, 1).await.unwrap();
        store.insert_user(&user("u1", "alice")).await.unwrap();
        store.insert_user(&user("u2", "bob")).await.unwrap();
        store.set_user_disabled("u2", Some(9)).await.unwrap();
        store
            .upsert_group_connection(&group_connection("staff", "demo"))
            .await
            .unwrap();

        let contents = store.load_contents().await.unwrap();
        assert_eq!(contents.generation, store.generation().await.unwrap());
        assert_eq!(contents.servers, vec![server("demo")]);
        assert_eq!(contents.clients, vec![client("agent")]);
        assert_eq!(contents.api_keys, vec![api_key("live", "agent", 1)]);
        assert_eq!(contents.connections, vec![connection("agent", "demo")]);
        assert_eq!(contents.policies, vec![policy("p1", Some("agent"), None)]);
        assert_eq!(contents.tool_pins.len(), 1);
        assert_eq!(
            contents.client_secrets,
            vec![client_secret("s-live", "agent", 1)]
        );
        assert_eq!(contents.signing_keys, vec![signing_key("kid1", 1)]);
        assert_eq!(contents.revoked_tokens, vec![live_token]);
        assert_eq!(contents.users, vec![user("u1", "alice")]);
        assert_eq!(
            contents.group_connections,
            vec![group_connection("staff", "demo")]
        );
    })
    .await;
}

#[tokio::test]
async fn every_configuration_change_moves_the_generation_by_exactly_one() {
    each_backend(|store| async move {
        let mut last = store.generation().await.unwrap();
        let mut step = |generation: i64, what: &str| {
            assert_eq!(generation, last + 1, "{what} moves the generation by one");
            last = generation;
        };
        step(
            store.insert_server(&server("demo")).await.unwrap(),
            "insert_server",
        );
        step(
            store.update_server(&server("demo")).await.unwrap(),
            "update_server",
        );
        step(
            store.insert_client(&client("agent")).await.unwrap(),
            "insert_client",
        );
        step(
            store.set_client_disabled("agent", None).await.unwrap(),
            "set_client_disabled",
        );
        step(
            store
                .set_client_oauth("agent", Some(&oauth_metadata()))
                .await
                .unwrap(),
            "set_client_oauth",
        );
        step(
            store
                .insert_api_key(&api_key("k1", "agent", 1))
                .await
                .unwrap(),
            "insert_api_key",
        );
        step(
            store
                .rotate_api_key("k1", &api_key("k2", "agent", 2), 10)
                .await
                .unwrap(),
            "rotate_api_key",
        );
        step(
            store.revoke_api_key("k1", 3).await.unwrap(),
            "revoke_api_key",
        );
        step(
            store
                .upsert_connection(&connection("agent", "demo"))
                .await
                .unwrap(),
            "upsert_connection",
        );
        step(
            store.delete_connection("agent", "demo").await.unwrap(),
            "delete_connection",
        );
        step(
            store
                .insert_policy(&policy("p1", None, None))
                .await
                .unwrap(),
            "insert_policy",
        );
        step(store.delete_policy("p1").await.unwrap(), "delete_policy");
        step(
            store
                .insert_client_secret(&client_secret("s1", "agent", 1))
                .await
                .unwrap(),
            "insert_client_secret",
        );
        step(
            store
                .rotate_client_secret(&client_secret("s2", "agent", 2), 10)
                .await
                .unwrap(),
            "rotate_client_secret",
        );
        step(
            store.revoke_client_secret("s1", 3).await.unwrap(),
            "revoke_client_secret",
        );
        step(
            store
                .insert_signing_key(&signing_key("kid1", 1))
                .await
                .unwrap(),
            "insert_signing_key",
        );
        step(
            store.retire_signing_keys("none", 5).await.unwrap(),
            "retire_signing_keys",
        );
        let token = RevokedToken {
            jti: "j".into(),
            expires_at: FAR_FUTURE,
        };
        step(
            store.revoke_access_token(&token, 1).await.unwrap(),
            "revoke_access_token",
        );
        step(
            store.insert_user(&user("u1", "alice")).await.unwrap(),
            "insert_user",
        );
        step(
            store
                .update_user_profile("u1", "Alice", &["ops".into()])
                .await
                .unwrap(),
            "update_user_profile",
        );
        step(
            store.set_user_disabled("u1", Some(1)).await.unwrap(),
            "set_user_disabled",
        );
        step(
            store
                .upsert_group_connection(&group_connection("ops", "demo"))
                .await
                .unwrap(),
            "upsert_group_connection",
        );
        step(
            store.delete_group_connection("ops", "demo").await.unwrap(),
            "delete_group_connection",
        );
        step(store.delete_server("demo").await.unwrap(), "delete_server");
        assert_eq!(store.generation().await.unwrap(), last);
    })
    .await;
}

#[tokio::test]
async fn replica_heartbeats_are_one_row_each_replaced_removed_and_pruned() {
    each_backend(|store| async move {
        assert!(store.list_replicas().await.unwrap().is_empty());
        let generation = store.generation().await.unwrap();
        let beat = |id: &str, applied: i64, at: i64| ReplicaHeartbeat {
            replica_id: id.into(),
            applied_generation: applied,
            heartbeat_ms: at,
            started_ms: 1_000,
            version: "test".into(),
            listen: "127.0.0.1:0".into(),
        };
        store.report_replica(&beat("a", 7, 123_456)).await.unwrap();
        store.report_replica(&beat("b", 6, 2_000)).await.unwrap();
        store.report_replica(&beat("a", 8, 123_999)).await.unwrap();
        let mut rows = store.list_replicas().await.unwrap();
        rows.sort_by(|x, y| x.replica_id.cmp(&y.replica_id));
        let seen: Vec<(String, i64, i64)> = rows
            .iter()
            .map(|r| (r.replica_id.clone(), r.applied_generation, r.heartbeat_ms))
            .collect();
        assert_eq!(
            seen,
            vec![("a".into(), 8, 123_999), ("b".into(), 6, 2_000)],
            "one row per replica, the latest report wins"
        );
        assert_eq!(store.forget_replicas_before(10_000).await.unwrap(), 1);
        store.remove_replica("a").await.unwrap();
        assert!(store.list_replicas().await.unwrap().is_empty());
        assert_eq!(
            store.generation().await.unwrap(),
            generation,
            "heartbeats are not configuration"
        );
    })
    .await;
}

#[tokio::test]
async fn the_reload_report_is_absent_until_written_then_replaced() {
    each_backend(|store| async move {
        assert_eq!(store.reload_report().await.unwrap(), None);
        let first = ReloadReport {
            generation: 3,
            issues: vec![RecordIssue {
                record: "policy".into(),
                id: "p1".into(),
                reason: "bad spec".into(),
                effect: "every call of agent".into(),
            }],
            error: None,
        };
        store.report_reload(&first).await.unwrap();
        assert_eq!(store.reload_report().await.unwrap(), Some(first));
        let second = ReloadReport {
            generation: 4,
            issues: Vec::new(),
            error: Some("database locked".into()),
        };
        store.report_reload(&second).await.unwrap();
        assert_eq!(store.reload_report().await.unwrap(), Some(second));
    })
    .await;
}
