use std::{sync::Arc, time::Duration};

use super::*;
use crate::{admin::oauth::OAuthRegistration, audit::chain, store};
use gatehouse_model::audit::{AuditFilter, AuditRow, EventKind};

const NOW: i64 = 1_750_000_000_000;

struct Fixture {
    _dir: tempfile::TempDir,
    store: DynStore,
    keyring: Arc<Keyring>,
    admin: AdminService,
    writer: OwnWriter,
    alice: Operator,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    let store = store::open(&url).await.unwrap();
    let keyring = Arc::new(Keyring::from_master(&[7; 32]));
    let (admin, writer) = AdminService::with_own_writer(store.clone(), keyring.clone());
    Fixture {
        _dir: dir,
        store,
        keyring,
        admin: admin.with_clock(|| NOW),
        writer,
        alice: Operator::cli("alice", Some("ops-1".into())).unwrap(),
    }
}

impl Fixture {
    async fn events(&self) -> Vec<AuditRow> {
        let filter = AuditFilter {
            kind: Some(EventKind::Operator),
            limit: 1_000,
            ..AuditFilter::default()
        };
        self.store.query_audit(&filter).await.unwrap()
    }

    /// The one event recorded since `seen` events: its action and target.
    async fn one_more(&self, seen: &mut usize) -> gatehouse_model::audit::OperatorAction {
        let events = self.events().await;
        assert_eq!(events.len(), *seen + 1, "exactly one event per change");
        *seen += 1;
        let op = events[*seen - 1].event.operator.clone().unwrap();
        assert_eq!((op.actor.as_str(), op.origin.as_str()), ("alice", "cli"));
        assert_eq!(op.host.as_deref(), Some("ops-1"));
        op
    }
}

fn server(name: &str) -> NewServer {
    NewServer {
        name: name.into(),
        url: "http://127.0.0.1:9/mcp".into(),
        credential: Some("Authorization: Bearer upstream-secret-1".into()),
        ..NewServer::default()
    }
}

/// Every mutation records one event naming its action and target; none holds a secret; the
/// chain verifies with them in it.
#[tokio::test]
async fn every_change_records_one_operator_event_without_secrets() {
    let f = fixture().await;
    let (a, by) = (&f.admin, &f.alice);
    let mut seen = 0;
    let mut secrets = vec!["upstream-secret-1".to_owned(), "upstream-secret-2".into()];

    a.add_server(by, server("demo")).await.unwrap();
    let op = f.one_more(&mut seen).await;
    assert_eq!(
        (op.action.as_str(), op.target.as_str()),
        ("server.add", "demo")
    );
    assert_eq!(op.after.unwrap()["credential_header"], "authorization");
    let update = ServerUpdate {
        url: Some("http://127.0.0.1:10/mcp".into()),
        credential: Some(Some("Authorization: Bearer upstream-secret-2".into())),
        stdio: None,
    };
    a.update_server(by, "demo", update).await.unwrap();
    let op = f.one_more(&mut seen).await;
    assert_eq!(op.action, "server.update");
    assert_eq!(op.before.unwrap()["url"], "http://127.0.0.1:9/mcp");
    let after = op.after.unwrap();
    assert_eq!(after["url"], "http://127.0.0.1:10/mcp");
    assert_eq!(after["credential_replaced"], true);

    a.create_client(by, "ci", "the CI agent").await.unwrap();
    assert_eq!(f.one_more(&mut seen).await.action, "client.create");
    let grant = NewConnection {
        client: "ci".into(),
        server: "demo".into(),
        tools: "echo".into(),
        ..NewConnection::default()
    };
    a.grant_connection(by, grant).await.unwrap();
    let op = f.one_more(&mut seen).await;
    assert_eq!(
        (op.action.as_str(), op.target.as_str()),
        ("connection.grant", "ci/demo")
    );
    assert_eq!(
        (op.before, op.after.unwrap()["tools"][0].clone()),
        (None, "echo".into())
    );

    let key = NewKey {
        client: "ci".into(),
        ..NewKey::default()
    };
    let created = a.create_key(by, key).await.unwrap();
    secrets.push(created.token.clone());
    let op = f.one_more(&mut seen).await;
    assert_eq!(
        (op.action.as_str(), op.target.as_str()),
        ("key.create", created.record.id.as_str())
    );
    let rotated = a
        .rotate_key(by, &created.record.id, Duration::from_secs(60))
        .await
        .unwrap();
    secrets.push(rotated.token.clone());
    let op = f.one_more(&mut seen).await;
    assert_eq!(op.action, "key.rotate");
    assert_eq!(op.after.unwrap()["successor"], rotated.record.id.as_str());
    a.revoke_key(by, &rotated.record.id).await.unwrap();
    let op = f.one_more(&mut seen).await;
    assert_eq!(
        (op.action.as_str(), op.target.as_str()),
        ("key.revoke", rotated.record.id.as_str())
    );
    assert_eq!(op.before.unwrap()["revoked_at"], serde_json::Value::Null);
    assert_eq!(op.after.unwrap()["revoked_at"], NOW);

    a.set_client_enabled(by, "ci", false).await.unwrap();
    let op = f.one_more(&mut seen).await;
    assert_eq!(
        (op.action.as_str(), op.after.unwrap()["disabled_at"].clone()),
        ("client.disable", NOW.into())
    );
    a.set_client_enabled(by, "ci", true).await.unwrap();
    assert_eq!(f.one_more(&mut seen).await.action, "client.enable");

    let registered = a
        .register_oauth_client(by, "ci", OAuthRegistration::default())
        .await
        .unwrap();
    secrets.extend(registered.client_secret.clone());
    assert_eq!(f.one_more(&mut seen).await.action, "client.register_oauth");
    let (secret, record, _) = a
        .rotate_client_secret(by, "ci", Duration::from_secs(60))
        .await
        .unwrap();
    secrets.push(secret);
    let op = f.one_more(&mut seen).await;
    assert_eq!(
        (op.action.as_str(), op.target.as_str()),
        ("client_secret.rotate", record.id.as_str())
    );
    a.revoke_client_secret(by, &record.id).await.unwrap();
    assert_eq!(f.one_more(&mut seen).await.action, "client_secret.revoke");
    let (signing, _) = a.rotate_signing_key(by, "EdDSA", None).await.unwrap();
    let op = f.one_more(&mut seen).await;
    assert_eq!(
        (op.action.as_str(), op.target.as_str()),
        ("signing_key.rotate", signing.kid.as_str())
    );

    let policy = NewPolicy {
        id: "slow".into(),
        kind: "rate-limit".into(),
        spec: r#"{"requests": 60, "period": "1m"}"#.into(),
        ..NewPolicy::default()
    };
    let config = Config::default();
    a.add_policy(by, policy, &config).await.unwrap();
    let op = f.one_more(&mut seen).await;
    assert_eq!(
        (op.action.as_str(), op.after.unwrap()["kind"].clone()),
        ("policy.add", "rate_limit".into())
    );
    let file = r#"[{"id": "a", "kind": "rate-limit", "spec": {"requests": 1, "period": "1s"}},
                   {"id": "b", "kind": "rate-limit", "spec": {"requests": 2, "period": "1s"}}]"#;
    a.import_policies(by, file, &config).await.unwrap();
    let op = f.one_more(&mut seen).await;
    assert_eq!(
        (op.action.as_str(), op.target.as_str()),
        ("policy.import", "a,b")
    );
    a.remove_policy(by, "slow").await.unwrap();
    let op = f.one_more(&mut seen).await;
    assert_eq!((op.action.as_str(), op.after), ("policy.remove", None));

    let password = "correct horse battery staple";
    secrets.push(password.into());
    let (user, _) = a
        .create_user(by, "bob", "Bob", Some(password), vec!["eng".into()])
        .await
        .unwrap();
    let op = f.one_more(&mut seen).await;
    assert_eq!(
        (op.action.as_str(), op.target.as_str()),
        ("user.create", user.id.as_str())
    );
    a.set_user_groups(by, "bob", vec!["ops".into()])
        .await
        .unwrap();
    let op = f.one_more(&mut seen).await;
    assert_eq!(op.after.unwrap()["groups"][0], "ops");
    a.set_user_password(by, "bob", "another long password")
        .await
        .unwrap();
    secrets.push("another long password".into());
    assert_eq!(f.one_more(&mut seen).await.action, "user.set_password");
    a.set_user_enabled(by, "bob", false).await.unwrap();
    assert_eq!(f.one_more(&mut seen).await.action, "user.disable");
    a.set_user_enabled(by, "bob", true).await.unwrap();
    assert_eq!(f.one_more(&mut seen).await.action, "user.enable");
    a.grant_group(by, "ops", "demo", "echo", false, false)
        .await
        .unwrap();
    let op = f.one_more(&mut seen).await;
    assert_eq!(
        (op.action.as_str(), op.target.as_str()),
        ("group.grant", "ops/demo")
    );
    a.revoke_group(by, "ops", "demo").await.unwrap();
    assert_eq!(f.one_more(&mut seen).await.action, "group.revoke");

    a.revoke_connection(by, "ci", "demo").await.unwrap();
    assert_eq!(f.one_more(&mut seen).await.action, "connection.revoke");
    a.remove_server(by, "demo").await.unwrap();
    let op = f.one_more(&mut seen).await;
    assert_eq!(
        (op.action.as_str(), op.before.unwrap()["url"].clone()),
        ("server.remove", "http://127.0.0.1:10/mcp".into())
    );

    // Nothing secret in any row, in any form the trail shows.
    let all = serde_json::to_string(&f.events().await).unwrap();
    for secret in &secrets {
        assert!(!all.contains(secret.as_str()), "{secret} is in the trail");
    }
    for marker in ["secret_hash", "password_hash", "private"] {
        assert!(!all.contains(marker), "{marker} is in the trail");
    }
    let report = chain::verify(&*f.store, &f.keyring).await.unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.rows_checked, seen as u64);
    f.writer.close().await;
}

/// A refused change changes nothing and records nothing.
#[tokio::test]
async fn a_refused_change_records_nothing() {
    let f = fixture().await;
    let (a, by) = (&f.admin, &f.alice);
    a.create_client(by, "ci", "").await.unwrap();
    assert!(a.create_client(by, "ci", "again").await.is_err());
    assert!(a.revoke_key(by, "no-such-key").await.is_err());
    assert!(a.remove_server(by, "nowhere").await.is_err());
    let bad_url = NewServer {
        url: "ftp://x".into(),
        ..server("demo")
    };
    assert!(a.add_server(by, bad_url).await.is_err());
    assert!(a.revoke_connection(by, "ci", "nowhere").await.is_err());
    assert!(
        a.import_policies(by, "[{\"id\": 1}]", &Config::default())
            .await
            .is_err()
    );
    assert!(a.set_user_enabled(by, "nobody", false).await.is_err());
    let events = f.events().await;
    assert_eq!(
        events.len(),
        1,
        "only the create that succeeded: {events:?}"
    );
    f.writer.close().await;
}

/// A change whose event cannot be recorded is not reported as a plain success.
#[tokio::test]
async fn a_change_the_trail_cannot_record_is_an_error() {
    let f = fixture().await;
    f.writer.close().await;
    let err = f.admin.create_client(&f.alice, "ci", "").await.unwrap_err();
    assert!(matches!(err, AdminError::Unrecorded { .. }), "{err:?}");
    assert!(err.to_string().contains("was applied"), "{err}");
    assert!(f.store.get_client("ci").await.is_ok(), "the change stands");
}

/// An admin API's caller: the event carries its address where a request's would be.
#[tokio::test]
async fn an_api_operator_is_recorded_with_its_address() {
    let f = fixture().await;
    let by = Operator::api("carol", "10.0.0.7".parse().unwrap()).unwrap();
    f.admin.create_client(&by, "ci", "").await.unwrap();
    let events = f.events().await;
    let event = &events[0].event;
    assert_eq!(event.ip.as_deref(), Some("10.0.0.7"));
    let op = event.operator.as_ref().unwrap();
    assert_eq!(
        (op.actor.as_str(), op.origin.as_str(), op.host.as_deref()),
        ("carol", "api", None)
    );
    f.writer.close().await;
}

#[test]
fn actors_are_printable_names() {
    assert_eq!(Operator::cli(" alice ", None).unwrap().actor(), "alice");
    for bad in ["", "   ", "a\nb", "\u{1b}[2J", &"x".repeat(129)] {
        assert!(Operator::cli(bad, None).is_err(), "{bad:?}");
    }
}
