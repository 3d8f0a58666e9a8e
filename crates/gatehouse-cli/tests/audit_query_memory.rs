//! `gatehouse audit query --limit 0` and `audit tail -n <every row>` export the whole trail in
//! bounded memory: rows are read and printed a page at a time, so a trail far larger than
//! memory (1.35M rows once took 5.5 GB resident when buffered) is exported with about the
//! memory of one page.
//!
//! The export's stdout is a pipe this test drains chunk by chunk, sampling the command's
//! resident peak (`VmHWM`) after each chunk: the command cannot have exited then (the rest of
//! its output does not fit in the pipe), so the samples cover the whole run but its last
//! pipeful. A buffered export reaches its peak before writing the first byte, so even the
//! first sample would show it.
//! `AUDIT_QUERY_MEMORY_ROWS` (default 60 000) sizes the trail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::Read,
    path::Path,
    process::{Command, Stdio},
};

/// How much more than a one-row query the whole export may hold resident: a page of rows,
/// SQLite's page caches and allocator slack, times the pool's connections, each of which may
/// read a page on a thread (and malloc arena) of its own. Measured: 7 to 13 MiB for 100,000
/// rows, and as little for 200,000; holding the rows together takes 267 MiB (`query`) and
/// 610 MiB (`tail`, as it was) for 100,000.
const HEADROOM_KIB: u64 = 40 * 1024;

fn gatehouse(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command
        .arg("--data-dir")
        .arg(dir)
        .env_remove("GATEHOUSE_MASTER_KEY");
    command
}

/// The resident peak of a running process in KiB; `None` once it has exited.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One operator event written by the CLI itself (chained and signed like any other), then
/// `rows - 1` copies of it, each a row of its own in the same chain.
fn provision(dir: &Path, rows: u64) {
    let created = gatehouse(dir)
        .args(["clients", "create", "agent"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let db = rusqlite::Connection::open(dir.join("gatehouse.db")).unwrap();
    let mut columns: Vec<String> = db
        .prepare("SELECT name FROM pragma_table_info('audit_events') WHERE name <> 'seq'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    columns.sort();
    let copied: Vec<String> = columns
        .iter()
        .map(|c| match c.as_str() {
            "chain_seq" => "chain_seq + n".to_owned(),
            "ts_ms" => "ts_ms + n".to_owned(),
            "request_id" => "request_id || '-' || n".to_owned(),
            other => other.to_owned(),
        })
        .collect();
    let copies = db
        .execute(
            &format!(
                "WITH RECURSIVE copy(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM copy \
                 WHERE n < ?1) INSERT INTO audit_events ({}) SELECT {} FROM audit_events, copy \
                 WHERE seq = 1",
                columns.join(", "),
                copied.join(", ")
            ),
            [i64::try_from(rows - 1).unwrap()],
        )
        .unwrap();
    assert_eq!(copies as u64, rows - 1);
}

/// Runs a JSON `audit` command, draining its stdout a chunk at a time and sampling its
/// resident peak while it waits for each chunk to be read. The output and the highest peak.
fn export(dir: &Path, args: &[&str]) -> (Vec<u8>, u64) {
    let mut child = gatehouse(dir)
        .args(["-o", "json", "audit"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    let mut output = Vec::new();
    let mut chunk = vec![0; 1 << 20];
    let mut peak = 0;
    let mut samples = 0;
    loop {
        let read = stdout.read(&mut chunk).unwrap();
        if read == 0 {
            break;
        }
        output.extend_from_slice(&chunk[..read]);
        // Taken before the next read, while the command cannot finish (its output does not
        // fit in the pipe); only the last pipeful may be written after the last sample.
        if let Some(kib) = peak_kib(pid) {
            peak = peak.max(kib);
            samples += 1;
        }
    }
    assert!(child.wait().unwrap().success(), "audit {args:?}");
    assert!(
        samples > 0,
        "the command exited before any sample was taken"
    );
    (output, peak)
}

/// The export holds rows `first..=last` of the trail, each once, in order.
fn assert_rows(output: &[u8], first: u64, last: u64) {
    let all: Vec<serde_json::Value> = serde_json::from_slice(output).unwrap();
    assert_eq!(all.len() as u64, last - first + 1);
    assert!(
        all.iter()
            .zip(first..)
            .all(|(row, seq)| row["seq"].as_u64() == Some(seq)),
        "rows out of order or missing"
    );
}

#[test]
fn exporting_the_whole_trail_holds_one_page_not_every_row() {
    let rows: u64 = std::env::var("AUDIT_QUERY_MEMORY_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60_000);
    let dir = tempfile::tempdir().unwrap();
    provision(dir.path(), rows);

    let (one, baseline) = export(dir.path(), &["query", "--limit", "1"]);
    assert_rows(&one, rows, rows);
    let every = rows.to_string();
    for args in [&["query", "--limit", "0"][..], &["tail", "-n", &every]] {
        let (output, peak) = export(dir.path(), args);
        assert_rows(&output, 1, rows);
        eprintln!("audit {args:?}: resident peak {peak} KiB, one row {baseline} KiB");
        assert!(
            peak <= baseline + HEADROOM_KIB,
            "audit {args:?} peaked at {peak} KiB resident, one row at {baseline} KiB: \
             the export holds rows beyond a page"
        );
    }
}
