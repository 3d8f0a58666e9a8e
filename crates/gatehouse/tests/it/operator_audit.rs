//! Operator events share the trail with requests: a change made while the server runs (the
//! CLI's own writer, or the server's writer as an admin API would use) lands in the one chain,
//! which still verifies.

use crate::{
    helpers::{TestApp, call},
    scripted_upstream::Upstream,
};
use gatehouse::{
    admin::{AdminService, Operator},
    audit::chain,
};

fn alice() -> Operator {
    Operator::cli("alice", None).unwrap()
}

#[tokio::test]
async fn a_change_from_another_process_joins_the_running_servers_chain() {
    let upstream = Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    let answer = app
        .post("demo", Some(&key), &call("echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // The body ends once the request's event is committed (durable mode): read to the end,
    // so the server's row is in before the change is made.
    answer.text().await.unwrap();

    // As the CLI does: a writer of its own on the same store, appending after the server's
    // last row while the server's writer still holds that row as its head.
    let (admin, writer) = AdminService::with_own_writer(app.store.clone(), app.keyring.clone());
    admin.revoke_key(&alice(), &key[4..16]).await.unwrap();
    writer.close().await;
    app.reload().await;
    let answer = app.post("demo", Some(&key), &call("echo")).send().await;
    assert_eq!(answer.unwrap().status(), 401);

    let rows = app.audit().await;
    let kinds: Vec<&str> = rows
        .iter()
        .map(|r| match &r.event.operator {
            Some(op) => op.action.as_str(),
            None => r.event.decision.as_str(),
        })
        .collect();
    assert_eq!(kinds, ["allow", "key.revoke", "deny"]);
    let report = chain::verify(&*app.store, &app.keyring).await.unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.rows_checked, 3);
}

#[tokio::test]
async fn a_service_on_the_servers_writer_records_in_its_trail() {
    let app = TestApp::start().await;
    let admin = AdminService::new(
        app.store.clone(),
        app.keyring.clone(),
        app.server.state.audit.clone(),
    );
    admin.create_client(&alice(), "agent", "").await.unwrap();
    let rows = app.audit().await;
    assert_eq!(rows.len(), 1);
    let op = rows[0].event.operator.as_ref().unwrap();
    assert_eq!(
        (op.action.as_str(), op.target.as_str()),
        ("client.create", "agent")
    );
    assert!(
        chain::verify(&*app.store, &app.keyring)
            .await
            .unwrap()
            .is_intact()
    );
}
