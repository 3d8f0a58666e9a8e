//! `gatehouse export` and `gatehouse apply -f` through the binary: a file applied to one
//! data directory, exported, applied to a fresh one, exports the same; `--dry-run
//! --exit-code` says whether changes are pending; an unchanged file says "no changes"; a
//! reference to an unset variable fails before any write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, process::Command};

const DOCUMENT: &str = r#"apiVersion: gatehouse/v1
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
  slow: {kind: rate_limit, client: agent, spec: {requests: 60, period: 1m}}
users:
  alice: {display_name: Alice, groups: [sre]}
groups:
  sre:
    connections:
      github: {tools: ["*"]}
"#;

const TOKEN: &str = "Bearer cli-upstream-token-5a4b3c";

fn gatehouse(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("GATEHOUSE_MASTER_KEY")
        .env_remove("RUST_LOG")
        .env_remove("GH_TOKEN")
        .env_remove("GATEHOUSE_SERVER_GITHUB_CREDENTIAL");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn a_file_applied_exported_and_applied_elsewhere_reproduces_the_deployment() {
    let a = tempfile::tempdir().unwrap();
    let file = a.path().join("gatehouse-state.yaml");
    std::fs::write(&file, DOCUMENT).unwrap();
    let path = file.to_str().unwrap();

    let pending = gatehouse(
        a.path(),
        &["apply", "-f", path, "--dry-run", "--exit-code"],
        &[("GH_TOKEN", TOKEN)],
    );
    assert_eq!(
        pending.status.code(),
        Some(3),
        "changes pending: {pending:?}"
    );
    let plan = String::from_utf8_lossy(&pending.stdout);
    assert!(
        plan.contains("+ server github") && plan.contains("dry run: 6 change(s) planned"),
        "{plan}"
    );
    let still_empty = ok(&gatehouse(a.path(), &["export"], &[]));
    assert!(
        still_empty.contains("servers: {}"),
        "a dry run changes nothing: {still_empty}"
    );

    let applied = ok(&gatehouse(
        a.path(),
        &["apply", "-f", path],
        &[("GH_TOKEN", TOKEN)],
    ));
    assert!(applied.contains("applied 6 change(s)"), "{applied}");
    let again = ok(&gatehouse(
        a.path(),
        &["apply", "-f", path, "--prune"],
        &[("GH_TOKEN", TOKEN)],
    ));
    assert!(again.ends_with("no changes\n"), "{again}");
    let clean = gatehouse(
        a.path(),
        &["apply", "-f", path, "--dry-run", "--exit-code"],
        &[("GH_TOKEN", TOKEN)],
    );
    assert_eq!(clean.status.code(), Some(0), "{clean:?}");

    let exported = ok(&gatehouse(a.path(), &["export"], &[]));
    assert!(!exported.contains("cli-upstream-token"), "{exported}");
    assert!(
        exported.contains("env:GATEHOUSE_SERVER_GITHUB_CREDENTIAL"),
        "{exported}"
    );

    let b = tempfile::tempdir().unwrap();
    let copy = b.path().join("exported.yaml");
    std::fs::write(&copy, &exported).unwrap();
    let copy = copy.to_str().unwrap();
    let refused = gatehouse(b.path(), &["apply", "-f", copy], &[]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("server github, field credential.value")
            && stderr.contains("env:GATEHOUSE_SERVER_GITHUB_CREDENTIAL")
            && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    assert!(ok(&gatehouse(b.path(), &["export"], &[])).contains("servers: {}"));

    ok(&gatehouse(
        b.path(),
        &["apply", "-f", copy],
        &[("GATEHOUSE_SERVER_GITHUB_CREDENTIAL", TOKEN)],
    ));
    assert_eq!(
        ok(&gatehouse(b.path(), &["export"], &[])),
        exported,
        "B exports what A exported"
    );

    let events = ok(&gatehouse(
        b.path(),
        &["-o", "json", "audit", "query", "--kind", "operator"],
        &[],
    ));
    assert!(
        events.contains("server.add") && events.contains("group.grant"),
        "{events}"
    );
    assert!(!events.contains("cli-upstream-token"), "{events}");
}
