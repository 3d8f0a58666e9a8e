//! Replacing a policy in one change: kind, scope, tools and spec swapped, its quota counters
//! removed, the generation moved once; a missing policy or scope changes nothing.

use super::*;
use gatehouse_model::records::{QuotaDelta, QuotaUsage};

#[tokio::test]
async fn a_policy_is_replaced_in_one_change_and_a_refused_replacement_changes_nothing() {
    each_backend(|store| async move {
        store.insert_server(&server("demo")).await.unwrap();
        store.insert_client(&client("agent")).await.unwrap();
        store
            .insert_policy(&policy("p1", None, None))
            .await
            .unwrap();
        store
            .add_quota_usage(&[QuotaDelta {
                policy_id: "p1".into(),
                subject: "agent".into(),
                window_start: 10_000,
                delta: 3,
            }])
            .await
            .unwrap();
        let before = store.generation().await.unwrap();
        let mut replacement = policy("p1", Some("agent"), Some("demo"));
        replacement.kind = "quota".into();
        replacement.tools = Some("search_*".into());
        replacement.spec = serde_json::json!({"requests": 10, "period": "1d"});
        let generation = store.replace_policy(&replacement).await.unwrap();
        assert!(generation > before, "the change moves the generation");
        assert_eq!(store.generation().await.unwrap(), generation);
        assert_eq!(
            store.list_policies().await.unwrap(),
            vec![replacement.clone()]
        );
        let usage: Vec<QuotaUsage> = store.load_quota_usage().await.unwrap();
        assert!(
            usage.is_empty(),
            "the counters went with the old policy: {usage:?}"
        );

        assert_not_found(
            store
                .replace_policy(&policy("ghost-policy", None, None))
                .await,
            "policy",
            "ghost-policy",
        );
        assert_not_found(
            store
                .replace_policy(&policy("p1", Some("ghost"), None))
                .await,
            "client",
            "ghost",
        );
        assert_not_found(
            store
                .replace_policy(&policy("p1", None, Some("ghost")))
                .await,
            "server",
            "ghost",
        );
        assert_eq!(store.list_policies().await.unwrap(), vec![replacement]);
        assert_eq!(store.generation().await.unwrap(), generation);
    })
    .await;
}
