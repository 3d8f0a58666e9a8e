//! Several replicas on one store: each writes its own heartbeat row, and a change counts as
//! applied only once every live replica has applied it.

use gatehouse::{
    Config, RunningServer,
    app::StartError,
    replicas::{ReplicaError, wait_until_applied},
    secrets::Keyring,
    store::{self, DynStore},
};
use gatehouse_model::records::{ClientRecord, Generation, ReplicaHeartbeat};
use std::{sync::Arc, time::Duration};

use crate::helpers::TestApp;

/// A poll interval no test outlives: the replica applies changes only when told to.
const NEVER: Duration = Duration::from_secs(3_600);

/// Starts another server on `app`'s data directory, with its own store connection.
async fn replica_beside(
    app: &TestApp,
    adjust: impl FnOnce(&mut Config),
) -> Result<RunningServer, StartError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config {
        listen: addr,
        public_url: format!("http://{addr}"),
        ..app.config.clone()
    };
    adjust(&mut config);
    let store = store::open(&config.database_url()).await.unwrap();
    let keyring = Arc::new(Keyring::load_or_create(&config.data_dir).unwrap());
    gatehouse::app::start_with(config, store, keyring, Some(listener)).await
}

/// Waits (10 s at most) until `pred` holds for the heartbeat rows.
async fn rows_until(
    store: &DynStore,
    what: &str,
    pred: impl Fn(&[ReplicaHeartbeat]) -> bool,
) -> Vec<ReplicaHeartbeat> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = store.list_replicas().await.unwrap();
        if pred(&rows) {
            return rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} not seen within 10 s: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn row<'a>(rows: &'a [ReplicaHeartbeat], id: &str) -> Option<&'a ReplicaHeartbeat> {
    rows.iter().find(|r| r.replica_id == id)
}

fn ids(rows: &[ReplicaHeartbeat]) -> Vec<&str> {
    rows.iter().map(|r| r.replica_id.as_str()).collect()
}

async fn change(store: &DynStore, name: &str) -> Generation {
    store
        .insert_client(&ClientRecord {
            name: name.into(),
            description: String::new(),
            disabled_at: None,
            created_at: gatehouse::now_ms(),
            oauth: None,
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_change_is_applied_only_once_every_replica_has_applied_it() {
    let a = TestApp::start().await;
    let b = replica_beside(&a, |c| c.snapshot.poll_interval = NEVER)
        .await
        .unwrap();
    let (id_a, id_b) = (a.server.replica_id.clone(), b.replica_id.clone());
    assert_ne!(id_a, id_b, "each process has its own replica id");
    rows_until(&a.store, "both replicas", |rows| {
        row(rows, &id_a).is_some() && row(rows, &id_b).is_some()
    })
    .await;

    let generation = change(&a.store, "agent").await;
    // `a` polls and applies it; `b` does not poll, but its heartbeat keeps coming.
    let rows = rows_until(&a.store, "a at the new generation", |rows| {
        row(rows, &id_a).is_some_and(|r| r.applied_generation >= generation)
    })
    .await;
    let b_before = row(&rows, &id_b).unwrap().heartbeat_ms;
    let progress = wait_until_applied(&*a.store, generation, Duration::ZERO)
        .await
        .unwrap();
    assert!(!progress.complete(), "b has not applied it: {progress:?}");
    assert_eq!(ids(&progress.behind), [id_b.as_str()]);
    assert_eq!(ids(&progress.applied), [id_a.as_str()]);
    rows_until(&a.store, "b's next heartbeat", |rows| {
        row(rows, &id_b).is_some_and(|r| r.heartbeat_ms > b_before)
    })
    .await;
    assert!(
        !wait_until_applied(&*a.store, generation, Duration::ZERO)
            .await
            .unwrap()
            .complete(),
        "a heartbeat alone does not make b current"
    );

    b.state.snapshot.reload().await.unwrap();
    let progress = wait_until_applied(&*a.store, generation, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(progress.complete(), "{progress:?}");
    assert_eq!(progress.applied.len(), 2, "{progress:?}");
    b.shutdown().await;
}

#[tokio::test]
async fn a_replica_stopped_gracefully_removes_its_row_and_no_longer_blocks() {
    let a = TestApp::start().await;
    let b = replica_beside(&a, |c| c.snapshot.poll_interval = NEVER)
        .await
        .unwrap();
    let (id_a, id_b) = (a.server.replica_id.clone(), b.replica_id.clone());
    rows_until(&a.store, "both rows", |rows| {
        row(rows, &id_a).is_some() && row(rows, &id_b).is_some()
    })
    .await;
    let generation = change(&a.store, "agent").await;

    b.shutdown().await;
    let rows = a.store.list_replicas().await.unwrap();
    assert_eq!(ids(&rows), [id_a.as_str()], "b's row is gone");
    let progress = wait_until_applied(&*a.store, generation, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(progress.complete(), "{progress:?}");
    assert!(progress.stale.is_empty(), "{progress:?}");
}

#[tokio::test]
async fn a_replica_without_a_recent_heartbeat_is_ignored_and_reported() {
    let a = TestApp::start().await;
    let id_a = a.server.replica_id.clone();
    rows_until(&a.store, "a's row", |rows| row(rows, &id_a).is_some()).await;
    let silent = gatehouse::now_ms() - 60_000;
    a.store
        .report_replica(&ReplicaHeartbeat {
            replica_id: "crashed".into(),
            applied_generation: 0,
            heartbeat_ms: silent,
            started_ms: silent - 1_000,
            version: "0.0.0".into(),
            listen: "127.0.0.1:9".into(),
        })
        .await
        .unwrap();
    let generation = change(&a.store, "agent").await;
    let progress = wait_until_applied(&*a.store, generation, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(progress.complete(), "{progress:?}");
    assert_eq!(ids(&progress.stale), ["crashed"]);
    assert_eq!(ids(&progress.applied), [id_a.as_str()]);
}

#[tokio::test]
async fn a_replica_has_its_row_before_it_serves() {
    let a = TestApp::start().await;
    // Written while starting, before the snapshot was loaded: a change stored while this
    // replica starts is waited for (the periodic heartbeat comes only once it runs).
    let rows = a.store.list_replicas().await.unwrap();
    assert!(
        row(&rows, &a.server.replica_id).is_some(),
        "no row once started: {rows:?}"
    );
}

#[tokio::test]
async fn a_start_that_fails_takes_its_row_back() {
    let a = TestApp::start().await;
    // No listener handed over, so it binds `listen`: the address `a` holds.
    let config = Config {
        listen: a.server.addr,
        ..a.config.clone()
    };
    let store = store::open(&config.database_url()).await.unwrap();
    let keyring = Arc::new(Keyring::load_or_create(&config.data_dir).unwrap());
    let failed = gatehouse::app::start_with(config, store, keyring, None).await;
    assert!(
        matches!(failed, Err(StartError::Bind { .. })),
        "{:?}",
        failed.as_ref().map(|s| &s.replica_id)
    );
    let rows = a.store.list_replicas().await.unwrap();
    assert_eq!(ids(&rows), [a.server.replica_id.as_str()], "{rows:?}");
}

#[tokio::test]
async fn two_live_replicas_cannot_share_a_configured_id() {
    let a = TestApp::start_with(|c| c.replica_id = Some("gw".into())).await;
    assert_eq!(a.server.replica_id, "gw");
    let refused = replica_beside(&a, |_| {}).await;
    assert!(
        matches!(
            refused,
            Err(StartError::Replica(ReplicaError::InUse(ref id))) if id == "gw"
        ),
        "a second live \"gw\" must not start: {:?}",
        refused.as_ref().map(|s| &s.replica_id)
    );
    a.server.shutdown().await;
}
