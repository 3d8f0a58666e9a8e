//! `gatehouse serve` when file descriptors run out: connections that never finish their
//! request head must not keep health checks and new clients out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET /healthz` on a new connection; true when it answers 200 within a second.
fn healthy(addr: SocketAddr) -> bool {
    let Ok(mut tcp) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(1)));
    if tcp
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = [0u8; 64];
    matches!(tcp.read(&mut answer), Ok(n) if answer[..n].starts_with(b"HTTP/1.1 200"))
}

fn eventually_healthy(addr: SocketAddr, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if healthy(addr) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn health_checks_get_in_when_half_sent_heads_use_every_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // 64 descriptors; a head timeout far beyond the test, so only making room helps.
    let child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" --data-dir \"$1\" serve")
        .arg(env!("CARGO_BIN_EXE_gatehouse"))
        .arg(dir.path())
        .env_remove("GATEHOUSE_MASTER_KEY")
        .env("GATEHOUSE_LISTEN", addr.to_string())
        .env("GATEHOUSE_PUBLIC_URL", format!("http://{addr}"))
        .env("GATEHOUSE_HTTP__HEADER_READ_TIMEOUT", "10m")
        .env("GATEHOUSE_LOG__FILTER", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Server(child);
    assert!(
        eventually_healthy(addr, Duration::from_secs(30)),
        "the server did not start"
    );
    let mut stuck = Vec::new();
    for _ in 0..100 {
        if let Ok(mut tcp) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            let _ = tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n");
            stuck.push(tcp);
        }
    }
    assert!(
        eventually_healthy(addr, Duration::from_secs(20)),
        "/healthz was not served within 20 s with {} half-sent heads open",
        stuck.len()
    );
}
