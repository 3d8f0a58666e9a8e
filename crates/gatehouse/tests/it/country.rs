//! Country policies through the gateway, with the GeoIP test database
//! (`tests/fixtures/geo`: 192.0.2.0/24 FR, 198.51.100.0/24 DE, 203.0.113.0/24 RU,
//! 2001:db8:1::/48 FR; 10.0.0.0/8 absent). The caller's address is chosen with
//! `X-Forwarded-For`, believed from 127.0.0.0/8.

use gatehouse::admin::explain::{Question, explain};
use serde_json::json;
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    helpers::{TestApp, call, rpc_message},
    scripted_upstream::Upstream,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/geo")
        .join(name)
}

async fn setup(database: Option<PathBuf>) -> (TestApp, String) {
    let upstream = Upstream::start().await;
    let app = TestApp::start_with(|c| {
        c.policy.geoip_database = database;
        c.policy.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "*").await;
    (app, key)
}

#[tokio::test]
async fn country_rules_allow_deny_and_fail_closed() {
    let (app, key) = setup(Some(fixture("countries.mmdb"))).await;
    app.policy(
        "europe",
        "country",
        json!({ "allow": ["FR", "de"], "deny": ["RU"] }),
        (None, Some("demo"), None),
    )
    .await;
    let from = |xff: &'static str| {
        app.post("demo", Some(&key), &call("echo"))
            .header("x-forwarded-for", xff)
    };
    assert_eq!(from("192.0.2.7").send().await.unwrap().status(), 200);
    assert_eq!(from("198.51.100.7").send().await.unwrap().status(), 200);
    assert_eq!(from("2001:db8:1::5").send().await.unwrap().status(), 200);

    let (status, _, body) = rpc_message(from("203.0.113.7").send().await.unwrap()).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["data"]["reason"], "policy_denied");
    assert_eq!(
        body["error"]["data"]["policy"],
        json!({ "kind": "country", "rule": "europe" })
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("country (RU) is denied"),
        "{body}"
    );

    let (status, _, body) = rpc_message(from("10.1.2.3").send().await.unwrap()).await;
    assert_eq!(status, 403, "no country in the database: denied by default");
    assert_eq!(body["error"]["data"]["policy"]["kind"], "country");

    let audit = app.audit().await;
    let country_of = |ip: &str| {
        audit
            .iter()
            .find(|r| r.event.ip.as_deref() == Some(ip))
            .map(|r| r.event.country.clone())
            .unwrap()
    };
    assert_eq!(country_of("192.0.2.7").as_deref(), Some("FR"));
    assert_eq!(country_of("203.0.113.7").as_deref(), Some("RU"));
    assert_eq!(country_of("10.1.2.3"), None);
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.event.reason.as_deref() == Some("country:europe"))
            .count(),
        2
    );

    // `unknown: allow` admits addresses the database does not place.
    app.store.delete_policy("europe").await.unwrap();
    app.policy(
        "not-russia",
        "country",
        json!({ "deny": ["RU"], "unknown": "allow" }),
        (None, None, None),
    )
    .await;
    assert_eq!(from("10.1.2.3").send().await.unwrap().status(), 200);
    assert_eq!(from("203.0.113.7").send().await.unwrap().status(), 403);

    let snapshot = app.server.state.snapshot.current();
    let answer = explain(
        &snapshot,
        &Question {
            client: "agent",
            server: "demo",
            tool: Some("echo"),
            ip: "::ffff:203.0.113.7".parse().unwrap(),
            at: jiff::Timestamp::now(),
            arguments: None,
        },
    );
    assert_eq!(answer.decided_by.as_deref(), Some("country:not-russia"));
}

#[tokio::test]
async fn a_replaced_database_is_picked_up_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("countries.mmdb");
    std::fs::copy(fixture("countries.mmdb"), &path).unwrap();
    let (app, key) = setup(Some(path.clone())).await;
    app.policy(
        "france",
        "country",
        json!({ "allow": ["FR"] }),
        (None, None, None),
    )
    .await;
    let status = || async {
        app.post("demo", Some(&key), &call("echo"))
            .header("x-forwarded-for", "192.0.2.7")
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(status().await, 200);

    // In v2, 192.0.2.0/24 is in DE. Replace the file the way an updater should (rename).
    let aside = dir.path().join("countries.mmdb.new");
    std::fs::copy(fixture("countries-v2.mmdb"), &aside).unwrap();
    std::fs::rename(&aside, &path).unwrap();
    // The background check runs every 5 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while status().await == 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new database was not loaded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status().await, 403);
}

#[tokio::test]
async fn country_policies_need_a_database() {
    let (app, _) = setup(None).await;
    // Accepted by validation (the CLI has no database), refused by the server that has none.
    gatehouse::admin::add_policy(
        &*app.store,
        gatehouse::admin::NewPolicy {
            id: "europe".into(),
            kind: "country".into(),
            client: None,
            server: None,
            tools: None,
            spec: json!({ "allow": ["FR"] }).to_string(),
        },
    )
    .await
    .unwrap();
    // The rule is not dropped: it denies its scope (everything here) and is reported.
    app.reload().await;
    let report = app.server.state.snapshot.report();
    assert_eq!(report.issues.len(), 1, "{report:?}");
    assert!(
        report.issues[0].reason.contains("policy.geoip_database"),
        "{report:?}"
    );
}

#[tokio::test]
async fn an_unreadable_database_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.mmdb");
    let config = gatehouse::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        policy: gatehouse::config::PolicyConfig {
            geoip_database: Some(missing),
            ..Default::default()
        },
        ..Default::default()
    };
    let Err(err) = gatehouse::app::start(config, None).await else {
        panic!("started without its GeoIP database");
    };
    assert!(err.to_string().contains("nowhere.mmdb"), "{err}");
}
