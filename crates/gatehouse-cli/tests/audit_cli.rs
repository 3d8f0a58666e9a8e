//! `gatehouse audit …` as an operator reads the trail: the newest rows, safe terminal output,
//! JSON lines when following, and a checkpoint kept outside the database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use gatehouse::{audit::AuditWriter, secrets::Keyring, store};
use gatehouse_model::audit::{AuditEvent, Decision};
use serde_json::Value;
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::Arc,
    time::Duration,
};
use tokio_util::sync::CancellationToken;

/// The event of a call to `tool`; every third is refused.
fn event(n: i64, tool: &str) -> AuditEvent {
    AuditEvent {
        ts_ms: 1_750_000_000_000 + n,
        request_id: format!("req-{n}"),
        client: Some(if n == 7 { "rare" } else { "agent" }.into()),
        credential_id: None,
        user: None,
        ip: Some("127.0.0.1".into()),
        country: None,
        server: Some("demo".into()),
        http_method: "POST".into(),
        rpc_method: Some("tools/call".into()),
        tool: Some(tool.into()),
        decision: if n % 3 == 0 {
            Decision::Deny
        } else {
            Decision::Allow
        },
        reason: None,
        status: 200,
        upstream_status: Some(200),
        latency_us: 10,
        outcome: None,
        response_bytes: None,
        batch: Vec::new(),
        operator: None,
        rule: None,
    }
}

/// Writes events 1..=count through the real writer (chained, checkpointed).
fn write_events(dir: &Path, count: i64, tool_of: impl Fn(i64) -> String) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let url = format!("sqlite://{}", dir.join("gatehouse.db").display());
        let store = store::open(&url).await.unwrap();
        let keyring = Arc::new(Keyring::load_or_create(dir).unwrap());
        let (sink, writer) =
            AuditWriter::new(store, keyring, 64, 64, true, Duration::from_millis(1));
        let stop = CancellationToken::new();
        let running = tokio::spawn(writer.run(stop.clone()));
        for n in 1..=count {
            sink.record(event(n, &tool_of(n))).await;
        }
        stop.cancel();
        running.await.unwrap();
    });
}

fn gatehouse(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("GATEHOUSE_MASTER_KEY")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn seqs(json: &Value) -> Vec<i64> {
    json.as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .collect()
}

#[test]
fn query_limit_returns_the_newest_rows_and_filters_page_through_everything() {
    let dir = tempfile::tempdir().unwrap();
    write_events(dir.path(), 2_500, |n| format!("t{n}"));
    let json = |args: &[&str]| -> Value {
        let mut all = vec!["--output", "json", "audit", "query"];
        all.extend_from_slice(args);
        serde_json::from_str(&stdout(&gatehouse(dir.path(), &all))).unwrap()
    };
    assert_eq!(seqs(&json(&["--limit", "3"])), [2_498, 2_499, 2_500]);
    // More than a page: every row, in order, once.
    let all = seqs(&json(&["--limit", "0"]));
    assert_eq!(all, (1..=2_500).collect::<Vec<_>>());
    assert_eq!(seqs(&json(&["--client", "rare"])), [7]);
    let denied = seqs(&json(&["--decision", "deny", "--limit", "2"]));
    assert_eq!(denied, [2_496, 2_499]);
    assert_eq!(seqs(&json(&["--client", "nobody"])), Vec::<i64>::new());
    // tail -n past a page: the newest rows, oldest first, each once.
    let tail: Value = serde_json::from_str(&stdout(&gatehouse(
        dir.path(),
        &["-o", "json", "audit", "tail", "-n", "1500"],
    )))
    .unwrap();
    assert_eq!(seqs(&tail), (1_001..=2_500).collect::<Vec<_>>());
}

#[test]
fn operator_rows_line_up_with_the_request_tables_columns() {
    let dir = tempfile::tempdir().unwrap();
    write_events(dir.path(), 1, |_| "echo".to_owned());
    stdout(&gatehouse(dir.path(), &["clients", "create", "agent"]));
    let json: Value = serde_json::from_str(&stdout(&gatehouse(
        dir.path(),
        &["-o", "json", "audit", "query"],
    )))
    .unwrap();
    let operator = json
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["operator"].is_object())
        .expect("the operator event");
    let chain = format!("{}:{}", operator["chain_id"], operator["chain_seq"]);
    for args in [&["audit", "query"][..], &["audit", "tail"][..]] {
        let text = stdout(&gatehouse(dir.path(), args));
        let header = text.lines().next().unwrap();
        let row = text
            .lines()
            .find(|line| line.contains("client.create"))
            .expect("the operator row");
        let under = |column: &str| &row[header.find(column).unwrap()..];
        assert!(under("CHAIN").starts_with(&chain), "{text}");
        assert!(under("DECISION").starts_with("allow"), "{text}");
        assert!(under("LATENCY").ends_with("ms"), "{text}");
    }
}

#[test]
fn caller_chosen_names_cannot_forge_rows_or_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let evil = "echo\n99   2026-01-01 00:00:00Z  admin  allow\u{1b}[2J\u{202e}";
    write_events(dir.path(), 3, |n| {
        if n == 2 {
            evil.to_owned()
        } else {
            "echo".to_owned()
        }
    });
    for args in [&["audit", "query"][..], &["audit", "tail"][..]] {
        let text = stdout(&gatehouse(dir.path(), args));
        assert_eq!(text.lines().count(), 4, "a header and three rows: {text}");
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{202e}'),
            "{text}"
        );
        assert!(text.contains("echo\\u{a}99"), "{text}");
    }
    // JSON keeps the name exactly (escaped by JSON itself).
    let out = stdout(&gatehouse(dir.path(), &["-o", "json", "audit", "query"]));
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[1]["tool"], evil);
}

#[test]
fn tail_follow_in_json_prints_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    write_events(dir.path(), 3, |_| "echo".to_owned());
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["-o", "json", "audit", "tail", "-f", "-n", "2"])
        .env_remove("GATEHOUSE_MASTER_KEY")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let second: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        (first["seq"].as_i64(), second["seq"].as_i64()),
        (Some(2), Some(3))
    );
}

#[test]
fn an_exported_checkpoint_shows_rows_deleted_from_the_end() {
    let dir = tempfile::tempdir().unwrap();
    write_events(dir.path(), 5, |_| "echo".to_owned());
    let exported = stdout(&gatehouse(dir.path(), &["audit", "checkpoint"]));
    let checkpoints: Value = serde_json::from_str(&exported).unwrap();
    assert_eq!(
        (&checkpoints[0]["chain_id"], &checkpoints[0]["seq"]),
        (&Value::from(1), &Value::from(5))
    );
    let file = dir.path().join("checkpoint.json");
    std::fs::write(&file, &exported).unwrap();
    assert!(stdout(&gatehouse(dir.path(), &["audit", "verify"])).contains("intact: 5 events"));

    // Delete the newest rows and the stored checkpoint, as with the sqlite3 shell.
    let status = Command::new("sqlite3")
        .arg(dir.path().join("gatehouse.db"))
        .arg("DELETE FROM audit_events WHERE seq > 3; DELETE FROM audit_chain_checkpoints;")
        .status()
        .expect("the sqlite3 shell (Debian package sqlite3; .ci/run installs it)");
    assert!(status.success());
    let out = gatehouse(dir.path(), &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("checkpoint is missing"));
    let out = gatehouse(
        dir.path(),
        &["audit", "verify", "--checkpoint", file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("chain 1: rows 4 to 5 are missing"), "{text}");
}

#[test]
fn verify_checks_every_writers_chain_and_names_the_one_tampered_with() {
    let dir = tempfile::tempdir().unwrap();
    // Two processes one after another: two chains.
    write_events(dir.path(), 4, |_| "echo".to_owned());
    write_events(dir.path(), 3, |_| "echo".to_owned());
    let text = stdout(&gatehouse(dir.path(), &["audit", "verify"]));
    assert!(
        text.contains("intact: 7 events verified in 2 chains"),
        "{text}"
    );
    let exported = stdout(&gatehouse(dir.path(), &["audit", "checkpoint"]));
    let checkpoints: Value = serde_json::from_str(&exported).unwrap();
    assert_eq!(checkpoints.as_array().unwrap().len(), 2);

    let status = Command::new("sqlite3")
        .arg(dir.path().join("gatehouse.db"))
        .arg("UPDATE audit_events SET tool = 'other' WHERE chain_id = 2 AND chain_seq = 2;")
        .status()
        .expect("the sqlite3 shell (Debian package sqlite3; .ci/run installs it)");
    assert!(status.success());
    let out = gatehouse(dir.path(), &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("BROKEN (7 events read in 2 chains)"),
        "{text}"
    );
    assert!(text.contains("  - chain 2: row 2 was modified"), "{text}");
    assert!(!text.contains("chain 1"), "{text}");
    // The table places each row the same way: chain 2's row 2 is the sixth row written.
    let table = stdout(&gatehouse(dir.path(), &["audit", "query"]));
    let places: Vec<(&str, &str)> = table
        .lines()
        .map(|line| {
            let mut columns = line.split_whitespace();
            (columns.next().unwrap(), columns.next().unwrap())
        })
        .collect();
    assert_eq!(places[0], ("SEQ", "CHAIN"));
    assert_eq!(places[6], ("6", "2:2"));

    // A checkpoint exported before chains (one object, no chain id) is still read, as
    // chain 0's: this database has none, so it reports chain 0's rows deleted.
    let file = dir.path().join("old.json");
    let old = serde_json::json!({ "seq": 2, "hash": "ab", "ts_ms": 1, "mac": "00" });
    std::fs::write(&file, old.to_string()).unwrap();
    let out = gatehouse(
        dir.path(),
        &["audit", "verify", "--checkpoint", file.to_str().unwrap()],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("chain 0 (rows written before chains): rows 1 to 2 are missing"),
        "{text}"
    );
}

/// A `gatehouse serve` on a free loopback port; killed when dropped.
struct Serve {
    child: Child,
    addr: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path) -> Serve {
    let (child, addr) = common::serve(dir);
    Serve { child, addr }
}

/// A call without a credential: refused and, the trail being durable, committed before the
/// answer. The answer's status.
fn refused_call(addr: &str) -> u16 {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /demo/mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn two_servers_on_one_database_each_write_a_chain_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    stdout(&gatehouse(
        dir.path(),
        &["servers", "add", "demo", "--url", "http://127.0.0.1:9/mcp"],
    ));
    let servers = [serve(dir.path()), serve(dir.path())];
    std::thread::scope(|scope| {
        for server in &servers {
            scope.spawn(|| {
                for _ in 0..40 {
                    assert_eq!(refused_call(&server.addr), 401);
                }
            });
        }
    });
    drop(servers);

    // Chain 1 is the `servers add` command's: its operator event.
    let text = stdout(&gatehouse(dir.path(), &["audit", "verify"]));
    assert!(
        text.contains("intact: 81 events verified in 3 chains"),
        "{text}"
    );
    let out = stdout(&gatehouse(
        dir.path(),
        &[
            "-o", "json", "audit", "query", "--kind", "request", "--limit", "0",
        ],
    ));
    let rows: Value = serde_json::from_str(&out).unwrap();
    for chain in [2, 3] {
        let numbers: Vec<i64> = rows
            .as_array()
            .unwrap()
            .iter()
            .filter(|row| row["chain_id"] == chain)
            .map(|row| row["chain_seq"].as_i64().unwrap())
            .collect();
        assert_eq!(numbers, (1..=40).collect::<Vec<_>>(), "chain {chain}");
    }
}

/// An auditor's machine: no database, no master key, only the bundle and the public key the
/// operator gave out of band.
#[test]
fn an_exported_bundle_verifies_on_a_machine_without_the_database_or_master_key() {
    let dir = tempfile::tempdir().unwrap();
    write_events(dir.path(), 30, |n| format!("t{n}"));
    let bundle = dir.path().join("evidence.bundle");
    let wrote = stdout(&gatehouse(
        dir.path(),
        &["audit", "export", "--file", bundle.to_str().unwrap()],
    ));
    assert!(wrote.contains("30 events in 1 chain(s)"), "{wrote}");
    let key = stdout(&gatehouse(dir.path(), &["audit", "public-key"]));
    let key = key.trim();
    assert_eq!(key.len(), 64, "{key}");

    let auditor = tempfile::tempdir().unwrap();
    let copy = auditor.path().join("evidence.bundle");
    std::fs::copy(&bundle, &copy).unwrap();
    let verify = |path: &Path| {
        gatehouse(
            auditor.path(),
            &[
                "audit",
                "verify",
                "--bundle",
                path.to_str().unwrap(),
                "--public-key",
                key,
            ],
        )
    };
    let text = stdout(&verify(&copy));
    assert!(text.contains("intact: 30 events in 1 chain(s)"), "{text}");
    let left: Vec<_> = std::fs::read_dir(auditor.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["evidence.bundle"], "no database or key was created");

    let text = std::fs::read_to_string(&copy).unwrap();
    std::fs::write(
        &copy,
        text.replacen("\"tool\":\"t7\"", "\"tool\":\"t8\"", 1),
    )
    .unwrap();
    let out = verify(&copy);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("chain 1: row 7 was altered (it does not match its signed digest)"),
        "{said}"
    );
}

/// Retention has archived the older rows: `audit verify --archive` checks the archives and
/// the live rows together, and names an archive that was removed.
#[test]
fn verify_archive_checks_archives_and_the_live_table_together() {
    let dir = tempfile::tempdir().unwrap();
    write_events(dir.path(), 30, |n| format!("t{n}"));
    let archive = dir.path().join("audit-archive");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
        let store = store::open(&url).await.unwrap();
        let keyring = Keyring::load_or_create(dir.path()).unwrap();
        // Events are 1 ms apart from 1_750_000_000_001: two runs archive 10 rows each.
        for now in [1_750_000_000_011, 1_750_000_000_021] {
            let archived = gatehouse::audit::retention::run_once(
                &*store,
                &keyring,
                Duration::ZERO,
                &archive,
                now,
                gatehouse::audit::retention::ROWS_PER_ARCHIVE,
            )
            .await
            .unwrap();
            assert_eq!(archived.len(), 1);
            assert_eq!(archived[0].rows, 10);
        }
    });
    let out = stdout(&gatehouse(dir.path(), &["audit", "verify", "--archive"]));
    assert!(
        out.contains("audit history intact: 2 archive(s) and 10 live events"),
        "{out}"
    );
    // The live table alone verifies too, from the seals.
    stdout(&gatehouse(dir.path(), &["audit", "verify"]));

    let newest = gatehouse::audit::retention::archives(&archive)
        .unwrap()
        .pop()
        .unwrap();
    std::fs::remove_file(&newest).unwrap();
    let out = gatehouse(dir.path(), &["audit", "verify", "--archive"]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("which is not in the archive directory (removed?)"),
        "{said}"
    );
}
