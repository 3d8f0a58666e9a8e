//! Servers, clients, connections, policies and quota counters.

use super::*;
use gatehouse_model::records::{QuotaDelta, QuotaUsage};

#[tokio::test]
async fn servers_are_listed_by_name_and_read_back_whole() {
    each_backend(|store| async move {
        let before = store.generation().await.unwrap();
        let first = store.insert_server(&server("zeta")).await.unwrap();
        assert!(first > before, "insert_server moves the generation");
        let second = store.insert_server(&server("alpha")).await.unwrap();
        assert!(second > first);
        assert_eq!(store.generation().await.unwrap(), second);

        let listed = store.list_servers().await.unwrap();
        assert_eq!(listed, vec![server("alpha"), server("zeta")]);
        assert_eq!(store.get_server("zeta").await.unwrap(), server("zeta"));
        assert_not_found(store.get_server("missing").await, "server", "missing");
    })
    .await;
}

#[tokio::test]
async fn a_stdio_servers_settings_and_sealed_environment_read_back_and_can_be_removed() {
    use gatehouse_model::records::{Sharing, StdioLimits, StdioSettings};
    each_backend(|store| async move {
        let stdio = StdioSettings {
            command: "npx".into(),
            args: vec![
                "-y".into(),
                "@modelcontextprotocol/server-everything".into(),
            ],
            env_names: vec!["API_KEY".into()],
            env_sealed: Some(vec![1, 2, 3, 250]),
            cwd: Some("/srv/mcp".into()),
            sharing: Sharing::PerPrincipal,
            max_children: Some(4),
            idle_timeout_secs: Some(600),
            limits: StdioLimits {
                memory_bytes: Some(1 << 30),
                open_files: Some(256),
                ..StdioLimits::default()
            },
        };
        let local = ServerRecord {
            url: "stdio://local".into(),
            stdio: Some(stdio.clone()),
            ..server("local")
        };
        store.insert_server(&local).await.unwrap();
        assert_eq!(store.get_server("local").await.unwrap(), local);
        let shared = ServerRecord {
            stdio: Some(StdioSettings {
                sharing: Sharing::Shared,
                env_sealed: None,
                env_names: vec![],
                ..stdio
            }),
            ..local.clone()
        };
        store.update_server(&shared).await.unwrap();
        assert_eq!(store.get_server("local").await.unwrap(), shared);
        // Made an HTTP server again: nothing of the program stays.
        store.update_server(&server("local")).await.unwrap();
        assert_eq!(store.get_server("local").await.unwrap(), server("local"));
    })
    .await;
}

#[tokio::test]
async fn a_virtual_servers_members_read_back_in_order_and_can_be_removed() {
    each_backend(|store| async move {
        let aggregate = ServerRecord {
            url: "virtual://tools".into(),
            members: vec!["zeta".into(), "alpha".into()],
            ..server("tools")
        };
        store.insert_server(&aggregate).await.unwrap();
        assert_eq!(store.get_server("tools").await.unwrap(), aggregate);
        let changed = ServerRecord {
            members: vec!["alpha".into()],
            ..aggregate
        };
        store.update_server(&changed).await.unwrap();
        assert_eq!(store.list_servers().await.unwrap(), vec![changed]);
        // Given an upstream again: no member stays.
        store.update_server(&server("tools")).await.unwrap();
        assert_eq!(store.get_server("tools").await.unwrap(), server("tools"));
    })
    .await;
}

#[tokio::test]
async fn a_second_server_of_the_same_name_is_a_conflict_and_changes_nothing() {
    each_backend(|store| async move {
        store.insert_server(&server("demo")).await.unwrap();
        let generation = store.generation().await.unwrap();
        let other = ServerRecord {
            url: "http://elsewhere/mcp".into(),
            ..server("demo")
        };
        assert_conflict(store.insert_server(&other).await, "server", "demo");
        assert_eq!(store.get_server("demo").await.unwrap(), server("demo"));
        assert_eq!(store.generation().await.unwrap(), generation);
    })
    .await;
}

#[tokio::test]
async fn updating_a_server_replaces_its_settings_and_keeps_its_connections() {
    each_backend(|store| async move {
        store.insert_server(&server("demo")).await.unwrap();
        store.insert_client(&client("agent")).await.unwrap();
        store
            .upsert_connection(&connection("agent", "demo"))
            .await
            .unwrap();
        let before = store.generation().await.unwrap();
        let changed = ServerRecord {
            url: "http://moved/mcp".into(),
            credential_header: None,
            credential_sealed: None,
            allow_anonymous: true,
            allow_unknown_methods: false,
            pin_action: gatehouse_model::pin_action::PinAction::Off,
            // Not a setting: the stored creation time stays.
            created_at: 99,
            ..server("demo")
        };
        let generation = store.update_server(&changed).await.unwrap();
        assert!(generation > before, "update_server moves the generation");
        let read = store.get_server("demo").await.unwrap();
        assert_eq!(
            read,
            ServerRecord {
                created_at: server("demo").created_at,
                ..changed.clone()
            }
        );
        assert_eq!(store.list_connections().await.unwrap().len(), 1);
        let missing = ServerRecord {
            name: "missing".into(),
            ..changed
        };
        assert_not_found(store.update_server(&missing).await, "server", "missing");
        assert_eq!(store.generation().await.unwrap(), generation);
    })
    .await;
}

#[tokio::test]
async fn a_servers_upstream_auth_is_kept_on_insert_and_update_and_cleared_on_update() {
    use gatehouse_model::upstream_auth::{
        UpstreamAuthRecord, UpstreamAuthSpec, UpstreamClientAuth,
    };
    each_backend(|store| async move {
        let auth = UpstreamAuthRecord {
            spec: Some(UpstreamAuthSpec::ClientCredentials {
                token_endpoint: "https://as.internal/token".into(),
                client_id: "gatehouse".into(),
                auth_method: UpstreamClientAuth::ClientSecretBasic,
                scope: Some("files:read files:write".into()),
                resource: Some("https://files.internal/mcp".into()),
            }),
            secret_sealed: Some(vec![9, 8, 7, 0, 255]),
            identity_header: Some("x-gatehouse-identity".into()),
            unreadable: None,
        };
        let with_auth = ServerRecord {
            upstream_auth: auth.clone(),
            ..server("files")
        };
        store.insert_server(&with_auth).await.unwrap();
        assert_eq!(store.get_server("files").await.unwrap(), with_auth);

        let header_only = ServerRecord {
            upstream_auth: UpstreamAuthRecord {
                identity_header: Some("x-caller".into()),
                ..UpstreamAuthRecord::default()
            },
            ..server("files")
        };
        store.update_server(&header_only).await.unwrap();
        assert_eq!(store.get_server("files").await.unwrap(), header_only);
        assert_eq!(store.list_servers().await.unwrap(), vec![header_only]);
    })
    .await;
}

#[tokio::test]
async fn deleting_a_server_removes_its_connections_pins_and_group_connections() {
    each_backend(|store| async move {
        for name in ["demo", "other"] {
            store.insert_server(&server(name)).await.unwrap();
        }
        store.insert_client(&client("agent")).await.unwrap();
        for name in ["demo", "other"] {
            store
                .upsert_connection(&connection("agent", name))
                .await
                .unwrap();
            store
                .upsert_group_connection(&group_connection("staff", name))
                .await
                .unwrap();
            store
                .observe_tool(&super::pins::seen(name, "echo", "h1", None))
                .await
                .unwrap();
        }
        store
            .insert_policy(&policy("p1", None, Some("demo")))
            .await
            .unwrap();
        let before = store.generation().await.unwrap();
        let generation = store.delete_server("demo").await.unwrap();
        assert!(generation > before, "delete_server moves the generation");

        assert_not_found(store.get_server("demo").await, "server", "demo");
        let connections = store.list_connections().await.unwrap();
        assert_eq!(connections, vec![connection("agent", "other")]);
        let groups = store.list_group_connections().await.unwrap();
        assert_eq!(groups, vec![group_connection("staff", "other")]);
        let pins = store.list_tool_pins().await.unwrap();
        assert_eq!(
            pins.iter().map(|p| p.server.as_str()).collect::<Vec<_>>(),
            ["other"]
        );
        // Policies name their scope by text and are not cascaded: the snapshot reports a
        // policy whose server is gone.
        assert_eq!(store.list_policies().await.unwrap().len(), 1);
        assert_not_found(store.delete_server("demo").await, "server", "demo");
        assert_eq!(store.generation().await.unwrap(), generation);
    })
    .await;
}

#[tokio::test]
async fn clients_are_listed_by_name_with_their_oauth_metadata() {
    each_backend(|store| async move {
        let with_oauth = ClientRecord {
            oauth: Some(oauth_metadata()),
            disabled_at: Some(7),
            ..client("web")
        };
        let before = store.generation().await.unwrap();
        let generation = store.insert_client(&with_oauth).await.unwrap();
        assert!(generation > before);
        store.insert_client(&client("cli")).await.unwrap();
        assert_eq!(
            store.list_clients().await.unwrap(),
            vec![client("cli"), with_oauth.clone()]
        );
        assert_eq!(store.get_client("web").await.unwrap(), with_oauth);
        assert_not_found(store.get_client("missing").await, "client", "missing");
        assert_conflict(store.insert_client(&client("cli")).await, "client", "cli");
    })
    .await;
}

#[tokio::test]
async fn a_client_description_is_replaced_and_moves_the_generation() {
    each_backend(|store| async move {
        store.insert_client(&client("agent")).await.unwrap();
        let before = store.generation().await.unwrap();
        let changed = store
            .set_client_description("agent", "the billing agent")
            .await
            .unwrap();
        assert!(changed > before);
        assert_eq!(
            store.get_client("agent").await.unwrap().description,
            "the billing agent"
        );
        assert_not_found(
            store.set_client_description("missing", "x").await,
            "client",
            "missing",
        );
    })
    .await;
}

#[tokio::test]
async fn disabling_a_client_is_recorded_cleared_and_moves_the_generation() {
    each_backend(|store| async move {
        store.insert_client(&client("agent")).await.unwrap();
        let before = store.generation().await.unwrap();
        let disabled = store.set_client_disabled("agent", Some(42)).await.unwrap();
        assert!(disabled > before);
        assert_eq!(
            store.get_client("agent").await.unwrap().disabled_at,
            Some(42)
        );
        let enabled = store.set_client_disabled("agent", None).await.unwrap();
        assert!(enabled > disabled);
        assert_eq!(store.get_client("agent").await.unwrap().disabled_at, None);
        assert_not_found(
            store.set_client_disabled("missing", Some(1)).await,
            "client",
            "missing",
        );
    })
    .await;
}

#[tokio::test]
async fn deleting_a_client_takes_its_keys_and_connections_with_it() {
    each_backend(|store| async move {
        store.insert_server(&server("demo")).await.unwrap();
        for name in ["agent", "other"] {
            store.insert_client(&client(name)).await.unwrap();
            store
                .insert_api_key(&api_key(&format!("k-{name}"), name, 10))
                .await
                .unwrap();
            store
                .upsert_connection(&connection(name, "demo"))
                .await
                .unwrap();
        }
        let before = store.generation().await.unwrap();
        let deleted = store.delete_client("agent").await.unwrap();
        assert!(deleted > before);
        assert_not_found(store.get_client("agent").await, "client", "agent");
        assert_not_found(store.get_api_key("k-agent").await, "API key", "k-agent");
        let connections = store.list_connections().await.unwrap();
        assert_eq!(connections.len(), 1, "{connections:?}");
        assert_eq!(connections[0].client, "other");
        assert!(store.get_api_key("k-other").await.is_ok(), "others stay");
        assert_not_found(store.delete_client("agent").await, "client", "agent");
    })
    .await;
}

#[tokio::test]
async fn connections_are_upserted_listed_in_order_and_deleted() {
    each_backend(|store| async move {
        for name in ["b-server", "a-server"] {
            store.insert_server(&server(name)).await.unwrap();
        }
        for name in ["zed", "amy"] {
            store.insert_client(&client(name)).await.unwrap();
        }
        for (c, s) in [
            ("zed", "a-server"),
            ("amy", "b-server"),
            ("amy", "a-server"),
        ] {
            let before = store.generation().await.unwrap();
            let generation = store.upsert_connection(&connection(c, s)).await.unwrap();
            assert!(generation > before);
        }
        let replaced = ConnectionRecord {
            tools: vec!["only_this".into()],
            resources: false,
            prompts: true,
            created_at: 77,
            ..connection("amy", "b-server")
        };
        store.upsert_connection(&replaced).await.unwrap();
        let listed = store.list_connections().await.unwrap();
        assert_eq!(
            listed,
            vec![
                connection("amy", "a-server"),
                // Replaced in place: the first creation time stays.
                ConnectionRecord {
                    created_at: connection("amy", "b-server").created_at,
                    ..replaced
                },
                connection("zed", "a-server"),
            ]
        );

        assert_not_found(
            store
                .upsert_connection(&connection("ghost", "a-server"))
                .await,
            "client",
            "ghost",
        );
        assert_not_found(
            store.upsert_connection(&connection("amy", "ghost")).await,
            "server",
            "ghost",
        );
        let before = store.generation().await.unwrap();
        let generation = store.delete_connection("zed", "a-server").await.unwrap();
        assert!(generation > before);
        assert_eq!(store.list_connections().await.unwrap().len(), 2);
        assert!(matches!(
            store.delete_connection("zed", "a-server").await,
            Err(StoreError::NotFound {
                kind: "connection",
                ..
            })
        ));
        assert_eq!(store.generation().await.unwrap(), generation);
    })
    .await;
}

#[tokio::test]
async fn policies_are_listed_by_id_and_need_their_scope_to_exist() {
    each_backend(|store| async move {
        store.insert_server(&server("demo")).await.unwrap();
        store.insert_client(&client("agent")).await.unwrap();
        let before = store.generation().await.unwrap();
        let generation = store
            .insert_policy(&policy("p2", Some("agent"), Some("demo")))
            .await
            .unwrap();
        assert!(generation > before);
        store
            .insert_policy(&policy("p1", None, None))
            .await
            .unwrap();
        assert_eq!(
            store.list_policies().await.unwrap(),
            vec![
                policy("p1", None, None),
                policy("p2", Some("agent"), Some("demo"))
            ]
        );
        assert_conflict(
            store.insert_policy(&policy("p1", None, None)).await,
            "policy",
            "p1",
        );
        assert_not_found(
            store
                .insert_policy(&policy("p3", Some("ghost"), None))
                .await,
            "client",
            "ghost",
        );
        assert_not_found(
            store
                .insert_policy(&policy("p3", None, Some("ghost")))
                .await,
            "server",
            "ghost",
        );
        assert_eq!(store.list_policies().await.unwrap().len(), 2);
    })
    .await;
}

fn usage(policy_id: &str, subject: &str, used: i64) -> QuotaUsage {
    QuotaUsage {
        policy_id: policy_id.into(),
        subject: subject.into(),
        window_start: 10_000,
        used,
    }
}

fn delta(policy_id: &str, subject: &str, window_start: i64, delta: i64) -> QuotaDelta {
    QuotaDelta {
        policy_id: policy_id.into(),
        subject: subject.into(),
        window_start,
        delta,
    }
}

fn sorted(mut usage: Vec<QuotaUsage>) -> Vec<QuotaUsage> {
    usage.sort_by(|a, b| (&a.policy_id, &a.subject).cmp(&(&b.policy_id, &b.subject)));
    usage
}

#[tokio::test]
async fn quota_usage_is_added_without_a_reload_and_dropped_with_its_policy() {
    each_backend(|store| async move {
        for id in ["p1", "p2"] {
            store.insert_policy(&policy(id, None, None)).await.unwrap();
        }
        assert!(store.load_quota_usage().await.unwrap().is_empty());
        let generation = store.generation().await.unwrap();
        store
            .add_quota_usage(&[
                delta("p1", "agent", 10_000, 3),
                delta("p2", "agent", 10_000, 2),
            ])
            .await
            .unwrap();
        store
            .add_quota_usage(&[
                delta("p1", "agent", 20_000, 1),
                delta("p2", "agent", 10_000, 3),
            ])
            .await
            .unwrap();
        store.add_quota_usage(&[]).await.unwrap();
        assert_eq!(
            sorted(store.load_quota_usage().await.unwrap()),
            vec![
                QuotaUsage {
                    window_start: 20_000,
                    ..usage("p1", "agent", 1)
                },
                usage("p2", "agent", 5),
            ]
        );
        assert_eq!(
            store.generation().await.unwrap(),
            generation,
            "quota counters are not configuration"
        );

        let deleted = store.delete_policy("p1").await.unwrap();
        assert!(deleted > generation);
        assert_eq!(
            store.load_quota_usage().await.unwrap(),
            vec![usage("p2", "agent", 5)]
        );
        assert_eq!(
            store.list_policies().await.unwrap(),
            vec![policy("p2", None, None)]
        );
        assert_not_found(store.delete_policy("p1").await, "policy", "p1");
    })
    .await;
}

#[tokio::test]
async fn quota_deltas_add_up_in_their_window_only_and_never_below_zero() {
    each_backend(|store| async move {
        let used = || async {
            let rows = store.load_quota_usage().await.unwrap();
            rows.into_iter()
                .map(|r| (r.window_start, r.used))
                .collect::<Vec<_>>()
        };
        // Two servers sharing the store, each adding what it counted.
        store
            .add_quota_usage(&[delta("p", "agent", 100, 3)])
            .await
            .unwrap();
        store
            .add_quota_usage(&[delta("p", "agent", 100, 2)])
            .await
            .unwrap();
        assert_eq!(used().await, vec![(100, 5)]);
        store
            .add_quota_usage(&[delta("p", "agent", 200, 1)])
            .await
            .unwrap();
        assert_eq!(used().await, vec![(200, 1)], "a new window starts afresh");
        store
            .add_quota_usage(&[delta("p", "agent", 100, 7)])
            .await
            .unwrap();
        assert_eq!(
            used().await,
            vec![(200, 1)],
            "a late delta of a spent window"
        );
        store
            .add_quota_usage(&[delta("p", "agent", 200, -3)])
            .await
            .unwrap();
        assert_eq!(used().await, vec![(200, 0)], "refunds never go below zero");
    })
    .await;
}
