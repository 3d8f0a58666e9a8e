//! Declarative configuration against real stores: export a deployment, apply it to a fresh
//! one, and the two export the same; an unchanged file changes nothing; a dry run changes
//! nothing; prune removes what the file no longer names; secrets never leave as values.

use std::collections::BTreeMap;

use crate::helpers::TestApp;
use gatehouse::admin::{
    AdminService, NewConnection, NewKey, NewPolicy, NewServer, Operator,
    declarative::{self, ApplyError, Options, State, SuppliedResolver},
    oauth::OAuthRegistration,
};
use serde_json::json;

const UPSTREAM_TOKEN: &str = "Bearer upstream-token-9f8e7d6c5b4a";

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

/// A deployment with one of everything the document holds, and some runtime credentials it
/// must leave out. Returns the client secret registration printed.
async fn furnish(app: &TestApp) -> String {
    let admin = service(app);
    let by = ops();
    admin
        .add_server(
            &by,
            NewServer {
                name: "github".into(),
                url: "https://mcp.example.com/mcp".into(),
                credential: Some(format!("Authorization: {UPSTREAM_TOKEN}")),
                pin_action: Some("warn".into()),
                ..NewServer::default()
            },
        )
        .await
        .unwrap();
    admin
        .add_server(
            &by,
            NewServer {
                name: "docs".into(),
                url: "http://127.0.0.1:9/mcp".into(),
                allow_anonymous: true,
                ..NewServer::default()
            },
        )
        .await
        .unwrap();
    admin
        .create_client(&by, "agent", "the agent")
        .await
        .unwrap();
    admin.create_client(&by, "retired", "").await.unwrap();
    admin
        .set_client_enabled(&by, "retired", false)
        .await
        .unwrap();
    let registered = admin
        .register_oauth_client(
            &by,
            "agent",
            OAuthRegistration {
                grant_types: vec!["client_credentials".into()],
                ..OAuthRegistration::default()
            },
        )
        .await
        .unwrap();
    admin
        .grant_connection(
            &by,
            NewConnection {
                client: "agent".into(),
                server: "github".into(),
                tools: "search_*,get_issue".into(),
                resources: true,
                prompts: false,
            },
        )
        .await
        .unwrap();
    admin
        .create_key(
            &by,
            NewKey {
                client: "agent".into(),
                label: "prod".into(),
                ..NewKey::default()
            },
        )
        .await
        .unwrap();
    admin
        .add_policy(
            &by,
            NewPolicy {
                id: "slow".into(),
                kind: "rate_limit".into(),
                client: Some("agent".into()),
                spec: json!({"requests": 60, "period": "1m"}).to_string(),
                ..NewPolicy::default()
            },
            &app.config,
        )
        .await
        .unwrap();
    admin
        .add_policy(
            &by,
            NewPolicy {
                id: "no-cards".into(),
                kind: "guardrail".into(),
                server: Some("github".into()),
                spec: json!({"direction": "both", "action": "block", "detectors": ["credit_card"]})
                    .to_string(),
                ..NewPolicy::default()
            },
            &app.config,
        )
        .await
        .unwrap();
    admin
        .create_user(
            &by,
            "alice",
            "Alice",
            Some("correct horse battery"),
            vec!["sre".into(), "eng".into()],
        )
        .await
        .unwrap();
    admin
        .grant_group(&by, "sre", "github", "*", false, true)
        .await
        .unwrap();
    registered
        .client_secret
        .expect("a confidential client gets a first secret")
}

async fn export(app: &TestApp) -> State {
    declarative::export(&*app.store, gatehouse::now_ms())
        .await
        .unwrap()
}

fn text(state: &State) -> String {
    declarative::to_yaml(state).unwrap()
}

/// The values an operator would set for the references an export names.
fn values(client_secret: &str) -> SuppliedResolver {
    SuppliedResolver::new(BTreeMap::from([
        (
            "env:GATEHOUSE_SERVER_GITHUB_CREDENTIAL".to_owned(),
            UPSTREAM_TOKEN.to_owned(),
        ),
        (
            "env:GATEHOUSE_CLIENT_AGENT_SECRET".to_owned(),
            client_secret.to_owned(),
        ),
    ]))
}

async fn operator_events(app: &TestApp) -> usize {
    app.audit()
        .await
        .iter()
        .filter(|row| row.event.operator.is_some())
        .count()
}

async fn apply(
    app: &TestApp,
    state: State,
    resolver: &SuppliedResolver,
    options: Options,
) -> Result<declarative::Outcome, ApplyError> {
    declarative::apply(&service(app), &ops(), &app.config, state, resolver, options).await
}

#[tokio::test]
async fn export_then_apply_to_a_fresh_deployment_reproduces_it() {
    let a = TestApp::start().await;
    let client_secret = furnish(&a).await;
    let exported = export(&a).await;
    let document = text(&exported);

    let b = TestApp::start().await;
    let outcome = apply(
        &b,
        declarative::parse(&document).unwrap(),
        &values(&client_secret),
        Options::default(),
    )
    .await
    .unwrap();
    assert!(outcome.applied > 0);
    assert_eq!(
        text(&export(&b).await),
        document,
        "B exports what A exported"
    );

    // The reproduction holds the same secrets, checked by using them.
    let b_server = b.store.get_server("github").await.unwrap();
    let sealed = b_server.credential_sealed.unwrap();
    let opened = b
        .keyring
        .decrypt(&sealed, &gatehouse::snapshot::credential_context("github"))
        .unwrap();
    assert_eq!(opened, UPSTREAM_TOKEN.as_bytes());
    assert!(
        service(&b)
            .client_secret_is("agent", &client_secret, gatehouse::now_ms())
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn applying_an_unchanged_file_changes_nothing() {
    let a = TestApp::start().await;
    let client_secret = furnish(&a).await;
    let document = export(&a).await;
    let generation = a.store.generation().await.unwrap();
    let events = operator_events(&a).await;

    let outcome = apply(
        &a,
        document.clone(),
        &values(&client_secret),
        Options {
            prune: true,
            dry_run: false,
            programs: true,
        },
    )
    .await
    .unwrap();
    assert!(
        outcome.plan.is_empty(),
        "{}",
        declarative::render(&outcome.plan)
    );
    assert_eq!(outcome.applied, 0);
    assert_eq!(
        a.store.generation().await.unwrap(),
        generation,
        "no generation bump"
    );
    assert_eq!(operator_events(&a).await, events, "no audit event");
}

#[tokio::test]
async fn the_second_apply_of_a_file_plans_nothing() {
    let a = TestApp::start().await;
    let client_secret = furnish(&a).await;
    let document = export(&a).await;
    let b = TestApp::start().await;
    apply(
        &b,
        document.clone(),
        &values(&client_secret),
        Options::default(),
    )
    .await
    .unwrap();
    let generation = b.store.generation().await.unwrap();
    let events = operator_events(&b).await;
    let again = apply(&b, document, &values(&client_secret), Options::default())
        .await
        .unwrap();
    assert!(
        again.plan.is_empty(),
        "{}",
        declarative::render(&again.plan)
    );
    assert_eq!(b.store.generation().await.unwrap(), generation);
    assert_eq!(operator_events(&b).await, events);
}

#[tokio::test]
async fn every_applied_change_is_an_operator_event() {
    let a = TestApp::start().await;
    let client_secret = furnish(&a).await;
    let b = TestApp::start().await;
    let before = operator_events(&b).await;
    let outcome = apply(
        &b,
        export(&a).await,
        &values(&client_secret),
        Options::default(),
    )
    .await
    .unwrap();
    let recorded = operator_events(&b).await - before;
    assert!(
        recorded >= outcome.applied,
        "{recorded} events for {} changes",
        outcome.applied
    );
    let trail = b.audit().await;
    let actions: Vec<&str> = trail
        .iter()
        .filter_map(|row| row.event.operator.as_ref())
        .map(|op| op.action.as_str())
        .collect();
    for action in [
        "server.add",
        "client.create",
        "client.register_oauth",
        "client_secret.set",
        "connection.grant",
        "policy.add",
        "user.create",
        "group.grant",
        "client.disable",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    let text = serde_json::to_string(&trail.iter().map(|r| &r.event).collect::<Vec<_>>()).unwrap();
    assert!(
        !text.contains("upstream-token-9f8e7d6c5b4a"),
        "no credential in the trail"
    );
    assert!(
        !text.contains(&client_secret),
        "no client secret in the trail"
    );
}

#[tokio::test]
async fn a_dry_run_plans_and_changes_nothing() {
    let a = TestApp::start().await;
    let client_secret = furnish(&a).await;
    let b = TestApp::start().await;
    let empty = text(&export(&b).await);
    let generation = b.store.generation().await.unwrap();
    let events = operator_events(&b).await;
    let outcome = apply(
        &b,
        export(&a).await,
        &values(&client_secret),
        Options {
            dry_run: true,
            prune: false,
            programs: true,
        },
    )
    .await
    .unwrap();
    assert!(
        outcome.plan.changes.len() >= 8,
        "{}",
        declarative::render(&outcome.plan)
    );
    assert_eq!(outcome.applied, 0);
    assert_eq!(text(&export(&b).await), empty);
    assert_eq!(b.store.generation().await.unwrap(), generation);
    assert_eq!(operator_events(&b).await, events);
}

#[tokio::test]
async fn the_export_holds_references_never_secret_material() {
    let a = TestApp::start().await;
    let client_secret = furnish(&a).await;
    let key = service(&a)
        .create_key(
            &ops(),
            NewKey {
                client: "agent".into(),
                label: "ci".into(),
                ..NewKey::default()
            },
        )
        .await
        .unwrap();
    let admin_token = service(&a)
        .create_admin_token(
            &ops(),
            "ci",
            gatehouse_model::records::AdminRole::Operator,
            None,
        )
        .await
        .unwrap();
    let document = text(&export(&a).await);
    for secret in [
        UPSTREAM_TOKEN,
        "upstream-token-9f8e7d6c5b4a",
        &client_secret,
        &key.token,
        &admin_token.token,
        &key.record.id,
    ] {
        assert!(
            !document.contains(secret),
            "{secret:?} is in the export:\n{document}"
        );
    }
    assert!(!document.contains("correct horse"), "no password");
    assert!(
        document.contains("value: env:GATEHOUSE_SERVER_GITHUB_CREDENTIAL"),
        "{document}"
    );
    assert!(
        document.contains("secret: env:GATEHOUSE_CLIENT_AGENT_SECRET"),
        "{document}"
    );
    assert!(
        document.contains("- name: ci\n  role: operator"),
        "{document}"
    );
}

#[tokio::test]
async fn prune_removes_what_the_file_no_longer_names() {
    let a = TestApp::start().await;
    let client_secret = furnish(&a).await;
    let mut document = export(&a).await;
    document.servers.as_mut().unwrap().remove("docs");
    document.policies.as_mut().unwrap().remove("slow");
    document.clients.as_mut().unwrap().remove("agent");
    document.groups = None; // not managed by this file: left alone

    let kept = apply(
        &a,
        document.clone(),
        &values(&client_secret),
        Options::default(),
    )
    .await
    .unwrap();
    assert!(
        kept.plan.is_empty(),
        "without --prune nothing is removed: {}",
        declarative::render(&kept.plan)
    );

    let pruned = apply(
        &a,
        document,
        &values(&client_secret),
        Options {
            prune: true,
            dry_run: false,
            programs: true,
        },
    )
    .await
    .unwrap();
    let text = declarative::render(&pruned.plan);
    assert!(text.contains("- server docs"), "{text}");
    assert!(text.contains("- policy slow"), "{text}");
    assert!(text.contains("- connection agent/github"), "{text}");
    assert!(
        text.contains("~ client agent\n    disabled: (none) → true")
            || text.contains("~ client agent\n    disabled: false → true"),
        "{text}"
    );
    assert!(a.store.get_server("docs").await.is_err());
    assert!(
        a.store
            .get_client("agent")
            .await
            .unwrap()
            .disabled_at
            .is_some()
    );
    assert!(a.store.list_connections().await.unwrap().is_empty());
    assert_eq!(
        a.store.list_group_connections().await.unwrap().len(),
        1,
        "groups were not in the file"
    );
}

#[tokio::test]
async fn an_unresolvable_reference_fails_the_plan_before_any_write() {
    let a = TestApp::start().await;
    let client_secret = furnish(&a).await;
    let document = export(&a).await;
    let b = TestApp::start().await;
    let generation = b.store.generation().await.unwrap();
    let only_the_credential = SuppliedResolver::new(BTreeMap::from([(
        "env:GATEHOUSE_SERVER_GITHUB_CREDENTIAL".to_owned(),
        UPSTREAM_TOKEN.to_owned(),
    )]));
    let err = apply(&b, document, &only_the_credential, Options::default())
        .await
        .unwrap_err();
    let ApplyError::Unresolved(problems) = &err else {
        panic!("expected an unresolved reference, got {err}");
    };
    assert_eq!(problems.len(), 1, "{err}");
    assert_eq!(problems[0].at, "client agent, field oauth.secret");
    assert!(
        problems[0]
            .why
            .contains("env:GATEHOUSE_CLIENT_AGENT_SECRET"),
        "{err}"
    );
    assert!(!err.to_string().contains(&client_secret));
    assert_eq!(
        b.store.generation().await.unwrap(),
        generation,
        "nothing was written"
    );
    assert!(b.store.list_servers().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_invalid_document_names_the_entity_and_field_and_writes_nothing() {
    let b = TestApp::start().await;
    let generation = b.store.generation().await.unwrap();
    let document = declarative::parse(
        r#"
apiVersion: gatehouse/v1
kind: State
servers:
  good: {url: "https://ok.example.com/mcp"}
  bad: {url: "not a url"}
  both:
    url: https://saas.example/mcp
    credential: {header: authorization, value: "env:SAAS_STATIC"}
    upstream_auth:
      kind: client_credentials
      token_endpoint: https://saas.example/oauth/token
      client_id: gatehouse
      auth_method: client_secret_post
      secret: env:SAAS_CLIENT_SECRET
"#,
    )
    .unwrap();
    let err = apply(
        &b,
        document,
        &SuppliedResolver::default(),
        Options::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ApplyError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("server bad, field url"), "{err}");
    assert!(
        err.to_string().contains("server both, field credential"),
        "a static header beside upstream tokens: {err}"
    );
    assert_eq!(b.store.generation().await.unwrap(), generation);
    assert!(
        b.store.list_servers().await.unwrap().is_empty(),
        "the good server was not made either"
    );
}

#[tokio::test]
async fn a_changed_credential_is_replaced_and_an_unchanged_one_is_not() {
    let a = TestApp::start().await;
    let client_secret = furnish(&a).await;
    let document = export(&a).await;
    let rotated = SuppliedResolver::new(BTreeMap::from([
        (
            "env:GATEHOUSE_SERVER_GITHUB_CREDENTIAL".to_owned(),
            "Bearer rotated-upstream-token".to_owned(),
        ),
        (
            "env:GATEHOUSE_CLIENT_AGENT_SECRET".to_owned(),
            client_secret.clone(),
        ),
    ]));
    let outcome = apply(&a, document, &rotated, Options::default())
        .await
        .unwrap();
    assert_eq!(
        outcome.plan.changes.len(),
        1,
        "{}",
        declarative::render(&outcome.plan)
    );
    assert!(outcome.plan.changes[0].touches("credential"));
    assert!(
        service(&a)
            .server_credential_is("github", "Bearer rotated-upstream-token")
            .await
            .unwrap()
    );
    let rendered = declarative::render(&outcome.plan);
    assert!(
        !rendered.contains("rotated-upstream-token") && !rendered.contains("9f8e7d6c5b4a"),
        "{rendered}"
    );
}

#[tokio::test]
async fn a_self_registered_client_is_neither_exported_nor_taken_over() {
    let a = TestApp::start().await;
    let mut dynamic = gatehouse_model::records::ClientRecord {
        name: "dcr-client".into(),
        description: String::new(),
        disabled_at: None,
        created_at: 1,
        oauth: None,
    };
    a.store.insert_client(&dynamic).await.unwrap();
    dynamic.oauth = Some(gatehouse_model::records::OAuthClientMetadata {
        token_endpoint_auth_method: "none".into(),
        grant_types: vec!["authorization_code".into()],
        redirect_uris: vec!["http://127.0.0.1/cb".into()],
        application_type: Some("native".into()),
        jwks: None,
        client_name: None,
        origin: "dcr".into(),
        dpop_bound_access_tokens: false,
    });
    a.store
        .set_client_oauth("dcr-client", dynamic.oauth.as_ref())
        .await
        .unwrap();
    let exported = export(&a).await;
    assert!(
        exported.clients.as_ref().unwrap().is_empty(),
        "{}",
        text(&exported)
    );

    let pruned = apply(
        &a,
        exported.clone(),
        &SuppliedResolver::default(),
        Options {
            prune: true,
            dry_run: false,
            programs: true,
        },
    )
    .await
    .unwrap();
    assert!(
        pruned.plan.is_empty(),
        "prune leaves it alone: {}",
        declarative::render(&pruned.plan)
    );

    let mut claiming = exported;
    claiming.clients.as_mut().unwrap().insert(
        "dcr-client".into(),
        declarative::document::ClientSpec {
            description: "mine now".into(),
            disabled: false,
            oauth: None,
            connections: Default::default(),
        },
    );
    let generation = a.store.generation().await.unwrap();
    let err = apply(
        &a,
        claiming,
        &SuppliedResolver::default(),
        Options::default(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("client dcr-client: this client registered itself"),
        "{err}"
    );
    assert_eq!(a.store.generation().await.unwrap(), generation);
}

#[tokio::test]
async fn a_changed_policy_is_replaced_in_one_change_never_removed_first() {
    let a = TestApp::start().await;
    let client_secret = furnish(&a).await;
    let mut document = export(&a).await;
    let slow = document.policies.as_mut().unwrap().get_mut("slow").unwrap();
    slow.spec = json!({"requests": 5, "period": "1m"});
    let before = a.audit().await.len();

    let outcome = apply(&a, document, &values(&client_secret), Options::default())
        .await
        .unwrap();
    assert!(
        declarative::render(&outcome.plan).contains("~ policy slow"),
        "{}",
        declarative::render(&outcome.plan)
    );
    let actions: Vec<(String, String)> = a.audit().await[before..]
        .iter()
        .filter_map(|row| row.event.operator.as_ref())
        .map(|op| (op.action.clone(), op.target.clone()))
        .collect();
    // One stored change: a deny or rate rule is never absent between a removal and an add.
    assert_eq!(actions, [("policy.replace".to_owned(), "slow".to_owned())]);
    let stored = a.store.list_policies().await.unwrap();
    let slow = stored.iter().find(|p| p.id == "slow").unwrap();
    assert_eq!(slow.spec["requests"], 5, "{:?}", slow.spec);
}
