use serde_json::json;

use super::{
    document::{self, State},
    normalize::normalize,
    plan::{Kind, Op, SecretFacts, SecretSlot, plan, render},
};

const FULL: &str = r#"
apiVersion: gatehouse/v1
kind: State
servers:
  github:
    url: https://mcp.example.com/mcp
    credential: {header: Authorization, value: "env:GH_TOKEN"}
clients:
  agent:
    description: the agent
    connections:
      github: {tools: ["search_*", get_issue]}
policies:
  slow:
    kind: rate-limit
    client: agent
    spec: {requests: 60, period: 1m}
users:
  alice: {display_name: Alice, groups: [sre, eng]}
groups:
  sre:
    connections:
      github: {tools: ["*"]}
admin_tokens:
  - {name: ci, role: operator}
"#;

fn full() -> State {
    let parsed = document::parse(FULL).unwrap();
    normalize(parsed, &empty_store(), false, false).unwrap()
}

/// What an empty store exports: every section present and empty.
fn empty_store() -> State {
    State {
        servers: Some(Default::default()),
        clients: Some(Default::default()),
        policies: Some(Default::default()),
        guardrails: Some(Default::default()),
        users: Some(Default::default()),
        groups: Some(Default::default()),
        admin_tokens: Some(Vec::new()),
        ..State::empty()
    }
}

fn matching_credential() -> SecretFacts {
    let mut facts = SecretFacts::default();
    facts
        .matching
        .insert(SecretSlot::ServerCredential("github".into()));
    facts
}

#[test]
fn a_document_equal_to_the_store_plans_nothing() {
    let state = full();
    let plan = plan(&state, &state, &matching_credential(), true);
    assert_eq!(plan.changes, vec![], "{}", render(&plan));
    assert_eq!(plan.notices, Vec::<String>::new());
}

#[test]
fn an_empty_store_gets_everything_created_in_dependency_order() {
    let plan = plan(&empty_store(), &full(), &SecretFacts::default(), false);
    let order: Vec<(Op, Kind, &str)> = plan
        .changes
        .iter()
        .map(|c| (c.op, c.kind, c.name.as_str()))
        .collect();
    assert_eq!(
        order,
        vec![
            (Op::Create, Kind::Server, "github"),
            (Op::Create, Kind::Client, "agent"),
            (Op::Create, Kind::User, "alice"),
            (Op::Create, Kind::Policy, "slow"),
            (Op::Create, Kind::Connection, "agent/github"),
            (Op::Create, Kind::GroupConnection, "sre/github"),
        ]
    );
    assert_eq!(plan.notices.len(), 1, "the missing admin token is said");
    assert!(plan.notices[0].contains("\"ci\""), "{:?}", plan.notices);
    let text = render(&plan);
    assert!(
        text.contains("credential: \"authorization: (value of env:GH_TOKEN)\""),
        "{text}"
    );
}

#[test]
fn a_changed_field_is_an_update_with_before_and_after() {
    let current = full();
    let mut desired = current.clone();
    let grant = desired
        .clients
        .as_mut()
        .unwrap()
        .get_mut("agent")
        .unwrap()
        .connections
        .get_mut("github")
        .unwrap();
    grant.tools = vec!["get_issue".into()];
    let plan = plan(&current, &desired, &matching_credential(), false);
    assert_eq!(plan.changes.len(), 1, "{}", render(&plan));
    let change = &plan.changes[0];
    assert_eq!((change.op, change.kind), (Op::Update, Kind::Connection));
    assert_eq!(change.key, vec!["agent".to_owned(), "github".to_owned()]);
    assert_eq!(change.fields.len(), 1);
    assert_eq!(change.fields[0].field, "tools");
    assert_eq!(
        change.fields[0].before,
        Some(json!(["search_*", "get_issue"]))
    );
    assert_eq!(change.fields[0].after, Some(json!(["get_issue"])));
}

#[test]
fn a_credential_whose_value_differs_is_replaced_without_showing_either_value() {
    let state = full();
    let plan = plan(&state, &state, &SecretFacts::default(), false);
    assert_eq!(plan.changes.len(), 1, "{}", render(&plan));
    assert!(plan.changes[0].touches("credential"));
    let text = render(&plan);
    assert!(
        text.contains("(stored value)") && text.contains("env:GH_TOKEN"),
        "{text}"
    );
}

#[test]
fn without_prune_nothing_is_deleted_and_with_it_only_present_sections_are_pruned() {
    let current = full();
    let mut desired = State {
        servers: current.servers.clone(),
        ..State::empty()
    };
    assert!(plan(&current, &desired, &matching_credential(), true).is_empty());

    desired.clients = Some(Default::default());
    desired.policies = Some(Default::default());
    let pruned = plan(&current, &desired, &matching_credential(), true);
    let order: Vec<(Op, Kind, &str)> = pruned
        .changes
        .iter()
        .map(|c| (c.op, c.kind, c.name.as_str()))
        .collect();
    assert_eq!(
        order,
        vec![
            (Op::Delete, Kind::Connection, "agent/github"),
            (Op::Delete, Kind::Policy, "slow"),
            (Op::Update, Kind::Client, "agent"),
        ],
        "{}",
        render(&pruned)
    );
    assert!(
        pruned.changes[2].touches("disabled"),
        "clients are disabled, not deleted"
    );
    assert!(plan(&current, &desired, &matching_credential(), false).is_empty());
}

#[test]
fn pruning_admin_tokens_revokes_the_unnamed_ones_last() {
    let current = full();
    let desired = State {
        admin_tokens: Some(Vec::new()),
        ..State::empty()
    };
    let plan = plan(&current, &desired, &matching_credential(), true);
    assert_eq!(plan.changes.len(), 1);
    assert_eq!(plan.changes[0].op, Op::Delete);
    assert_eq!(plan.changes[0].name, "ci (operator)");
}

#[test]
fn normalising_names_every_problem_with_its_entity_and_field() {
    let text = r#"
apiVersion: gatehouse/v1
kind: State
servers:
  github: {url: "ftp://x"}
clients:
  agent:
    connections:
      gitlab: {tools: ["a b"]}
policies:
  p1: {kind: rate-limit, server: nowhere, spec: {nonsense: 1}}
"#;
    let problems =
        normalize(document::parse(text).unwrap(), &empty_store(), false, false).unwrap_err();
    let at: Vec<&str> = problems.iter().map(|p| p.at.as_str()).collect();
    assert!(at.contains(&"server github, field url"), "{problems:?}");
    assert!(at.contains(&"connection agent/gitlab"), "{problems:?}");
    assert!(at.contains(&"policy p1, field spec"), "{problems:?}");
    assert!(at.contains(&"policy p1, field server"), "{problems:?}");
}

#[test]
fn a_secret_written_as_a_value_or_an_unknown_field_is_refused() {
    let inline = FULL.replace("\"env:GH_TOKEN\"", "\"Bearer ghp_live\"");
    let err = document::parse(&inline).unwrap_err();
    assert!(err.contains("by reference"), "{err}");
    assert!(!err.contains("ghp_live"), "the value is not echoed: {err}");
    let unknown = FULL.replace("description: the agent", "descripton: the agent");
    assert!(
        document::parse(&unknown)
            .unwrap_err()
            .contains("descripton")
    );
    let version = FULL.replace("gatehouse/v1", "gatehouse/v2");
    assert!(
        document::parse(&version)
            .unwrap_err()
            .contains("apiVersion")
    );
}

#[test]
fn the_rendered_document_is_stable_and_reads_back_equal() {
    let state = full();
    let yaml = document::to_yaml(&state).unwrap();
    assert_eq!(document::parse(&yaml).unwrap(), state);
    assert_eq!(
        document::to_yaml(&document::parse(&yaml).unwrap()).unwrap(),
        yaml
    );
    let servers = yaml.find("servers:").unwrap();
    let clients = yaml.find("clients:").unwrap();
    assert!(servers < clients, "sections keep their order:\n{yaml}");
}

#[test]
fn a_name_given_twice_is_refused_rather_than_one_silently_winning() {
    let twice = r#"
apiVersion: gatehouse/v1
kind: State
servers:
  github: {url: "https://a.example.com/mcp"}
  github: {url: "https://b.example.com/mcp"}
"#;
    let err = document::parse(twice).unwrap_err();
    assert!(err.contains("duplicate"), "{err}");
}

#[test]
fn a_remote_client_reads_every_reference_where_it_runs() {
    use super::secret_ref::SuppliedResolver;
    let state = full();
    let here = SuppliedResolver::new(std::collections::BTreeMap::from([(
        "env:GH_TOKEN".to_owned(),
        "Bearer x".to_owned(),
    )]));
    let values = super::supplied_values(&state, &here).unwrap();
    assert_eq!(
        values.get("env:GH_TOKEN").map(String::as_str),
        Some("Bearer x")
    );
    let err = super::supplied_values(&state, &SuppliedResolver::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("server github, field credential.value"),
        "{err}"
    );
}
