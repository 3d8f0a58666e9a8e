//! Sessions, task owners, single-use ids and pin holds: what belongs to whom.

use gatehouse::state::{ServerPins, SessionCheck};
use std::sync::Arc;

use super::{client, each_backend};

#[tokio::test]
async fn a_session_is_its_owners_within_the_cap_until_removed() {
    each_backend(|state| async move {
        let server: Arc<str> = Arc::from("demo");
        let sessions = &state.sessions;
        assert_eq!(sessions.bind(&server, "s1", client("alice"), 1).await, 0);
        assert_eq!(
            sessions.check("demo", "s1", client("alice"), 2).await,
            SessionCheck::Owned
        );
        for (server, id, who) in [
            ("demo", "s1", "mallory"),
            ("other", "s1", "alice"),
            ("demo", "s2", "alice"),
        ] {
            assert_eq!(
                sessions.check(server, id, client(who), 2).await,
                SessionCheck::NotFound,
                "{server} {id} {who}"
            );
        }
        sessions.bind(&server, "s2", client("alice"), 3).await;
        assert_eq!(
            sessions.bind(&server, "s3", client("alice"), 4).await,
            1,
            "over the cap of 2"
        );
        assert_eq!(
            sessions.check("demo", "s1", client("alice"), 5).await,
            SessionCheck::NotFound,
            "the least recently used went"
        );
        sessions.remove("demo", "s3").await;
        assert_eq!(
            sessions.check("demo", "s3", client("alice"), 6).await,
            SessionCheck::NotFound
        );
        assert_eq!(
            sessions.check("demo", "s2", client("alice"), 6).await,
            SessionCheck::Owned
        );
    })
    .await;
}

#[tokio::test]
async fn a_session_is_live_until_removed_or_dropped_for_the_cap() {
    each_backend(|state| async move {
        let server: Arc<str> = Arc::from("demo");
        let sessions = &state.sessions;
        assert!(!sessions.is_live("demo", "s1").await, "never bound");
        for (id, at) in [("s1", 1), ("s2", 2)] {
            sessions.bind(&server, id, client("alice"), at).await;
            assert!(sessions.is_live("demo", id).await, "{id} bound");
        }
        assert!(!sessions.is_live("other", "s1").await, "another server's");
        sessions.bind(&server, "s3", client("alice"), 3).await;
        assert!(
            !sessions.is_live("demo", "s1").await,
            "dropped for the cap of 2"
        );
        sessions.remove("demo", "s3").await;
        assert!(!sessions.is_live("demo", "s3").await, "removed");
        assert!(sessions.is_live("demo", "s2").await, "untouched");
    })
    .await;
}

#[tokio::test]
async fn a_task_is_its_creators_until_it_expires() {
    each_backend(|state| async move {
        let now = gatehouse::now_ms();
        let tasks = &state.tasks;
        tasks
            .record("demo", "t1", client("alice"), Some("echo"), now + 60_000)
            .await;
        tasks
            .record("demo", "gone", client("alice"), None, now - 1)
            .await;
        assert_eq!(
            tasks.owned_by("demo", "t1", client("alice"), now).await,
            Some(gatehouse::state::TaskOrigin {
                tool: Some("echo".into())
            }),
            "the tool that created it is kept"
        );
        assert!(tasks.owned_here("demo", "t1", client("alice"), now));
        assert!(
            tasks
                .owned_by("demo", "t1", client("mallory"), now)
                .await
                .is_none()
        );
        assert!(
            tasks
                .owned_by("other", "t1", client("alice"), now)
                .await
                .is_none()
        );
        assert!(
            tasks
                .owned_by("demo", "gone", client("alice"), now)
                .await
                .is_none(),
            "expired"
        );
    })
    .await;
}

#[tokio::test]
async fn an_id_is_used_once_until_it_expires() {
    each_backend(|state| async move {
        let now = jiff::Timestamp::now().as_second();
        let replay = &state.client_assertions;
        assert_eq!(replay.first_use("c\0j1", now + 60, now).await, Ok(true));
        assert_eq!(replay.first_use("c\0j1", now + 60, now).await, Ok(false));
        assert_eq!(replay.first_use("c\0j2", now + 60, now).await, Ok(true));
    })
    .await;
}

#[tokio::test]
async fn a_hold_lasts_until_the_snapshot_records_the_definition() {
    each_backend(|state| async move {
        let mut pins = ServerPins::default();
        pins.approved.insert("echo".into(), Some("old".into()));
        state.pins.hold("demo", "echo", "new");
        assert!(state.pins.is_held("demo", "echo", &pins));
        assert!(!state.pins.is_held("demo", "sum", &pins));
        pins.pending.insert("echo".into());
        state.pins.forget_recorded("demo", &pins);
        pins.pending.clear();
        assert!(
            !state.pins.is_held("demo", "echo", &pins),
            "recorded: forgotten"
        );
    })
    .await;
}
