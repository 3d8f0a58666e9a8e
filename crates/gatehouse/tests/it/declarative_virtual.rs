//! Virtual servers in the state document (ADR 0006 §4): `members` exported, reproduced
//! elsewhere with the members created first whatever their names, planned as one field,
//! pruned before the servers they name, and a member missing from the document refused.

use std::collections::BTreeMap;

use crate::helpers::TestApp;
use gatehouse::admin::{
    AdminService, NewServer, Operator,
    declarative::{self, Options, State, SuppliedResolver},
};

fn service(app: &TestApp) -> AdminService {
    AdminService::new(
        app.store.clone(),
        app.keyring.clone(),
        app.server.state.audit.clone(),
    )
}

fn ops() -> Operator {
    Operator::cli("ops", None).unwrap()
}

async fn export(app: &TestApp) -> String {
    let state = declarative::export(&*app.store, gatehouse::now_ms())
        .await
        .unwrap();
    declarative::to_yaml(&state).unwrap()
}

const PRUNE: Options = Options {
    dry_run: false,
    prune: true,
    programs: false,
};

async fn apply(app: &TestApp, state: State) -> Result<declarative::Outcome, String> {
    let none = SuppliedResolver::new(BTreeMap::new());
    declarative::apply(&service(app), &ops(), &app.config, state, &none, PRUNE)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_virtual_server_round_trips_after_its_members_and_is_pruned_before_them() {
    let a = TestApp::start().await;
    for name in ["zeta", "omega"] {
        a.add_server(name, &format!("http://127.0.0.1:9/{name}"))
            .await;
    }
    // Named to sort before its members: creation must still come after them.
    service(&a)
        .add_server(
            &ops(),
            NewServer {
                name: "all".into(),
                members: vec!["zeta".into(), "omega".into()],
                ..NewServer::default()
            },
        )
        .await
        .unwrap();
    let document = export(&a).await;
    assert!(document.contains("members:"), "{document}");
    assert!(!document.contains("virtual://"), "{document}");

    let b = TestApp::start().await;
    let outcome = apply(&b, declarative::parse(&document).unwrap())
        .await
        .unwrap();
    assert_eq!(outcome.applied, 3, "{}", declarative::render(&outcome.plan));
    assert_eq!(export(&b).await, document, "B exports what A exported");
    assert_eq!(
        b.store.get_server("all").await.unwrap().members,
        vec!["zeta", "omega"]
    );
    let again = apply(&b, declarative::parse(&document).unwrap())
        .await
        .unwrap();
    assert!(
        again.plan.is_empty(),
        "{}",
        declarative::render(&again.plan)
    );

    // One member fewer: one field of the virtual server changes.
    let mut fewer = declarative::parse(&document).unwrap();
    let servers = fewer.servers.as_mut().unwrap();
    servers.get_mut("all").unwrap().members = vec!["zeta".into()];
    let changed = apply(&b, fewer).await.unwrap();
    let rendered = declarative::render(&changed.plan);
    assert!(rendered.contains("members"), "{rendered}");
    assert_eq!(
        b.store.get_server("all").await.unwrap().members,
        vec!["zeta"]
    );

    // An empty servers section prunes the virtual server before the servers it names.
    let mut empty = declarative::parse(&document).unwrap();
    empty.servers = Some(BTreeMap::new());
    apply(&b, empty).await.unwrap();
    assert!(b.store.list_servers().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_member_the_document_does_not_declare_is_refused_before_any_change() {
    let b = TestApp::start().await;
    let document =
        "apiVersion: gatehouse/v1\nkind: State\nservers:\n  all:\n    members: [missing]\n";
    let refused = apply(&b, declarative::parse(document).unwrap())
        .await
        .unwrap_err();
    assert!(refused.contains("members.missing"), "{refused}");
    assert!(b.store.list_servers().await.unwrap().is_empty());
}
