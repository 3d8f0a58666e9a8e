//! `gatehouse servers add NAME --command …`: a stdio server from the command line, its
//! environment sealed, and the configuration's `[gateway] stdio_commands` enforced.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::process::{Command, Output};

fn run(dir: &std::path::Path, config: Option<&std::path::Path>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command.arg("--data-dir").arg(dir);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command
        .args(args)
        .env_remove("GATEHOUSE_MASTER_KEY")
        .env_remove("GATEHOUSE_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn a_stdio_server_is_added_with_its_command_and_a_sealed_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        None,
        &[
            "--output",
            "json",
            "servers",
            "add",
            "everything",
            "--command",
            "npx",
            "--arg",
            "-y",
            "--arg",
            "@modelcontextprotocol/server-everything",
            "--env",
            "API_KEY=sk-live-4242",
            "--sharing",
            "per_principal",
            "--max-children",
            "3",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["url"], "stdio://everything");
    assert_eq!(shown["stdio"]["command"], "npx");
    assert_eq!(
        shown["stdio"]["args"],
        serde_json::json!(["-y", "@modelcontextprotocol/server-everything"])
    );
    assert_eq!(shown["stdio"]["env_names"], serde_json::json!(["API_KEY"]));
    assert_eq!(shown["stdio"]["sharing"], "per_principal");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("sk-live-4242"), "the value is never shown");
    let database = std::fs::read(dir.path().join("gatehouse.db")).unwrap();
    assert!(
        !database.windows(12).any(|w| w == b"sk-live-4242"),
        "the value is sealed at rest"
    );

    // A malformed --env and a url beside a command are refused.
    let bad_env = run(
        dir.path(),
        None,
        &[
            "servers",
            "add",
            "x",
            "--command",
            "npx",
            "--env",
            "NOVALUE",
        ],
    );
    assert_eq!(bad_env.status.code(), Some(1));
    let both = run(
        dir.path(),
        None,
        &[
            "servers",
            "add",
            "y",
            "--command",
            "npx",
            "--url",
            "http://127.0.0.1:9/mcp",
        ],
    );
    assert_eq!(both.status.code(), Some(2));
}

#[test]
fn a_command_outside_the_configured_allow_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(&config, "[gateway]\nstdio_commands = [\"uvx\"]\n").unwrap();
    let refused = run(
        dir.path(),
        Some(&config),
        &["servers", "add", "local", "--command", "npx", "--arg", "-y"],
    );
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("stdio_commands"), "{stderr}");
    let allowed = run(
        dir.path(),
        Some(&config),
        &[
            "servers",
            "add",
            "local",
            "--command",
            "uvx",
            "--arg",
            "mcp-server-time",
        ],
    );
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
}

/// docs/upstreams.md: a program's environment is shown by name only, in
/// `gatehouse servers show` as in the admin API: the table too, not only `-o json`.
#[test]
fn servers_show_names_a_programs_environment_in_the_table_without_its_values() {
    let dir = tempfile::tempdir().unwrap();
    let added = run(
        dir.path(),
        None,
        &[
            "servers",
            "add",
            "notes",
            "--command",
            "python3",
            "--arg",
            "-m",
            "--arg",
            "notes_server",
            "--env",
            "NOTES_DB=/var/lib/notes.db",
            "--env",
            "API_KEY=sk-live-4242",
        ],
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let shown = run(dir.path(), None, &["servers", "show", "notes"]);
    assert!(shown.status.success());
    let table = String::from_utf8_lossy(&shown.stdout);
    assert!(
        table.contains("API_KEY") && table.contains("NOTES_DB"),
        "the names are shown: {table}"
    );
    assert!(
        !table.contains("sk-live-4242") && !table.contains("/var/lib/notes.db"),
        "never the values: {table}"
    );
}
