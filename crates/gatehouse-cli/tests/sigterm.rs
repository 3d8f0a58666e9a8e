//! `gatehouse serve` and SIGTERM, as a supervisor stops it: `/readyz` turns 503 `draining`
//! while the process still answers for `shutdown.ready_delay`, then it exits 0 having removed
//! its heartbeat row.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::Command,
    time::{Duration, Instant},
};

/// `GET path` on a new connection: the status and the body, or `None` when nothing answers.
fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut tcp = TcpStream::connect(addr).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let head = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
    tcp.write_all(head.as_bytes()).ok()?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).ok()?;
    let status = answer.get(9..12)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

#[test]
fn sigterm_turns_readyz_to_draining_then_the_process_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) =
        common::serve_with(dir.path(), &[("GATEHOUSE_SHUTDOWN__READY_DELAY", "3s")]);
    let (status, text) = get(&addr, "/readyz").unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.starts_with("ready\nstore: ok\n"), "{text}");

    let sent = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let draining = loop {
        match get(&addr, "/readyz") {
            Some((503, text)) => break text,
            other => assert!(
                Instant::now() < deadline,
                "/readyz never answered 503 after SIGTERM: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(draining.starts_with("draining\n"), "{draining}");
    let (status, _) = get(&addr, "/healthz").expect("still answering while draining");
    assert_eq!(status, 200, "the process is alive: only readiness changed");

    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "still running 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");

    let status = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--output", "json", "status"])
        .env_remove("GATEHOUSE_MASTER_KEY")
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        status["replicas"].as_array().map(Vec::len),
        Some(0),
        "the heartbeat row went with the process: {status}"
    );
}
