//! Output read by a program rather than a person — a pipe, a log file — carries no colour
//! codes: the server's log lines, errors, usage errors, help and tables hold no escape byte
//! when stdout and stderr are not a terminal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Output, Stdio},
};

const ESC: u8 = 0x1b;

/// The binary as a script runs it: output piped, nothing in the environment forcing colour.
fn gatehouse(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command
        .arg("--data-dir")
        .arg(dir)
        .env_remove("GATEHOUSE_MASTER_KEY")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("FORCE_COLOR")
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG");
    command
}

fn assert_plain(what: &str, bytes: &[u8]) {
    assert!(
        !bytes.contains(&ESC),
        "{what}: escape byte in output piped to a program: {:?}",
        String::from_utf8_lossy(bytes)
    );
}

fn run(dir: &Path, args: &[&str]) -> Output {
    let out = gatehouse(dir).args(args).output().unwrap();
    assert_plain(&format!("{args:?} stdout"), &out.stdout);
    assert_plain(&format!("{args:?} stderr"), &out.stderr);
    out
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn server_log_lines_written_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Kill(
        gatehouse(dir.path())
            .arg("serve")
            .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
            .env("GATEHOUSE_LOG__FILTER", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = BufReader::new(server.0.stderr.take().unwrap());
    let mut written = Vec::new();
    loop {
        let before = written.len();
        let read = stderr.read_until(b'\n', &mut written).unwrap();
        assert!(
            read > 0,
            "gatehouse serve ended before it listened: {:?}",
            String::from_utf8_lossy(&written)
        );
        if written[before..].starts_with(b"gatehouse listening on http://") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&written);
    // The logger's own startup line, so the check below covers formatted log output and not
    // only the plain banner.
    assert!(
        text.contains("INFO") && text.contains("gatehouse::app"),
        "no log line at startup: {text:?}"
    );
    assert_plain("serve stderr", &written);
}

#[test]
fn errors_help_and_tables_written_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    let help = run(dir, &["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage:"));
    let help = run(dir, &["clients", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage:"));

    // Usage errors are clap's (styled when at a terminal), refusals are the command's own.
    let usage = run(dir, &["clients", "create"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("error:"));
    let unknown = run(dir, &["no-such-command"]);
    assert_eq!(unknown.status.code(), Some(2));
    let refused = run(dir, &["clients", "show", "ghost"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("\"ghost\" not found"));

    assert!(
        run(
            dir,
            &["servers", "add", "demo", "--url", "http://127.0.0.1:9/mcp"]
        )
        .status
        .success()
    );
    assert!(run(dir, &["clients", "create", "agent"]).status.success());
    let listing = run(dir, &["clients", "list"]);
    assert!(listing.status.success());
    assert!(String::from_utf8_lossy(&listing.stdout).contains("agent"));
    let listing = run(dir, &["servers", "list"]);
    assert!(String::from_utf8_lossy(&listing.stdout).contains("demo"));
}
