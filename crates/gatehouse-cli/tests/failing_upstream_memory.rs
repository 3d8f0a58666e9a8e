//! Resident memory of a running `gatehouse serve` stays bounded while its upstreams fail: one
//! refuses connections, the other answers 503 with an HTML page. The breaker is off, so every
//! call takes the whole failing path (connect, error, JSON-RPC answer, audit event), thousands
//! of times.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command},
    time::{Duration, Instant},
};

fn gatehouse(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("GATEHOUSE_MASTER_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// An upstream answering every request with an HTML 503, as an overloaded proxy does.
fn unavailable_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut head = [0u8; 4096];
                let _ = stream.read(&mut head);
                let page = "<html>busy</html>";
                let _ = write!(
                    stream,
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/html\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{page}",
                    page.len()
                );
            });
        }
    });
    url
}

/// One call to `server`; the status of the answer.
fn call(addr: &str, server: &str, token: &str) -> u16 {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /{server}/mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status: {answer}"))
}

/// `calls` calls on four connections at a time, alternating between the two servers.
fn load(addr: &str, token: &str, calls: usize) {
    std::thread::scope(|scope| {
        for worker in 0..4 {
            scope.spawn(move || {
                for n in (worker..calls).step_by(4) {
                    let (server, status) = if n % 2 == 0 {
                        ("down", 502)
                    } else {
                        ("busy", 503)
                    };
                    assert_eq!(call(addr, server, token), status, "call {n} to {server}");
                }
            });
        }
    });
}

/// Resident set size of a process in KiB, from `/proc/<pid>/status`.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn resident_memory_stays_bounded_while_upstreams_fail() {
    let dir = tempfile::tempdir().unwrap();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}/mcp", closed.local_addr().unwrap());
    drop(closed);
    let busy = unavailable_upstream();
    gatehouse(dir.path(), &["servers", "add", "down", "--url", &down]);
    gatehouse(dir.path(), &["servers", "add", "busy", "--url", &busy]);
    gatehouse(dir.path(), &["clients", "create", "agent"]);
    for server in ["down", "busy"] {
        gatehouse(
            dir.path(),
            &[
                "connections",
                "grant",
                "--client",
                "agent",
                "--server",
                server,
                "--tools",
                "*",
            ],
        );
    }
    let key: serde_json::Value = serde_json::from_str(&gatehouse(
        dir.path(),
        &["-o", "json", "keys", "create", "--client", "agent"],
    ))
    .unwrap();
    let token = key["token"].as_str().unwrap().to_owned();
    let (child, addr) =
        common::serve_with(dir.path(), &[("GATEHOUSE_GATEWAY__BREAKER_FAILURES", "0")]);
    let server = Kill(child);
    let pid = server.0.id();

    // Warm up: pools, caches and allocator heaps reach their working size.
    load(&addr, &token, 1_000);
    let warm = rss_kib(pid);
    load(&addr, &token, 5_000);
    // What grows per failing call would show as megabytes here; allow for allocator slack
    // and for freed pages that go back to the system only after a decay period.
    let bound = warm + 8 * 1024;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = rss_kib(pid);
    while last > bound && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        last = rss_kib(pid);
    }
    eprintln!(
        "failing upstreams: RSS after 1,000 calls {} KiB, after 5,000 more {} KiB",
        warm, last
    );
    assert!(
        last <= bound,
        "RSS {last} KiB after 5,000 failing calls, {warm} KiB before, bound {bound} KiB"
    );
}
