//! The `gatehouse` binary as an operator uses it: exit codes, messages, JSON output, the demo.
//! The operator tests run twice: on the local database, and through `--server` against a
//! running `gatehouse serve` on that same data directory (its admin API).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::Value;
use std::process::{Child, Command, Output};

struct Cli {
    dir: tempfile::TempDir,
    /// `--server` URL and admin token, and the server, killed with the test.
    remote: Option<(String, String, Running)>,
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `test` on the local database, then through the admin API of a running server.
fn both(test: impl Fn(Cli)) {
    test(Cli::new());
    test(Cli::remote());
}

impl Cli {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            remote: None,
        }
    }

    /// `gatehouse serve` on a fresh data directory, its admin listener on a free port, and an
    /// admin token made before it started.
    fn remote() -> Self {
        let local = Self::new();
        let created = local.json(&["admin-tokens", "create", "--name", "cli", "--role", "admin"]);
        let token = created["token"].as_str().unwrap().to_owned();
        let port = gatehouse_testkit::process::free_loopback_port().unwrap();
        let admin = format!("127.0.0.1:{port}");
        let (child, _) =
            common::serve_with(local.dir.path(), &[("GATEHOUSE_ADMIN_LISTEN", &admin)]);
        let running = Running(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(&admin).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the admin listener on {admin} did not come up"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self {
            dir: local.dir,
            remote: Some((format!("http://{admin}"), token, running)),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        command
            .arg("--data-dir")
            .arg(self.dir.path())
            .env_remove("GATEHOUSE_MASTER_KEY")
            .env_remove("GATEHOUSE_SERVER")
            .env_remove("GATEHOUSE_PROFILE");
        if let Some((url, token, _)) = &self.remote {
            command
                .args(["--server", url])
                .env("GATEHOUSE_ADMIN_TOKEN", token);
        }
        command.args(args);
        command
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    fn fails(&self, args: &[&str], message: &str) {
        let out = self.run(args);
        // 1: the operation was refused; 2: the command line itself was wrong (clap's usage code).
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "{args:?} should fail"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(message),
            "{args:?}: expected {message:?} in {stderr:?}"
        );
    }
}

#[test]
fn bad_input_gets_a_clear_error_and_exit_code_1() {
    both(|cli| {
        cli.ok(&["servers", "add", "demo", "--url", "http://127.0.0.1:9/mcp"]);
        cli.fails(
            &["servers", "add", "demo", "--url", "http://127.0.0.1:9/mcp"],
            "server \"demo\" already exists",
        );
        cli.fails(
            &["servers", "add", "Demo!", "--url", "http://127.0.0.1:9/mcp"],
            "invalid server name",
        );
        cli.fails(
            &["servers", "add", "x", "--url", "not a url"],
            "invalid url",
        );
        cli.fails(
            &[
                "servers",
                "add",
                "y",
                "--url",
                "http://h/mcp",
                "--credential",
                "no-colon",
            ],
            "Header-Name: value",
        );
        cli.ok(&["clients", "create", "agent"]);
        cli.fails(
            &[
                "connections",
                "grant",
                "--client",
                "agent",
                "--server",
                "nope",
                "--tools",
                "echo",
            ],
            "server \"nope\" not found",
        );
        cli.fails(
            &[
                "connections",
                "grant",
                "--client",
                "ghost",
                "--server",
                "demo",
                "--tools",
                "echo",
            ],
            "client \"ghost\" not found",
        );
        cli.fails(
            &[
                "connections",
                "grant",
                "--client",
                "agent",
                "--server",
                "demo",
                "--tools",
                "ec[ho",
            ],
            "bad tool pattern",
        );
        cli.fails(
            &["keys", "create", "--client", "ghost"],
            "client \"ghost\" not found",
        );
        cli.fails(
            &[
                "keys",
                "create",
                "--client",
                "agent",
                "--expires-in",
                "soon",
            ],
            "invalid duration",
        );
        cli.fails(&["keys", "revoke", "nope"], "not found");
        cli.fails(
            &["audit", "query", "--decision", "maybe"],
            "not one of allow, deny, error",
        );
        let file = cli.dir.path().join("policies.json");
        std::fs::write(
            &file,
            r#"[{"id": "fine", "kind": "rate_limit", "spec": {"requests": 1, "period": "1s"}},
                {"id": "broken", "kind": "ip", "spec": {"allow": ["10.0.0.0/99"]}}]"#,
        )
        .unwrap();
        cli.fails(
            &["policy", "import", file.to_str().unwrap()],
            "policy \"broken\"",
        );
        assert_eq!(
            cli.json(&["policy", "list"]).as_array().unwrap().len(),
            0,
            "a bad file adds nothing"
        );
        cli.fails(
            &[
                "policy",
                "add",
                "p",
                "--kind",
                "schedule",
                "--spec",
                r#"{"time_zone": "Mars/Base"}"#,
            ],
            "unknown time zone",
        );
        // Nothing half-written: the failed commands left exactly what the successful ones made.
        assert_eq!(cli.json(&["servers", "list"]).as_array().unwrap().len(), 1);
        assert_eq!(cli.json(&["keys", "list"]).as_array().unwrap().len(), 0);
    });
}

#[test]
fn keys_lifecycle_in_json() {
    both(|cli| {
        cli.ok(&[
            "servers",
            "add",
            "demo",
            "--url",
            "http://127.0.0.1:9/mcp",
            "--credential",
            "Authorization: Bearer upstream-s3cret",
        ]);
        cli.ok(&["clients", "create", "agent"]);
        let grant = cli.json(&[
            "connections",
            "grant",
            "--client",
            "agent",
            "--server",
            "demo",
            "--tools",
            "echo,add",
        ]);
        assert_eq!(grant["tools"], serde_json::json!(["echo", "add"]));
        let key = cli.json(&[
            "keys",
            "create",
            "--client",
            "agent",
            "--expires-in",
            "30d",
            "--tools",
            "echo",
        ]);
        let token = key["token"].as_str().unwrap();
        assert!(token.starts_with("gth_"));
        let id = key["id"].as_str().unwrap().to_owned();
        let listed = cli.ok(&["keys", "list"]);
        assert!(
            listed.contains(&id) && !listed.contains(token),
            "the token is shown once only"
        );
        let rotated = cli.json(&["keys", "rotate", &id, "--overlap", "0s"]);
        assert_eq!(rotated["rotated_from"], id.as_str());
        let revoked = cli.json(&["keys", "revoke", rotated["id"].as_str().unwrap()]);
        assert!(revoked["revoked_at"].is_i64());
        // The upstream credential is never printed back.
        let shown = cli.ok(&["servers", "show", "demo"])
            + &cli.ok(&["--output", "json", "servers", "list"]);
        assert!(!shown.contains("upstream-s3cret"), "{shown}");
        assert!(shown.contains("authorization"));
    });
}

#[test]
fn the_demo_shows_allowed_denied_and_unauthenticated_calls_and_their_audit() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["--output", "json", "--data-dir"])
        .arg(dir.path())
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--once")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let statuses: Vec<u64> = report["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_u64().unwrap())
        .collect();
    // The fourth call uses an OAuth access token from the client-credentials grant.
    assert_eq!(statuses, [200, 403, 401, 200]);
    assert!(
        report["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("gcs_")
    );
    assert_eq!(
        report["calls"][0]["body"]["result"]["content"][0]["text"],
        "hello from the demo"
    );
    // The token request is audited too.
    assert_eq!(report["audit_events"], 5);
    // The console is up on its own listener, with an admin token to sign in with.
    let console = report["console"].as_str().unwrap();
    assert!(
        console.starts_with("http://127.0.0.1:") && console.ends_with("/console"),
        "{console}"
    );
    assert!(
        report["admin_token"].as_str().unwrap().starts_with("gth_"),
        "{report}"
    );

    let cli = Cli { dir, remote: None };
    let tokens = cli.json(&["admin-tokens", "list"]);
    assert_eq!(tokens.as_array().unwrap().len(), 1, "{tokens:?}");
    assert_eq!(tokens[0]["name"], "demo-console");
    assert_eq!(tokens[0]["role"], "admin");
    assert!(tokens[0]["expires_at"].is_number(), "{tokens:?}");
    let tail = cli.json(&["audit", "tail"]);
    let tail = tail.as_array().unwrap();
    // First the console token's creation, an operator event like any other change.
    assert_eq!(
        tail[0]["operator"]["action"], "admin_token.create",
        "{:#}",
        tail[0]
    );
    let reasons: Vec<&str> = tail[1..]
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        reasons,
        ["-", "-", "tool_not_granted", "missing_credential", "-"]
    );
    assert!(cli.ok(&["audit", "verify"]).contains("intact: 6 events"));

    // Edit a row behind Gatehouse's back, as with the sqlite3 shell: verify fails and says where.
    let db = cli.dir.path().join("gatehouse.db");
    let status = Command::new("sqlite3")
        .arg(&db)
        .arg("UPDATE audit_events SET decision = 'allow' WHERE seq = 4;")
        .status()
        .expect("the sqlite3 shell (Debian package sqlite3; .ci/run installs it)");
    assert!(status.success());
    let out = cli.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let printed = String::from_utf8_lossy(&out.stdout);
    // Chain 1 is the demo's own (the console token), chain 2 the gateway's calls.
    assert!(printed.contains("chain 2: row 3 was modified"), "{printed}");
}

impl Cli {
    /// The store in this data directory, as a running server sees it.
    fn store(&self) -> (tokio::runtime::Runtime, gatehouse::store::DynStore) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let url = format!(
            "sqlite://{}",
            self.dir.path().join("gatehouse.db").display()
        );
        let store = runtime.block_on(gatehouse::store::open(&url)).unwrap();
        (runtime, store)
    }
}

/// A heartbeat row as a running replica would write it.
fn replica(
    id: &str,
    applied: i64,
    heartbeat_ms: i64,
) -> gatehouse_model::records::ReplicaHeartbeat {
    gatehouse_model::records::ReplicaHeartbeat {
        replica_id: id.into(),
        applied_generation: applied,
        heartbeat_ms,
        started_ms: heartbeat_ms - 1_000,
        version: "0.0.0".into(),
        listen: "127.0.0.1:8080".into(),
    }
}

#[test]
fn a_country_policy_is_refused_where_no_geoip_database_is_configured() {
    both(|cli| {
        let add = [
            "policy",
            "add",
            "europe",
            "--kind",
            "country",
            "--spec",
            r#"{"allow": ["FR"]}"#,
        ];
        cli.fails(&add, "policy.geoip_database");
        let file = cli.dir.path().join("policies.json");
        std::fs::write(
            &file,
            r#"[{"id": "europe", "kind": "country", "spec": {"allow": ["FR"]}}]"#,
        )
        .unwrap();
        cli.fails(
            &["policy", "import", file.to_str().unwrap()],
            "policy.geoip_database",
        );
        assert_eq!(cli.json(&["policy", "list"]).as_array().unwrap().len(), 0);
    });
}

#[test]
fn a_change_the_running_server_has_not_applied_is_an_error() {
    both(|cli| {
        cli.ok(&["clients", "create", "agent"]);
        let key = cli.json(&["keys", "create", "--client", "agent"]);
        let key_id = key["id"].as_str().unwrap().to_owned();
        // A server that is alive (fresh heartbeat) but stuck at generation 1.
        let (runtime, store) = cli.store();
        runtime
            .block_on(store.report_replica(&replica("stuck", 1, gatehouse::now_ms() + 60_000)))
            .unwrap();
        let out = cli.run(&["keys", "revoke", &key_id]);
        assert_eq!(out.status.code(), Some(1), "not applied must not succeed");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("has not applied it"), "{stderr}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("revoked"),
            "nothing claims the key is revoked"
        );
    });
}

#[test]
fn one_replica_up_to_date_is_not_enough_while_another_is_behind() {
    let cli = Cli::new();
    cli.ok(&["clients", "create", "agent"]);
    let key = cli.json(&["keys", "create", "--client", "agent"]);
    let key_id = key["id"].as_str().unwrap().to_owned();
    let (runtime, store) = cli.store();
    let fresh = gatehouse::now_ms() + 60_000;
    for row in [replica("ahead", 1_000, fresh), replica("stuck", 1, fresh)] {
        runtime.block_on(store.report_replica(&row)).unwrap();
    }
    let out = cli.run(&["keys", "revoke", &key_id]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one replica behind must fail it"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 of 2 running replica(s) has not applied it"),
        "{stderr}"
    );
    assert!(stderr.contains("\"stuck\" runs generation 1"), "{stderr}");
    assert!(!stderr.contains("ahead"), "{stderr}");
}

#[test]
fn a_replica_without_a_recent_heartbeat_is_not_waited_for_and_named() {
    let cli = Cli::new();
    cli.ok(&["clients", "create", "agent"]);
    let key = cli.json(&["keys", "create", "--client", "agent"]);
    let key_id = key["id"].as_str().unwrap().to_owned();
    let (runtime, store) = cli.store();
    let silent = gatehouse::now_ms() - 60_000;
    runtime
        .block_on(store.report_replica(&replica("crashed", 1, silent)))
        .unwrap();
    let out = cli.run(&["keys", "revoke", &key_id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("not waiting for replica(s) without a heartbeat")
            && stderr.contains("\"crashed\""),
        "{stderr}"
    );
}

#[test]
fn status_lists_each_replica_and_whether_it_is_live() {
    let cli = Cli::new();
    cli.ok(&["clients", "create", "agent"]);
    let (runtime, store) = cli.store();
    let generation = runtime.block_on(store.generation()).unwrap();
    let now = gatehouse::now_ms();
    for row in [
        replica("gw-1", generation, now + 60_000),
        replica("gw-2", generation - 1, now + 60_000),
        replica("gw-old", 1, now - 60_000),
    ] {
        runtime.block_on(store.report_replica(&row)).unwrap();
    }
    let status = cli.json(&["status"]);
    assert_eq!(status["server"]["running"], true);
    assert_eq!(status["server"]["applied_generation"], generation - 1);
    let replicas = status["replicas"].as_array().unwrap();
    let live: Vec<_> = replicas
        .iter()
        .map(|r| {
            (
                r["replica_id"].as_str().unwrap(),
                r["live"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(live, [("gw-1", true), ("gw-2", true), ("gw-old", false)]);
    assert_eq!(replicas[0]["listen"], "127.0.0.1:8080");
    let text = cli.ok(&["status"]);
    assert!(text.contains("running (2 replica(s))"), "{text}");
    assert!(
        text.contains(&format!(
            "replica \"gw-2\": running, applied generation {} (behind)",
            generation - 1
        )),
        "{text}"
    );
    assert!(
        text.contains("replica \"gw-old\": no heartbeat since"),
        "{text}"
    );
}

#[test]
fn status_shows_the_applied_generation_counts_and_reload_issues() {
    let cli = Cli::new();
    cli.ok(&["servers", "add", "demo", "--url", "http://127.0.0.1:9/mcp"]);
    cli.ok(&["clients", "create", "agent"]);
    let (runtime, store) = cli.store();
    runtime
        .block_on(
            store.report_reload(&gatehouse_model::records::ReloadReport {
                generation: 3,
                issues: vec![gatehouse_model::records::RecordIssue::new(
                    "policy",
                    "europe",
                    "country policies need policy.geoip_database",
                    "deny-all",
                )],
                error: None,
            }),
        )
        .unwrap();
    let status = cli.json(&["status"]);
    assert_eq!(status["counts"]["servers"], 1);
    assert_eq!(status["counts"]["clients"], 1);
    assert_eq!(status["server"]["running"], false);
    assert_eq!(status["reload"]["issues"][0]["id"], "europe");
    let text = cli.ok(&["status"]);
    assert!(
        text.contains("policy \"europe\": country policies need"),
        "{text}"
    );
    assert!(text.contains("1 servers, 1 clients"), "{text}");
}

#[test]
fn operator_details_expiry_regrant_errors_and_closed_pipes() {
    both(|cli| {
        cli.ok(&["servers", "add", "demo", "--url", "http://127.0.0.1:9/mcp"]);
        cli.ok(&["clients", "create", "agent"]);
        cli.fails(
            &["keys", "create", "--client", "agent", "--expires-in", "0d"],
            "longer than zero",
        );
        // Granting again without --tools (to add resources) keeps the tools.
        cli.ok(&[
            "connections",
            "grant",
            "--client",
            "agent",
            "--server",
            "demo",
            "--tools",
            "echo,add",
        ]);
        let regrant = cli.json(&[
            "connections",
            "grant",
            "--client",
            "agent",
            "--server",
            "demo",
            "--resources",
        ]);
        assert_eq!(regrant["tools"], serde_json::json!(["echo", "add"]));
        assert_eq!(regrant["resources"], true);

        // Errors under --output json are one JSON object.
        let out = cli.run(&["--output", "json", "keys", "revoke", "nope"]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        let error: Value = serde_json::from_str(&stderr).unwrap();
        assert!(
            error["error"].as_str().unwrap().contains("not found"),
            "{error}"
        );

        // A reader that stops early (`| head`) is not a crash.
        let mut child = cli
            .command(&["--output", "json", "connections", "list"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(out.status.success(), "{stderr}");
    });
}

#[test]
fn a_new_data_directory_is_named_where_it_is_created() {
    let cli = Cli::new();
    let fresh = cli.dir.path().join("fresh");
    let list = || {
        Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("--data-dir")
            .arg(&fresh)
            .args(["clients", "list"])
            .output()
            .unwrap()
    };
    let out = list();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("created the data directory {}", fresh.display())),
        "{stderr}"
    );
    // Said once, when it is created.
    let again = list();
    assert!(again.status.success());
    assert!(!String::from_utf8_lossy(&again.stderr).contains("created"));
}

#[test]
fn servers_update_changes_the_url_and_the_credential() {
    both(|cli| {
        cli.ok(&["servers", "add", "demo", "--url", "http://127.0.0.1:9/mcp"]);
        cli.ok(&["clients", "create", "agent"]);
        cli.ok(&[
            "connections",
            "grant",
            "--client",
            "agent",
            "--server",
            "demo",
            "--tools",
            "echo",
        ]);
        let updated = cli.json(&[
            "servers",
            "update",
            "demo",
            "--url",
            "http://127.0.0.1:10/mcp",
            "--credential",
            "X-Api-Key: upstream-s3cret",
        ]);
        let server = if updated.is_array() {
            &updated[0]
        } else {
            &updated
        };
        assert_eq!(server["url"], "http://127.0.0.1:10/mcp");
        assert_eq!(server["credential_header"], "x-api-key");
        assert!(!updated.to_string().contains("upstream-s3cret"));
        let cleared = cli.json(&["servers", "update", "demo", "--no-credential"]);
        let server = if cleared.is_array() {
            &cleared[0]
        } else {
            &cleared
        };
        assert_eq!(server["credential_header"], Value::Null);
        assert_eq!(server["url"], "http://127.0.0.1:10/mcp", "the URL stays");
        assert_eq!(
            cli.json(&["connections", "list"]).as_array().unwrap().len(),
            1,
            "connections stay"
        );
        cli.fails(
            &["servers", "update", "demo", "--url", "ftp://x"],
            "http://",
        );
        cli.fails(
            &["servers", "update", "ghost", "--url", "http://h/mcp"],
            "not found",
        );
        cli.fails(&["servers", "update", "demo"], "nothing to change");
    });
}

#[test]
fn policy_explain_covers_guardrails_and_keys() {
    both(|cli| {
        cli.ok(&["servers", "add", "demo", "--url", "http://127.0.0.1:9/mcp"]);
        cli.ok(&["clients", "create", "agent"]);
        cli.ok(&[
            "connections",
            "grant",
            "--client",
            "agent",
            "--server",
            "demo",
            "--tools",
            "*",
        ]);
        cli.ok(&[
            "policy",
            "add",
            "no-words",
            "--kind",
            "guardrail",
            "--spec",
            r#"{"action": "block", "words": ["forbidden"]}"#,
        ]);
        let explain = |extra: &[&str]| {
            let mut args = vec!["-o", "json", "policy", "explain", "--server", "demo"];
            args.extend_from_slice(extra);
            let out = cli.run(&args);
            let json: Value = serde_json::from_slice(&out.stdout).unwrap();
            (out.status.code(), json)
        };
        let (code, answer) = explain(&[
            "--client",
            "agent",
            "--tool",
            "echo",
            "--args",
            r#"{"text": "a forbidden word"}"#,
        ]);
        assert_eq!(code, Some(3), "{answer}");
        assert_eq!(answer["decided_by"], "guardrail:no-words");
        let (code, _) = explain(&[
            "--client",
            "agent",
            "--tool",
            "echo",
            "--args",
            r#"{"text": "fine"}"#,
        ]);
        assert_eq!(code, Some(0));

        let key = cli.json(&["keys", "create", "--client", "agent", "--tools", "echo"]);
        let key_id = key["id"].as_str().unwrap();
        let (code, answer) = explain(&["--key", key_id, "--tool", "add"]);
        assert_eq!(code, Some(3), "the key's narrowing applies: {answer}");
        assert!(
            answer["steps"].to_string().contains("connection ∩ key"),
            "{answer}"
        );
        let (code, _) = explain(&["--key", key_id, "--tool", "echo"]);
        assert_eq!(code, Some(0));
    });
}

#[test]
fn a_configuration_error_is_printed_once() {
    let cli = Cli::new();
    let file = cli.dir.path().join("gatehouse.toml");
    std::fs::write(&file, "listen_adress = \"127.0.0.1:1\"\n").unwrap();
    let out = cli.run(&["--config", file.to_str().unwrap(), "status"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("unknown field").count(), 1, "{stderr}");
}
