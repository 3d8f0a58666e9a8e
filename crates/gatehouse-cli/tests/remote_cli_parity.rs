//! Every operator command run twice, the same scenario both ways: against the local database
//! and against a running `gatehouse serve` through `--server` and its admin API. Both must
//! succeed and print the same JSON (ids and times aside); read on the same store, the output
//! is byte for byte the same, in JSON and in YAML.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::deployment::{Deployment, gatehouse};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// What differs between two deployments by nature: times and generated ids and secrets.
/// Each generated value becomes `<N>`, numbered in order of appearance, so two runs that
/// make the same things in the same order normalise alike.
struct Normaliser {
    seen: HashMap<String, usize>,
}

const GENERATED: &[&str] = &[
    "id",
    "kid",
    "token",
    "client_secret",
    "secret_id",
    "rotated_from",
    "x",
    "y",
    "created_by",
];

impl Normaliser {
    fn value(&mut self, value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut out = Map::new();
                for (key, field) in map {
                    let timed = key.ends_with("_at") || key == "first_seen";
                    let normalised = match field {
                        Value::Number(_) if timed => Value::String("<time>".into()),
                        Value::String(text) if GENERATED.contains(&key.as_str()) => {
                            let next = self.seen.len();
                            let n = *self.seen.entry(text.clone()).or_insert(next);
                            Value::String(format!("<{n}>"))
                        }
                        other => self.value(other),
                    };
                    out.insert(key.clone(), normalised);
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            other => other.clone(),
        }
    }
}

/// Every operator command, in an order that makes each meaningful; the JSON each printed.
fn scenario(d: &Deployment) -> Vec<(String, Value)> {
    let mut outputs: Vec<(String, Value)> = Vec::new();
    let mut step = |label: &str, value: Value| outputs.push((label.to_owned(), value));
    step(
        "servers add",
        d.json(&[
            "servers",
            "add",
            "demo",
            "--url",
            "http://127.0.0.1:9/mcp",
            "--credential",
            "X-Api-Key: upstream-s3cret",
        ]),
    );
    step(
        "servers update",
        d.json(&[
            "servers",
            "update",
            "demo",
            "--url",
            "http://127.0.0.1:10/mcp",
        ]),
    );
    step("servers list", d.json(&["servers", "list"]));
    step("servers show", d.json(&["servers", "show", "demo"]));
    d.observe_changed_tools();
    step("servers tools", d.json(&["servers", "tools", "demo"]));
    step(
        "servers reject-tools",
        d.json(&["servers", "reject-tools", "demo", "--tool", "echo"]),
    );
    step(
        "servers approve-tools",
        d.json(&["servers", "approve-tools", "demo"]),
    );
    step("servers tools after", d.json(&["servers", "tools", "demo"]));

    step(
        "clients create",
        d.json(&["clients", "create", "agent", "--description", "the agent"]),
    );
    step(
        "clients create spare",
        d.json(&["clients", "create", "spare"]),
    );
    step("clients disable", d.json(&["clients", "disable", "spare"]));
    step("clients enable", d.json(&["clients", "enable", "spare"]));
    step("clients list", d.json(&["clients", "list"]));
    step("clients show", d.json(&["clients", "show", "agent"]));

    step(
        "connections grant",
        d.json(&[
            "connections",
            "grant",
            "--client",
            "agent",
            "--server",
            "demo",
            "--tools",
            "echo,add",
        ]),
    );
    step("connections list", d.json(&["connections", "list"]));

    let key = d.json(&[
        "keys", "create", "--client", "agent", "--label", "ci", "--tools", "echo",
    ]);
    let key_id = key["id"].as_str().unwrap().to_owned();
    step("keys create", key);
    step("keys list", d.json(&["keys", "list", "--client", "agent"]));
    let rotated = d.json(&["keys", "rotate", &key_id, "--overlap", "0s"]);
    let successor = rotated["id"].as_str().unwrap().to_owned();
    step("keys rotate", rotated);
    step("keys revoke", d.json(&["keys", "revoke", &successor]));

    step(
        "policy add",
        d.json(&[
            "policy",
            "add",
            "rate",
            "--kind",
            "rate_limit",
            "--client",
            "agent",
            "--spec",
            r#"{"requests": 60, "period": "1m"}"#,
        ]),
    );
    let file = d.unused.path().join("policies.json");
    std::fs::write(
        &file,
        r#"[{"id": "office", "kind": "ip", "spec": {"allow": ["10.0.0.0/8"]}}]"#,
    )
    .unwrap();
    step(
        "policy import",
        d.json(&["policy", "import", file.to_str().unwrap()]),
    );
    step("policy list", d.json(&["policy", "list"]));
    step(
        "policy explain",
        d.json(&[
            "policy", "explain", "--client", "agent", "--server", "demo", "--tool", "echo", "--ip",
            "10.1.2.3",
        ]),
    );
    step("policy remove", d.json(&["policy", "remove", "rate"]));

    step(
        "users add",
        d.json_with_input(
            &[
                "users",
                "add",
                "alice",
                "--display-name",
                "Alice",
                "--groups",
                "eng",
                "--password-stdin",
            ],
            Some("first-password-1\n"),
        ),
    );
    step(
        "users update",
        d.json(&[
            "users",
            "update",
            "alice",
            "--display-name",
            "Alice Liddell",
        ]),
    );
    step(
        "users set-groups",
        d.json(&["users", "set-groups", "alice", "--groups", "eng,ops"]),
    );
    let out = d.run_with_input(
        &["users", "set-password", "alice"],
        Some("second-password-2\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    step("users disable", d.json(&["users", "disable", "alice"]));
    step("users enable", d.json(&["users", "enable", "alice"]));
    step("users list", d.json(&["users", "list"]));
    // A person's grants at upstreams: none, then one kept for alice at a per-user server.
    step(
        "servers add per-user",
        d.json(&[
            "servers",
            "add",
            "files",
            "--url",
            "http://127.0.0.1:9/mcp",
            "--authorization-endpoint",
            "http://127.0.0.1:9/authorize",
            "--token-endpoint",
            "http://127.0.0.1:9/token",
            "--client-id",
            "gatehouse",
            "--auth-method",
            "none",
            "--identity-header",
            "X-Gatehouse-Identity",
        ]),
    );
    step(
        "servers update per-user",
        d.json(&["servers", "update", "files", "--no-identity-header"]),
    );
    step(
        "users upstream-grants list none",
        d.json(&["users", "upstream-grants", "list"]),
    );
    d.put_upstream_grant("alice", "files");
    let listed = d.json(&["users", "upstream-grants", "list"]);
    assert_eq!(listed[0]["user"], "alice", "{} {listed}", d.mode());
    step("users upstream-grants list", listed);
    step(
        "users upstream-grants list --user",
        d.json(&["users", "upstream-grants", "list", "--user", "alice"]),
    );
    let out = d.run_with_input(
        &["users", "upstream-grants", "revoke", "alice", "files"],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    step(
        "users upstream-grants list after",
        d.json(&["users", "upstream-grants", "list"]),
    );
    step(
        "servers remove per-user",
        d.json(&["servers", "remove", "files"]),
    );
    step(
        "servers add stdio",
        d.json(&[
            "servers",
            "add",
            "local",
            "--command",
            "python3",
            "--arg",
            "-u",
            "--env",
            "NOTES_TOKEN=stdio-s3cret",
            "--sharing",
            "per_principal",
            "--max-children",
            "2",
            "--idle-timeout",
            "5m",
        ]),
    );
    step(
        "servers update stdio",
        d.json(&[
            "servers",
            "update",
            "local",
            "--command",
            "python3",
            "--arg",
            "-I",
        ]),
    );
    step(
        "servers remove stdio",
        d.json(&["servers", "remove", "local"]),
    );
    d.json(&[
        "groups", "grant", "eng", "--server", "demo", "--tools", "echo",
    ]);
    step("groups list", d.json(&["groups", "list"]));
    d.json(&["groups", "revoke", "eng", "--server", "demo"]);
    step("groups list after", d.json(&["groups", "list"]));

    step("clients oauth", d.json(&["clients", "oauth", "agent"]));
    let rotated = d.json(&["clients", "rotate-secret", "agent", "--overlap", "1h"]);
    let secret_id = rotated["secret_id"].as_str().unwrap().to_owned();
    step("clients rotate-secret", rotated);
    let out = d.run_with_input(&["clients", "revoke-secret", &secret_id], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    step("clients secrets", d.json(&["clients", "secrets", "agent"]));

    step(
        "signing-keys rotate",
        d.json(&["signing-keys", "rotate", "--now", "--alg", "ES256"]),
    );
    // A running server made its first signing key when it started: compare the one made here.
    let keys = d.json(&["signing-keys", "list"]);
    let made: Vec<Value> = keys
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "ES256")
        .cloned()
        .collect();
    step("signing-keys list", Value::Array(made));

    let created = d.json(&[
        "admin-tokens",
        "create",
        "--name",
        "console",
        "--role",
        "auditor",
    ]);
    let token_id = created["admin_token"]["id"].as_str().unwrap().to_owned();
    step("admin-tokens create", created);
    step(
        "admin-tokens revoke",
        d.json(&["admin-tokens", "revoke", &token_id]),
    );

    step("clients delete", d.json(&["clients", "delete", "spare"]));
    step(
        "connections revoke",
        d.json(&[
            "connections",
            "revoke",
            "--client",
            "agent",
            "--server",
            "demo",
        ]),
    );
    step("servers remove", d.json(&["servers", "remove", "demo"]));
    step("servers list after", d.json(&["servers", "list"]));

    // The operator events both ways: the same actions on the same kinds of record (after the
    // remote deployment's setup, which made its admin token).
    let events = d.json(&["audit", "query", "--kind", "operator", "--limit", "0"]);
    let actions: Vec<Value> = events
        .as_array()
        .unwrap()
        .iter()
        .skip_while(|e| e["operator"]["action"] != "server.add")
        .map(|e| serde_json::json!([e["operator"]["action"], e["operator"]["target_kind"]]))
        .collect();
    step("audit query --kind operator", Value::Array(actions));
    outputs
}

#[test]
fn every_operator_command_prints_the_same_locally_and_through_the_admin_api() {
    let local = Deployment::local();
    let remote = Deployment::remote();
    let local_outputs = scenario(&local);
    let remote_outputs = scenario(&remote);
    assert_eq!(local_outputs.len(), remote_outputs.len());
    let (mut left, mut right) = (
        Normaliser {
            seen: HashMap::new(),
        },
        Normaliser {
            seen: HashMap::new(),
        },
    );
    for ((label, l), (_, r)) in local_outputs.iter().zip(&remote_outputs) {
        assert_eq!(
            left.value(l),
            right.value(r),
            "{label}: local and remote differ\nlocal:  {l}\nremote: {r}"
        );
    }
    let dump = local_outputs
        .iter()
        .map(|(_, v)| v.to_string())
        .collect::<String>();
    assert!(
        !["upstream-s3cret", "grant-s3cret", "stdio-s3cret"]
            .iter()
            .any(|secret| dump.contains(secret)),
        "never the upstream credential, a person's tokens nor a program's environment"
    );
    assert!(
        !remote.unused.path().join("never").exists(),
        "the remote mode never opens a local database"
    );
    // The operator events name who made them: the actor locally, the token remotely.
    let actor = |d: &Deployment| {
        let events = d.json(&["audit", "query", "--kind", "operator", "--limit", "1"]);
        events[0]["operator"]["actor"].as_str().unwrap().to_owned()
    };
    assert_eq!(actor(&local), "tester");
    assert!(
        actor(&remote).starts_with("admin-token:cli ("),
        "{}",
        actor(&remote)
    );
}

#[test]
fn read_on_the_same_store_the_output_is_byte_for_byte_the_same_in_json_and_yaml() {
    let remote = Deployment::remote();
    remote.json(&["servers", "add", "demo", "--url", "http://127.0.0.1:9/mcp"]);
    remote.json(&[
        "clients",
        "create",
        "agent",
        "--description",
        "yes: no # not a comment",
    ]);
    remote.json(&[
        "connections",
        "grant",
        "--client",
        "agent",
        "--server",
        "demo",
        "--tools",
        "*",
    ]);
    remote.json(&["keys", "create", "--client", "agent"]);
    // More clients than one page of the API holds (500): the remote list follows the cursor.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = format!(
        "sqlite://{}",
        remote.dir.path().join("gatehouse.db").display()
    );
    let store = runtime.block_on(gatehouse::store::open(&url)).unwrap();
    for n in 0..520 {
        let client = gatehouse_model::records::ClientRecord {
            name: format!("bulk-{n:04}"),
            description: String::new(),
            disabled_at: None,
            created_at: 1_000,
            oauth: None,
        };
        runtime.block_on(store.insert_client(&client)).unwrap();
    }
    assert_eq!(
        remote.json(&["clients", "list"]).as_array().unwrap().len(),
        521
    );
    // The local mode on the server's own data directory: the same store.
    for list in [
        ["servers", "list"],
        ["clients", "list"],
        ["connections", "list"],
        ["keys", "list"],
        ["admin-tokens", "list"],
    ] {
        for format in ["json", "yaml"] {
            let mut args = vec!["-o", format];
            args.extend_from_slice(&list);
            let remote_out = remote.run_with_input(&args, None);
            let mut command = gatehouse();
            command.arg("--data-dir").arg(remote.dir.path()).args(&args);
            let local_out = command.output().unwrap();
            assert!(remote_out.status.success() && local_out.status.success());
            assert_eq!(
                String::from_utf8(local_out.stdout).unwrap(),
                String::from_utf8(remote_out.stdout.clone()).unwrap(),
                "{list:?} -o {format}"
            );
            if format == "yaml" {
                let json = remote.json(&list);
                let yaml = String::from_utf8(remote_out.stdout).unwrap();
                assert_eq!(yaml_as_json(&yaml), stringified(&json), "{list:?}");
            }
        }
    }
}

/// A YAML document as JSON, every scalar a string (the parser does not type them).
fn yaml_as_json(text: &str) -> Value {
    use saphyr_parser::{Event, Parser};
    let mut stack: Vec<(Value, Option<String>)> = Vec::new();
    let mut done = None;
    for event in Parser::new_from_str(text) {
        let (event, _) = event.unwrap_or_else(|e| panic!("YAML: {e}\n{text}"));
        let value = match event {
            Event::MappingStart(..) => {
                stack.push((Value::Object(Map::new()), None));
                continue;
            }
            Event::SequenceStart(..) => {
                stack.push((Value::Array(Vec::new()), None));
                continue;
            }
            Event::MappingEnd | Event::SequenceEnd => stack.pop().unwrap().0,
            Event::Scalar(text, ..) => Value::String(text.into_owned()),
            _ => continue,
        };
        match stack.last_mut() {
            None => done = Some(value),
            Some((Value::Array(items), _)) => items.push(value),
            Some((Value::Object(map), pending)) => match pending.take() {
                None => *pending = Some(value.as_str().unwrap().to_owned()),
                Some(key) => {
                    map.insert(key, value);
                }
            },
            Some(_) => unreachable!(),
        }
    }
    done.expect("a document")
}

fn stringified(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), stringified(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(stringified).collect()),
        Value::String(text) => Value::String(text.clone()),
        other => Value::String(other.to_string()),
    }
}
