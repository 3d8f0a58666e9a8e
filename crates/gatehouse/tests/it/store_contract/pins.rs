//! Tool pins: what observing a definition does, and approving pending changes.

use super::*;
use gatehouse_model::records::{ToolObservation, ToolPin};

pub(super) fn seen(
    server: &str,
    tool: &str,
    hash: &str,
    suspicious: Option<&str>,
) -> ToolObservation {
    ToolObservation {
        server: server.into(),
        tool: tool.into(),
        hash: hash.into(),
        definition: format!(r#"{{"name":"{tool}","hash":"{hash}"}}"#),
        suspicious: suspicious.map(Into::into),
        at: 1_000,
    }
}

async fn pin(store: &DynStore, tool: &str) -> ToolPin {
    store
        .list_tool_pins()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.tool == tool)
        .unwrap_or_else(|| panic!("no pin for {tool}"))
}

#[tokio::test]
async fn observing_tools_moves_the_generation_only_when_the_pin_changes() {
    each_backend(|store| async move {
        store.insert_server(&server("demo")).await.unwrap();
        let first = store
            .observe_tool(&seen("demo", "echo", "h1", None))
            .await
            .unwrap();
        let first = first.expect("a first sighting is pinned");
        assert_eq!(store.generation().await.unwrap(), first);
        let p = pin(&store, "echo").await;
        assert_eq!(p.approved_hash.as_deref(), Some("h1"));
        assert_eq!(p.pending_hash, None);

        let same = store
            .observe_tool(&seen("demo", "echo", "h1", None))
            .await
            .unwrap();
        assert_eq!(same, None, "the approved definition again changes nothing");

        let changed = store
            .observe_tool(&seen("demo", "echo", "h2", None))
            .await
            .unwrap();
        assert!(changed.is_some_and(|g| g > first));
        let p = pin(&store, "echo").await;
        assert_eq!(p.approved_hash.as_deref(), Some("h1"));
        assert_eq!(p.pending_hash.as_deref(), Some("h2"));
        assert_eq!(p.pending_reason.as_deref(), Some("definition changed"));
        assert!(p.pending_definition.is_some_and(|d| d.contains("h2")));

        let again = store
            .observe_tool(&seen("demo", "echo", "h2", None))
            .await
            .unwrap();
        assert_eq!(
            again, None,
            "the same pending definition again changes nothing"
        );

        let back = store
            .observe_tool(&seen("demo", "echo", "h1", None))
            .await
            .unwrap();
        assert!(
            back.is_some(),
            "back to the approved definition clears the pending one"
        );
        let p = pin(&store, "echo").await;
        assert_eq!(
            (p.approved_hash.as_deref(), p.pending_hash),
            (Some("h1"), None)
        );
        assert_eq!((p.pending_definition, p.pending_reason), (None, None));
    })
    .await;
}

#[tokio::test]
async fn a_suspicious_first_sighting_is_pending_not_approved() {
    each_backend(|store| async move {
        store.insert_server(&server("demo")).await.unwrap();
        store
            .observe_tool(&seen("demo", "evil", "h1", Some("injection marker")))
            .await
            .unwrap()
            .expect("pinned");
        let p = pin(&store, "evil").await;
        assert_eq!(p.approved_hash, None);
        assert_eq!(p.pending_hash.as_deref(), Some("h1"));
        assert_eq!(p.pending_reason.as_deref(), Some("injection marker"));
        assert_eq!((p.first_seen, p.updated_at), (1_000, 1_000));
    })
    .await;
}

#[tokio::test]
async fn pins_are_listed_by_server_then_tool() {
    each_backend(|store| async move {
        for name in ["b", "a"] {
            store.insert_server(&server(name)).await.unwrap();
        }
        for (s, t) in [("b", "x"), ("a", "z"), ("a", "y")] {
            store.observe_tool(&seen(s, t, "h", None)).await.unwrap();
        }
        let order: Vec<_> = store
            .list_tool_pins()
            .await
            .unwrap()
            .into_iter()
            .map(|p| (p.server, p.tool))
            .collect();
        assert_eq!(
            order,
            [("a", "y"), ("a", "z"), ("b", "x")].map(|(s, t)| (s.to_string(), t.to_string()))
        );
    })
    .await;
}

#[tokio::test]
async fn approving_moves_pending_definitions_to_approved() {
    each_backend(|store| async move {
        store.insert_server(&server("demo")).await.unwrap();
        for tool in ["a", "b", "c"] {
            store
                .observe_tool(&seen("demo", tool, "h1", None))
                .await
                .unwrap();
            store
                .observe_tool(&seen("demo", tool, "h2", None))
                .await
                .unwrap();
        }
        let before = store.generation().await.unwrap();
        let (generation, approved) = store
            .approve_tools("demo", &["a".into()], 2_000)
            .await
            .unwrap();
        assert!(generation > before);
        assert_eq!(approved, 1);
        let a = pin(&store, "a").await;
        assert_eq!(
            (a.approved_hash.as_deref(), a.pending_hash),
            (Some("h2"), None)
        );
        assert_eq!(a.updated_at, 2_000);
        assert_eq!(pin(&store, "b").await.pending_hash.as_deref(), Some("h2"));

        let (_, approved) = store.approve_tools("demo", &[], 3_000).await.unwrap();
        assert_eq!(approved, 2, "no names: every pending change of the server");
        assert!(
            store
                .list_tool_pins()
                .await
                .unwrap()
                .iter()
                .all(|p| p.pending_hash.is_none() && p.approved_hash.as_deref() == Some("h2"))
        );
    })
    .await;
}

#[tokio::test]
async fn approving_a_tool_with_nothing_pending_approves_nothing() {
    each_backend(|store| async move {
        store.insert_server(&server("demo")).await.unwrap();
        store
            .observe_tool(&seen("demo", "a", "h1", None))
            .await
            .unwrap();
        store
            .observe_tool(&seen("demo", "a", "h2", None))
            .await
            .unwrap();
        store
            .observe_tool(&seen("demo", "b", "h1", None))
            .await
            .unwrap();
        let generation = store.generation().await.unwrap();

        // `a` is pending and `b` is not: the whole approval fails, `a` stays pending.
        assert_not_found(
            store
                .approve_tools("demo", &["a".into(), "b".into()], 2_000)
                .await,
            "pending tool change",
            "demo/b",
        );
        assert_eq!(pin(&store, "a").await.pending_hash.as_deref(), Some("h2"));
        assert_eq!(store.generation().await.unwrap(), generation);
        assert_not_found(
            store.approve_tools("ghost", &[], 1).await,
            "server",
            "ghost",
        );
    })
    .await;
}

#[tokio::test]
async fn rejecting_discards_the_pending_definition_and_keeps_the_approved_one() {
    each_backend(|store| async move {
        store.insert_server(&server("demo")).await.unwrap();
        store
            .observe_tool(&seen("demo", "echo", "h1", None))
            .await
            .unwrap();
        store
            .observe_tool(&seen("demo", "echo", "h2", None))
            .await
            .unwrap();
        store
            .observe_tool(&seen("demo", "fresh", "f1", Some("hidden instructions")))
            .await
            .unwrap();
        let before = store.generation().await.unwrap();
        let named = store
            .reject_tools("demo", &["nope".into()], 2_000)
            .await
            .unwrap_err();
        assert!(matches!(named, StoreError::NotFound { .. }), "{named:?}");
        assert_eq!(
            store.generation().await.unwrap(),
            before,
            "a refused reject changes nothing"
        );

        let (generation, rejected) = store.reject_tools("demo", &[], 2_000).await.unwrap();
        assert_eq!(rejected, 2);
        assert!(generation > before);
        let echo = pin(&store, "echo").await;
        assert_eq!(
            echo.approved_hash.as_deref(),
            Some("h1"),
            "the approved stays"
        );
        assert_eq!((echo.pending_hash, echo.pending_definition), (None, None));
        let fresh = pin(&store, "fresh").await;
        assert_eq!(
            (fresh.approved_hash, fresh.pending_hash),
            (None, None),
            "a tool never approved stays unapproved"
        );

        let again = store
            .observe_tool(&seen("demo", "echo", "h2", None))
            .await
            .unwrap();
        assert!(
            again.is_some(),
            "the rejected definition seen again is held again"
        );
        assert_eq!(
            pin(&store, "echo").await.pending_hash.as_deref(),
            Some("h2")
        );
    })
    .await;
}

#[tokio::test]
async fn the_approved_definition_is_kept_for_review_and_follows_approval_and_rejection() {
    each_backend(|store| async move {
        store.insert_server(&server("demo")).await.unwrap();
        store
            .observe_tool(&seen("demo", "echo", "h1", None))
            .await
            .unwrap();
        let p = pin(&store, "echo").await;
        assert_eq!(
            p.approved_definition.as_deref(),
            Some(r#"{"name":"echo","hash":"h1"}"#),
            "trusted on first sight: the definition is kept with its hash"
        );

        store
            .observe_tool(&seen("demo", "echo", "h2", None))
            .await
            .unwrap();
        let held = pin(&store, "echo").await;
        assert!(
            held.approved_definition
                .as_deref()
                .is_some_and(|d| d.contains("h1"))
        );
        assert!(
            held.pending_definition
                .as_deref()
                .is_some_and(|d| d.contains("h2"))
        );

        store.reject_tools("demo", &[], 2_000).await.unwrap();
        let p = pin(&store, "echo").await;
        assert!(
            p.approved_definition
                .as_deref()
                .is_some_and(|d| d.contains("h1"))
        );

        store
            .observe_tool(&seen("demo", "echo", "h3", None))
            .await
            .unwrap();
        store.approve_tools("demo", &[], 3_000).await.unwrap();
        let p = pin(&store, "echo").await;
        assert_eq!(p.approved_hash.as_deref(), Some("h3"));
        assert!(
            p.approved_definition
                .as_deref()
                .is_some_and(|d| d.contains("h3"))
        );

        // A suspicious first sighting is approved from pending, its definition kept too.
        store
            .observe_tool(&seen("demo", "odd", "s1", Some("injection marker")))
            .await
            .unwrap();
        assert_eq!(pin(&store, "odd").await.approved_definition, None);
        store
            .approve_tools("demo", &["odd".to_owned()], 4_000)
            .await
            .unwrap();
        let p = pin(&store, "odd").await;
        assert!(
            p.approved_definition
                .as_deref()
                .is_some_and(|d| d.contains("s1"))
        );
    })
    .await;
}
