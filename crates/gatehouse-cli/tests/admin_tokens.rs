//! `gatehouse admin-tokens`: a token is printed once at creation, listed without its secret,
//! and revoked; each change is an operator event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, process::Command};

fn gatehouse(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("GATEHOUSE_MASTER_KEY")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_token_is_shown_once_listed_without_its_secret_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let created = json(&gatehouse(
        dir.path(),
        &[
            "-o",
            "json",
            "admin-tokens",
            "create",
            "--name",
            "ci",
            "--role",
            "operator",
            "--expires",
            "30d",
        ],
    ));
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("gth_"), "{created}");
    let id = created["admin_token"]["id"].as_str().unwrap();
    assert_eq!(created["admin_token"]["role"], "operator");
    assert!(created["admin_token"]["expires_at"].is_i64());

    let refused = gatehouse(
        dir.path(),
        &["admin-tokens", "create", "--name", "x", "--role", "root"],
    );
    assert!(!refused.status.success(), "an unknown role is refused");

    let listed = gatehouse(dir.path(), &["-o", "json", "admin-tokens", "list"]);
    let text = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(text.contains(id) && !text.contains(&token[17..]), "{text}");

    let revoked = json(&gatehouse(
        dir.path(),
        &["-o", "json", "admin-tokens", "revoke", id],
    ));
    assert!(revoked["revoked_at"].is_i64(), "{revoked}");

    let events = json(&gatehouse(
        dir.path(),
        &["-o", "json", "audit", "query", "--kind", "operator"],
    ));
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["operator"]["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"admin_token.create") && actions.contains(&"admin_token.revoke"),
        "{actions:?}"
    );
}
