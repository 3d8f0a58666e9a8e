//! Every change an operator makes with the CLI records one operator event in the audit trail:
//! who (the account, or `--actor`), what, to which record, before and after, and never a secret.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn run_with(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(args)
            .env_remove("GATEHOUSE_MASTER_KEY")
            .env_remove("GATEHOUSE_ACTOR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, "")
    }

    fn ok_with(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run_with(args, stdin);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A change made as `alice`, in JSON.
    fn change(&self, args: &[&str]) -> Value {
        let mut all = vec!["--actor", "alice", "-o", "json"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or(Value::Null)
    }

    fn operator_events(&self) -> Vec<Value> {
        let out = self.ok(&["-o", "json", "audit", "query", "--kind", "operator"]);
        let rows: Value = serde_json::from_str(&out).unwrap();
        rows.as_array().unwrap().clone()
    }
}

/// Checks that exactly one event was recorded since the last check and returns its operator
/// part.
struct Trail<'a> {
    cli: &'a Cli,
    seen: usize,
}

impl Trail<'_> {
    fn one(&mut self, action: &str, target: &str) -> Value {
        let events = self.cli.operator_events();
        assert_eq!(
            events.len(),
            self.seen + 1,
            "{action}: exactly one new event in {events:#?}"
        );
        self.seen += 1;
        let op = events[self.seen - 1]["operator"].clone();
        assert_eq!(op["action"], action, "{op}");
        assert_eq!(op["target"], target, "{op}");
        assert_eq!(op["actor"], "alice", "{op}");
        assert_eq!(op["origin"], "cli", "{op}");
        op
    }
}

#[test]
fn every_change_made_with_the_cli_records_one_operator_event() {
    let cli = Cli::new();
    let mut trail = Trail { cli: &cli, seen: 0 };
    let mut secrets = vec!["Bearer cred-one".to_owned()];

    cli.change(&[
        "servers",
        "add",
        "demo",
        "--url",
        "http://127.0.0.1:9/mcp",
        "--credential",
        "Authorization: Bearer cred-one",
    ]);
    let op = trail.one("server.add", "demo");
    assert_eq!(op["after"]["credential_header"], "authorization");
    cli.change(&[
        "servers",
        "update",
        "demo",
        "--url",
        "http://127.0.0.1:10/mcp",
    ]);
    let op = trail.one("server.update", "demo");
    assert_eq!(
        (op["before"]["url"].as_str(), op["after"]["url"].as_str()),
        (
            Some("http://127.0.0.1:9/mcp"),
            Some("http://127.0.0.1:10/mcp")
        )
    );
    cli.change(&["servers", "approve-tools", "demo"]);
    trail.one("server.approve_tools", "demo");

    cli.change(&["clients", "create", "ci"]);
    trail.one("client.create", "ci");
    cli.change(&[
        "connections",
        "grant",
        "--client",
        "ci",
        "--server",
        "demo",
        "--tools",
        "echo",
    ]);
    trail.one("connection.grant", "ci/demo");

    let key = cli.change(&["keys", "create", "--client", "ci"]);
    let id = key["id"].as_str().unwrap().to_owned();
    secrets.push(key["token"].as_str().unwrap().to_owned());
    trail.one("key.create", &id);
    let successor = cli.change(&["keys", "rotate", &id]);
    secrets.push(successor["token"].as_str().unwrap().to_owned());
    let op = trail.one("key.rotate", &id);
    assert_eq!(op["after"]["successor"], successor["id"]);
    cli.change(&["keys", "revoke", &id]);
    let op = trail.one("key.revoke", &id);
    assert!(op["before"]["revoked_at"].is_null() && op["after"]["revoked_at"].is_i64());

    cli.change(&["clients", "disable", "ci"]);
    trail.one("client.disable", "ci");
    cli.change(&["clients", "enable", "ci"]);
    trail.one("client.enable", "ci");
    let registered = cli.change(&["clients", "oauth", "ci"]);
    secrets.push(registered["client_secret"].as_str().unwrap().to_owned());
    trail.one("client.register_oauth", "ci");
    let rotated = cli.change(&["clients", "rotate-secret", "ci"]);
    secrets.push(rotated["client_secret"].as_str().unwrap().to_owned());
    let secret_id = rotated["secret_id"].as_str().unwrap();
    trail.one("client_secret.rotate", secret_id);
    cli.change(&["clients", "revoke-secret", secret_id]);
    trail.one("client_secret.revoke", secret_id);
    let signing = cli.change(&["signing-keys", "rotate", "--now"]);
    trail.one("signing_key.rotate", signing["kid"].as_str().unwrap());

    cli.change(&[
        "policy",
        "add",
        "slow",
        "--kind",
        "rate-limit",
        "--spec",
        r#"{"requests": 60, "period": "1m"}"#,
    ]);
    trail.one("policy.add", "slow");
    let file = cli.dir.path().join("policies.json");
    std::fs::write(
        &file,
        r#"[{"id": "fast", "kind": "rate-limit", "spec": {"requests": 600, "period": "1m"}}]"#,
    )
    .unwrap();
    cli.change(&["policy", "import", file.to_str().unwrap()]);
    trail.one("policy.import", "fast");
    cli.change(&["policy", "remove", "slow"]);
    trail.one("policy.remove", "slow");

    let password = "a password long enough";
    secrets.push(password.into());
    let bob = cli.ok_with(
        &[
            "--actor",
            "alice",
            "-o",
            "json",
            "users",
            "add",
            "bob",
            "--password-stdin",
        ],
        &format!("{password}\n"),
    );
    let bob: Value = serde_json::from_str(&bob).unwrap();
    let bob_id = bob[0]["id"].as_str().unwrap();
    trail.one("user.create", bob_id);
    cli.change(&["users", "set-groups", "bob", "--groups", "ops"]);
    trail.one("user.set_groups", bob_id);
    cli.ok_with(
        &["--actor", "alice", "users", "set-password", "bob"],
        "another password, longer\n",
    );
    secrets.push("another password, longer".into());
    trail.one("user.set_password", bob_id);
    cli.change(&["users", "disable", "bob"]);
    trail.one("user.disable", bob_id);
    cli.change(&["users", "enable", "bob"]);
    trail.one("user.enable", bob_id);
    cli.change(&[
        "groups", "grant", "ops", "--server", "demo", "--tools", "echo",
    ]);
    trail.one("group.grant", "ops/demo");
    cli.change(&["groups", "revoke", "ops", "--server", "demo"]);
    trail.one("group.revoke", "ops/demo");

    cli.change(&[
        "connections",
        "revoke",
        "--client",
        "ci",
        "--server",
        "demo",
    ]);
    trail.one("connection.revoke", "ci/demo");
    cli.change(&["servers", "remove", "demo"]);
    trail.one("server.remove", "demo");

    let everything = cli.ok(&["-o", "json", "audit", "query", "--limit", "0"]);
    for secret in &secrets {
        assert!(
            !everything.contains(secret.as_str()),
            "{secret} is in the trail"
        );
    }
    let verified = cli.ok(&["audit", "verify"]);
    assert!(
        verified.contains(&format!("intact: {} events", trail.seen)),
        "{verified}"
    );
}

#[test]
fn a_refused_change_records_nothing() {
    let cli = Cli::new();
    cli.change(&["clients", "create", "ci"]);
    for refused in [
        &["clients", "create", "ci"][..],
        &["keys", "revoke", "no-such-key"],
        &["servers", "add", "x", "--url", "not a url"],
        &["servers", "remove", "nowhere"],
        &[
            "connections",
            "revoke",
            "--client",
            "ci",
            "--server",
            "nowhere",
        ],
        &["policy", "remove", "nothing"],
        &["users", "disable", "nobody"],
    ] {
        let out = cli.run_with(refused, "");
        assert_eq!(out.status.code(), Some(1), "{refused:?} should fail");
    }
    assert_eq!(cli.operator_events().len(), 1, "only the first create");
}

#[test]
fn the_actor_is_the_account_unless_named() {
    let cli = Cli::new();
    cli.ok(&["clients", "create", "by-account"]);
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--data-dir")
        .arg(cli.dir.path())
        .args(["clients", "create", "by-env"])
        .env_remove("GATEHOUSE_MASTER_KEY")
        .env("GATEHOUSE_ACTOR", "ci-pipeline")
        .output()
        .unwrap();
    assert!(out.status.success());
    let events = cli.operator_events();
    let actors: Vec<&str> = events
        .iter()
        .map(|e| e["operator"]["actor"].as_str().unwrap())
        .collect();
    assert_eq!(
        actors,
        [whoami::username().unwrap().as_str(), "ci-pipeline"]
    );
    assert_eq!(
        events[0]["operator"]["host"].as_str(),
        whoami::hostname().ok().as_deref()
    );

    let out = cli.run_with(&["--actor", "", "clients", "create", "nobody"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--actor"));
    assert!(
        cli.run_with(&["clients", "show", "nobody"], "")
            .status
            .code()
            == Some(1),
        "a change without a valid actor is not made"
    );

    // Reads need no actor, and the table shows who did what.
    let table = cli.ok(&["--actor", "", "audit", "query", "--kind", "operator"]);
    assert!(
        table.contains("ci-pipeline") && table.contains("client.create"),
        "{table}"
    );
    let requests = cli.ok(&["audit", "query", "--kind", "request"]);
    assert!(!requests.contains("client.create"), "{requests}");
}
