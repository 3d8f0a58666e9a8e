//! Every operator command run twice, the same scenario both ways: against the local database
//! and against a running `gatehouse serve` through `--server` and its admin API. Both must
//! succeed and print the same JSON (ids and times aside); read on the same store, the output
//! is byte for byte the same, in JSON and in YAML.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::deployment::{Deployment, gatehouse};
use serde_json::{Map, Value};
use std::{
    collections::HashMap,
    path::Path,
    process::{Output, Stdio},
    time::Duration,
};

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
        !dump.contains("upstream-s3cret"),
        "never the upstream credential"
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

#[test]
fn remote_refusals_say_how_to_fix_them_with_stable_exit_codes() {
    let remote = Deployment::remote();
    let (url, token) = remote.remote.clone().unwrap();
    let run = |args: &[&str], token: &str| {
        gatehouse()
            .args(["--server", &url])
            .args(args)
            .env("GATEHOUSE_ADMIN_TOKEN", token)
            .output()
            .unwrap()
    };
    let expect = |out: Output, code: i32, texts: &[&str]| {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        for text in texts {
            assert!(stderr.contains(text), "{text:?} in {stderr}");
        }
        stderr
    };
    let stderr = expect(
        run(&["clients", "show", "ghost"], &token),
        1,
        &[
            "client \"ghost\" not found",
            "hint: `gatehouse clients list` shows",
        ],
    );
    assert_eq!(stderr.lines().count(), 2, "one line and its hint: {stderr}");
    expect(
        run(&["clients", "list"], "gta_not.a-token"),
        4,
        &["not recognised", "hint:", "admin-tokens create"],
    );
    let auditor = remote.json(&[
        "admin-tokens",
        "create",
        "--name",
        "reader",
        "--role",
        "auditor",
    ])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    expect(
        run(&["clients", "create", "x"], &auditor),
        4,
        &["needs the operator role", "--role operator"],
    );
    remote.json(&["clients", "create", "dup"]);
    expect(
        run(&["clients", "create", "dup"], &token),
        1,
        &["already exists", "hint: it exists already"],
    );
    // JSON errors carry the problem's status and code.
    let out = run(&["-o", "json", "clients", "show", "ghost"], &token);
    let error: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(error["status"], 404);
    assert_eq!(error["code"], "not_found");
    assert!(error["hint"].as_str().unwrap().contains("clients list"));

    // `status` through the API: the running server as a live replica, up to date.
    let status = remote.json(&["status"]);
    assert_eq!(status["server"]["running"], true, "{status}");
    assert_eq!(status["server"]["applied_generation"], status["generation"]);
    // Local-only commands say so instead of touching anything.
    for args in [
        &["audit", "verify"][..],
        &["audit", "export", "--file", "x"],
        &["serve"],
        &["migrate", "--check"],
        &["database", "export"],
    ] {
        expect(run(args, &token), 2, &["local database only", "hint:"]);
    }
    // Nothing listens there: the hint names the admin listener's setting.
    let port = gatehouse_testkit::process::free_loopback_port().unwrap();
    let out = gatehouse()
        .args([
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "clients",
            "list",
        ])
        .env("GATEHOUSE_ADMIN_TOKEN", &token)
        .output()
        .unwrap();
    expect(out, 5, &["cannot reach the admin API", "admin_listen"]);
    let out = gatehouse()
        .args(["--server", "http://127.0.0.1:9", "clients", "list"])
        .output()
        .unwrap();
    expect(
        out,
        4,
        &[
            "needs an admin token",
            "GATEHOUSE_ADMIN_TOKEN",
            "admin-tokens create",
        ],
    );
}

#[test]
fn a_profile_names_the_server_and_where_its_token_is() {
    let remote = Deployment::remote();
    let (url, token) = remote.remote.clone().unwrap();
    let home = tempfile::tempdir().unwrap();
    let token_file = home.path().join("prod.token");
    write_private(&token_file, &format!("{token}\n"));
    let config = home.path().join("cli.toml");
    write_private(
        &config,
        &format!(
            "[profiles.prod]\nserver = {url:?}\ntoken_file = {:?}\n",
            token_file.to_str().unwrap()
        ),
    );
    let out = gatehouse()
        .args([
            "--profile",
            "prod",
            "-o",
            "json",
            "clients",
            "create",
            "via-profile",
        ])
        .env("GATEHOUSE_CLI_CONFIG", &config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        remote.json(&["clients", "show", "via-profile"])["name"],
        "via-profile"
    );
    // GATEHOUSE_PROFILE selects it too; a token in the environment wins over the profile's.
    let out = gatehouse()
        .args(["clients", "list"])
        .env("GATEHOUSE_CLI_CONFIG", &config)
        .env("GATEHOUSE_PROFILE", "prod")
        .env("GATEHOUSE_ADMIN_TOKEN", "gta_not.a-token")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = gatehouse().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains("admin-tokens") && script.contains("reject-tools"),
            "{shell}: the script names the subcommands"
        );
    }
    let out = gatehouse().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn audit_tail_follows_new_events_through_the_admin_api() {
    use std::io::BufRead;
    let remote = Deployment::remote();
    remote.json(&["clients", "create", "before"]);
    let mut tail = remote
        .command(&[
            "-o", "json", "audit", "tail", "-f", "-n", "1", "--kind", "operator",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = tail.stdout.take().unwrap();
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let next_target = || {
        let line = seen
            .recv_timeout(Duration::from_secs(30))
            .expect("audit tail -f printed an event within 30 s");
        let event: Value = serde_json::from_str(&line).unwrap();
        event["operator"]["target"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(next_target(), "before", "the newest event first");
    remote.json(&["clients", "create", "after"]);
    assert_eq!(next_target(), "after", "then each new one as it is written");
    let _ = tail.kill();
    let _ = tail.wait();
}

/// `audit query --rule` finds the events a rule decided, through the admin API as on the local
/// database, and the table shows the rule in its own column.
#[test]
fn audit_query_by_rule_is_the_same_locally_and_through_the_admin_api() {
    use gatehouse_model::audit::{AuditEvent, Decision};
    let remote = Deployment::remote();
    let rule_of = |n: i64| match n {
        2 | 5 => Some("policy:burst".to_owned()),
        3 => Some("guardrail:no-cards".to_owned()),
        _ => None,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = remote.dir.path();
        let url = format!("sqlite://{}", dir.join("gatehouse.db").display());
        let store = gatehouse::store::open(&url).await.unwrap();
        let keyring =
            std::sync::Arc::new(gatehouse::secrets::Keyring::load_or_create(dir).unwrap());
        let (sink, writer) = gatehouse::audit::AuditWriter::new(
            store,
            keyring,
            16,
            16,
            true,
            Duration::from_millis(1),
        );
        let stop = tokio_util::sync::CancellationToken::new();
        let running = tokio::spawn(writer.run(stop.clone()));
        for n in 1..=6 {
            sink.record(AuditEvent {
                ts_ms: 1_750_000_000_000 + n,
                request_id: format!("req-{n}"),
                client: Some("agent".into()),
                credential_id: None,
                user: None,
                ip: Some("127.0.0.1".into()),
                country: None,
                server: Some("demo".into()),
                http_method: "POST".into(),
                rpc_method: Some("tools/call".into()),
                tool: Some(format!("t{n}")),
                decision: if rule_of(n).is_some() {
                    Decision::Deny
                } else {
                    Decision::Allow
                },
                reason: None,
                status: 200,
                upstream_status: None,
                latency_us: 10,
                outcome: None,
                response_bytes: None,
                batch: Vec::new(),
                operator: None,
                rule: rule_of(n),
            })
            .await;
        }
        stop.cancel();
        running.await.unwrap();
    });
    let query = ["-o", "json", "audit", "query", "--rule", "policy:burst"];
    let remote_out = remote.run_with_input(&query, None);
    let local_out = gatehouse()
        .arg("--data-dir")
        .arg(remote.dir.path())
        .args(query)
        .output()
        .unwrap();
    assert!(remote_out.status.success() && local_out.status.success());
    assert_eq!(
        String::from_utf8(local_out.stdout).unwrap(),
        String::from_utf8(remote_out.stdout.clone()).unwrap()
    );
    let found: Value = serde_json::from_slice(&remote_out.stdout).unwrap();
    let tools: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["tool"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["t2", "t5"], "oldest first, only that rule");
    assert!(
        remote
            .json(&["audit", "query", "--rule", "grant"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    let table = remote.run_with_input(&["audit", "query", "--rule", "guardrail:no-cards"], None);
    let text = String::from_utf8(table.stdout).unwrap();
    let header = text.lines().next().unwrap();
    let row = text.lines().nth(1).expect("one row");
    assert!(
        row[header.find("RULE").unwrap()..].starts_with("guardrail:no-cards"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 2, "{text}");
}

/// `export` and `apply` through `--server` use the admin API's `/state` endpoints: the
/// document exported remotely is the one exported locally from the same store, applying it
/// back changes nothing, and a changed file is applied through the API (the server, not the
/// CLI, makes and audits the change).
#[test]
fn export_and_apply_work_through_the_admin_api() {
    let remote = Deployment::remote();
    remote.json(&["servers", "add", "demo", "--url", "http://127.0.0.1:9/mcp"]);
    remote.json(&["clients", "create", "agent", "--description", "first"]);
    let exported = remote.run_with_input(&["export"], None);
    assert!(exported.status.success(), "{exported:?}");
    let yaml = String::from_utf8(exported.stdout).unwrap();
    let mut local = gatehouse();
    local.arg("--data-dir").arg(remote.dir.path()).arg("export");
    let local_out = local.output().unwrap();
    assert!(local_out.status.success(), "{local_out:?}");
    assert_eq!(String::from_utf8(local_out.stdout).unwrap(), yaml);
    assert!(yaml.contains("demo:") && yaml.contains("agent:"), "{yaml}");

    let unchanged = remote.run_with_input(&["apply", "-f", "-"], Some(&yaml));
    assert!(unchanged.status.success(), "{unchanged:?}");
    assert!(
        String::from_utf8_lossy(&unchanged.stdout).contains("no changes"),
        "{unchanged:?}"
    );

    let changed = yaml.replace("description: first", "description: second");
    assert_ne!(changed, yaml);
    let pending = remote.run_with_input(
        &["apply", "-f", "-", "--dry-run", "--exit-code"],
        Some(&changed),
    );
    assert_eq!(pending.status.code(), Some(3), "{pending:?}");
    let applied = remote.json_with_input(&["apply", "-f", "-"], Some(&changed));
    assert_eq!(applied["applied"], 1, "{applied}");
    let agent = remote.json(&["clients", "list"]);
    assert_eq!(agent[0]["description"], "second", "{agent}");
}
