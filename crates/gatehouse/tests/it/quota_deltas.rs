//! Quota usage is written back as deltas: servers sharing one store add up their calls
//! instead of overwriting each other's counts, and a restart starts from the sum. (What the
//! store does with a delta is in the store contract suite.)

use gatehouse::{
    policy::{self, Facts, PolicyRuntime},
    store::DynStore,
};
use gatehouse_model::records::PolicyRecord;
use serde_json::json;
use std::sync::Arc;

async fn store() -> (crate::helpers::TestDb, DynStore) {
    let db = crate::helpers::TestDb::new();
    let store = db.open().await;
    (db, store)
}

fn daily(limit: u64) -> PolicyRecord {
    PolicyRecord {
        id: "daily".into(),
        kind: "quota".into(),
        client: None,
        server: None,
        tools: None,
        spec: json!({ "limit": limit, "window": "day", "time_zone": "UTC" }),
        created_at: 0,
    }
}

fn call_at(now: jiff::Timestamp) -> Facts<'static> {
    Facts {
        client: Some("agent"),
        key_id: None,
        user: None,
        ip: std::net::IpAddr::from([192, 0, 2, 1]),
        server: "demo",
        tool: Some("echo"),
        arguments: None,
        now,
    }
}

/// A server's view: its own counters, started from what the store holds.
async fn replica(
    store: &DynStore,
    limit: u64,
) -> (PolicyRuntime, Vec<Arc<policy::CompiledPolicy>>) {
    let runtime = PolicyRuntime::default();
    runtime.preload(store.load_quota_usage().await.unwrap());
    let compiled = Arc::new(policy::compile(&daily(limit), &runtime).unwrap());
    (runtime, vec![compiled])
}

#[tokio::test]
async fn replicas_sharing_a_store_add_up_and_a_restart_starts_from_the_sum() {
    let (_dir, store) = store().await;
    let now = jiff::Timestamp::now();
    let (first, first_rules) = replica(&store, 5).await;
    let (second, second_rules) = replica(&store, 5).await;
    for _ in 0..2 {
        policy::enforce(&first_rules, &call_at(now)).await.unwrap();
        policy::enforce(&second_rules, &call_at(now)).await.unwrap();
    }
    store
        .add_quota_usage(&first.take_quota_changes())
        .await
        .unwrap();
    store
        .add_quota_usage(&second.take_quota_changes())
        .await
        .unwrap();
    let stored = store.load_quota_usage().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].used, 4, "2 calls on each server");

    let (_restarted, rules) = replica(&store, 5).await;
    policy::enforce(&rules, &call_at(now)).await.unwrap();
    let refused = policy::enforce(&rules, &call_at(now)).await.unwrap_err();
    assert_eq!(
        refused.kind,
        gatehouse_model::policy_kind::PolicyKind::Quota,
        "5 of 5 used"
    );
}
