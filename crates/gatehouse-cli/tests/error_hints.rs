//! docs/cli.md, "Errors and exit codes": a refusal the operator can fix ends with a `hint:`
//! line, in the local mode as through `--server` (a 404 names the list command that shows
//! what exists, a 409 says it exists already).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::deployment::Deployment;

fn refusal(deployment: &Deployment, args: &[&str]) -> String {
    let out = deployment.run_with_input(args, None);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{} {args:?}: {stderr}",
        deployment.mode()
    );
    stderr
}

#[test]
fn not_found_and_conflict_carry_the_same_hint_in_both_modes() {
    for deployment in [Deployment::local(), Deployment::remote()] {
        let mode = deployment.mode();
        let missing = refusal(&deployment, &["clients", "show", "ghost"]);
        assert!(
            missing.contains("hint: `gatehouse clients list` shows what exists"),
            "{mode}: {missing}"
        );
        let no_server = refusal(&deployment, &["servers", "show", "nope"]);
        assert!(
            no_server.contains("hint: `gatehouse servers list` shows what exists"),
            "{mode}: {no_server}"
        );
        deployment.json(&["clients", "create", "dup"]);
        let exists = refusal(&deployment, &["clients", "create", "dup"]);
        assert!(
            exists.contains("hint: it exists already (`gatehouse clients list` shows it)"),
            "{mode}: {exists}"
        );
        let json = refusal(&deployment, &["-o", "json", "clients", "show", "ghost"]);
        let error: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        assert!(
            error["hint"]
                .as_str()
                .unwrap_or("")
                .contains("clients list"),
            "{mode}: {error}"
        );
    }
}
