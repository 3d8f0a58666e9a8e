//! Sessions and single-use assertions shared through Redis: what one replica binds or
//! records, every other replica knows at once.

use gatehouse::{
    admin::{self, oauth::OAuthRegistration},
    tokens::{jwt, keys::SigningKey},
};
use gatehouse_model::algorithm::Algorithm;
use serde_json::json;

use crate::{
    cluster::TestCluster,
    helpers::{ACCEPT, call},
    oauth_assertion::token_with,
    scripted_upstream::Upstream,
};

fn initialize() -> serde_json::Value {
    json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": { "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } } })
}

#[tokio::test]
async fn a_session_opened_on_one_replica_continues_on_the_others() {
    let upstream = Upstream::start().await;
    let cluster = TestCluster::start(None).await;
    let [a, b, c] = [
        &cluster.replicas[0],
        &cluster.replicas[1],
        &cluster.replicas[2],
    ];
    a.add_server("demo", &upstream.url()).await;
    let alice = a.client_with_key("alice", "demo", "*").await;
    let mallory = a.client_with_key("mallory", "demo", "*").await;
    cluster.reload().await;

    let opened = a
        .post("demo", Some(&alice), &initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 200);
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();

    let on_b = b
        .post("demo", Some(&alice), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(on_b.status(), 200, "the session bound on A, used on B");

    // A GET stream on C, resuming after event 8: the upstream replays from 9.
    let stream = c
        .http
        .get(c.mcp("demo"))
        .bearer_auth(&alice)
        .header("accept", ACCEPT)
        .header("mcp-session-id", &session)
        .header("last-event-id", "8")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let events = stream.text().await.unwrap();
    assert!(events.contains("id: 9"), "the resumed event: {events}");
    let get = upstream
        .received()
        .into_iter()
        .find(|r| r.http_method == reqwest::Method::GET)
        .expect("the GET reached the upstream");
    assert_eq!(get.headers["last-event-id"], "8");
    assert_eq!(get.headers["mcp-session-id"], session.as_str());

    let stolen = b
        .post("demo", Some(&mallory), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(
        stolen.status(),
        404,
        "another principal, on another replica"
    );

    let deleted = b
        .http
        .delete(b.mcp("demo"))
        .bearer_auth(&alice)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let after = a
        .post("demo", Some(&alice), &call("echo"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 404, "ended on B, gone on A");
}

#[tokio::test]
async fn the_owner_cap_holds_across_replicas() {
    use gatehouse::state::{
        Owner, SessionCheck, SessionStore,
        redis::{RedisLink, RedisSessions},
    };
    use std::sync::Arc;
    let config = gatehouse::config::RedisConfig {
        url: Some(gatehouse_testkit::redis::Redis::shared().url()),
        key_prefix: format!("c{}:", gatehouse::secrets::random_id(8).unwrap()),
        ..Default::default()
    };
    // Two replicas: each its own link to the same Redis and prefix.
    let [a, b] = [(); 2].map(|()| RedisSessions::new(RedisLink::open(&config).unwrap(), 2, 60_000));
    let server: Arc<str> = Arc::from("demo");
    let alice = Owner {
        client: Some("alice"),
        subject: None,
    };
    assert_eq!(a.bind(&server, "s1", alice, 1).await, 0);
    assert_eq!(b.bind(&server, "s2", alice, 2).await, 0);
    assert_eq!(
        a.bind(&server, "s3", alice, 3).await,
        1,
        "over the cap of 2"
    );
    assert_eq!(
        b.check("demo", "s1", alice, 4).await,
        SessionCheck::NotFound,
        "the oldest went"
    );
    for id in ["s2", "s3"] {
        assert_eq!(
            b.check("demo", id, alice, 4).await,
            SessionCheck::Owned,
            "{id} on B"
        );
        assert_eq!(
            a.check("demo", id, alice, 4).await,
            SessionCheck::Owned,
            "{id} on A"
        );
    }
    let bob = Owner {
        client: Some("bob"),
        subject: None,
    };
    assert_eq!(a.check("demo", "s2", bob, 5).await, SessionCheck::NotFound);
}

#[tokio::test]
async fn a_client_assertion_used_on_one_replica_is_refused_by_another() {
    let cluster = TestCluster::start(None).await;
    let [a, b] = [&cluster.replicas[0], &cluster.replicas[1]];
    a.add_server("demo", "http://127.0.0.1:9/mcp").await;
    admin::create_client(&*a.store, "signer", "").await.unwrap();
    a.grant("signer", "demo", "echo").await;
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    admin::oauth::register_client(
        &a.store,
        &a.keyring,
        "signer",
        OAuthRegistration {
            grant_types: vec!["client_credentials".into()],
            auth_method: Some("private_key_jwt".into()),
            jwks: Some(json!({ "keys": [key.public_jwk()] })),
            ..OAuthRegistration::default()
        },
    )
    .await
    .unwrap();
    cluster.reload().await;
    let now = jiff::Timestamp::now().as_second();
    // Meant for either replica, as for one issuer behind a balancer.
    let signed = jwt::encode(
        &key,
        None,
        &json!({
            "iss": "signer", "sub": "signer", "aud": [a.url(""), b.url("")],
            "iat": now, "exp": now + 60,
            "jti": gatehouse::secrets::random_id(10).unwrap(),
        }),
    )
    .unwrap();
    let (status, body) = token_with(a, &signed).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = token_with(b, &signed).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "replayed on another replica"
    );
}

#[tokio::test]
async fn a_task_created_through_one_replica_belongs_to_its_creator_on_the_others() {
    use crate::tasks::{TaskUpstream, about, create_task};
    let (_upstream, url) = TaskUpstream::start().await;
    let cluster = TestCluster::start(None).await;
    let [a, b] = [&cluster.replicas[0], &cluster.replicas[1]];
    a.add_server("demo", &url).await;
    let alice = a.client_with_key("alice", "demo", "echo").await;
    let mallory = a.client_with_key("mallory", "demo", "echo").await;
    cluster.reload().await;
    let answer = |replica: &crate::helpers::TestApp, key: &str, body: serde_json::Value| {
        let request = replica.post("demo", Some(key), &body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    let created = answer(a, &alice, create_task()).await;
    let task = created["result"]["task"]["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    // The owner is written to Redis beside the answer: B knows it moments later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = answer(b, &alice, about("tasks/get", &task)).await;
        if got["result"]["status"] == "completed" {
            break;
        }
        assert_eq!(got["error"]["data"]["reason"], "task_not_found", "{got}");
        assert!(
            std::time::Instant::now() < deadline,
            "B never learnt the task's owner"
        );
        tokio::task::yield_now().await;
    }
    let stolen = answer(b, &mallory, about("tasks/get", &task)).await;
    assert_eq!(
        stolen["error"]["data"]["reason"], "task_not_found",
        "{stolen}"
    );
}
