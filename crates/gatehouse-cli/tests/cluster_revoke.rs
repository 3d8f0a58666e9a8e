//! `gatehouse keys revoke` against three `gatehouse serve` replicas sharing a store and a
//! Redis: the command announces the change, waits until every live replica reports it, and
//! when it returns every replica refuses the key. Polling is set to an hour, so only the
//! announcement can have carried it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use gatehouse_testkit::redis::Redis;
use serde_json::Value;
use std::{
    io::{Read, Write},
    net::TcpStream,
    process::{Child, Command},
    time::Instant,
};

/// The HTTP status of a `tools/call` sent to `addr` with `key`.
fn call_status(addr: &str, key: &str) -> u16 {
    let body =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /demo/mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         MCP-Protocol-Version: 2025-11-25\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

struct Stop(Vec<Child>);

impl Drop for Stop {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn keys_revoke_returns_once_every_replica_refuses_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let redis_url = Redis::shared().url();
    let prefix = format!("cli{}:", std::process::id());
    let env = [
        ("GATEHOUSE_REDIS__URL", redis_url.as_str()),
        ("GATEHOUSE_REDIS__KEY_PREFIX", prefix.as_str()),
        ("GATEHOUSE_SNAPSHOT__POLL_INTERVAL", "1h"),
    ];
    let gatehouse = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--output", "json"])
            .args(args)
            .env_remove("GATEHOUSE_MASTER_KEY")
            .envs(env)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    gatehouse(&["servers", "add", "demo", "--url", "http://127.0.0.1:9/mcp"]);
    gatehouse(&["clients", "create", "agent"]);
    gatehouse(&[
        "connections",
        "grant",
        "--client",
        "agent",
        "--server",
        "demo",
        "--tools",
        "echo",
    ]);
    let key: Value =
        serde_json::from_str(&gatehouse(&["keys", "create", "--client", "agent"])).unwrap();
    let (token, id) = (key["token"].as_str().unwrap(), key["id"].as_str().unwrap());

    let mut servers = Stop(Vec::new());
    let mut addrs = Vec::new();
    for n in 0..3 {
        let replica = format!("replica-{n}");
        let mut with_id = env.to_vec();
        with_id.push(("GATEHOUSE_REPLICA_ID", replica.as_str()));
        let (child, addr) = common::serve_with(dir.path(), &with_id);
        servers.0.push(child);
        addrs.push(addr);
    }
    for addr in &addrs {
        // Authenticated and forwarded: the upstream is a closed port.
        assert_eq!(
            call_status(addr, token),
            502,
            "{addr} before the revocation"
        );
    }

    let started = Instant::now();
    gatehouse(&["keys", "revoke", id]);
    let took = started.elapsed();
    for addr in &addrs {
        assert_eq!(call_status(addr, token), 401, "{addr} once revoke returned");
    }
    eprintln!("keys revoke returned after {took:?}, every replica refusing the key");
}
