//! What only the remote mode (`--server` and an admin token) does: its refusals and their exit
//! codes, profiles, completions, following the audit trail, and the admin API's own endpoints
//! for audit queries and the declarative state. That both modes print the same for every
//! operator command is `remote_cli_parity.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::deployment::{Deployment, gatehouse};
use serde_json::Value;
use std::{
    path::Path,
    process::{Output, Stdio},
    time::Duration,
};

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
