//! A server killed with SIGKILL while it answers many requests at once: in durable mode (the
//! default) every request a client saw answered has its audit event in the database, since
//! a refusal is sent, and a relayed answer ends, only once its event is committed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::serve;
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Command, Output},
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

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

/// An upstream answering every call at once with one JSON-RPC result.
fn upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || answer_calls(stream));
        }
    });
    url
}

fn answer_calls(stream: TcpStream) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let result = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#;
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{result}",
            result.len()
        );
        if reader.get_mut().write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// A call, refused with 401 without `token`. The answer's status, once the whole answer is
/// in; `None` when it is not (the server was gone).
fn call(addr: &str, token: Option<&str>) -> Option<u16> {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let mut stream = TcpStream::connect(addr).ok()?;
    write!(
        stream,
        "POST /demo/mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{auth}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8_lossy(&answer);
    // Only a whole answer counts: its last byte ends the JSON-RPC message.
    if !answer.ends_with('}') {
        return None;
    }
    answer
        .strip_prefix("HTTP/1.1 ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

#[test]
fn a_server_killed_under_load_keeps_the_event_of_every_answered_request() {
    let dir = tempfile::tempdir().unwrap();
    let url = upstream();
    stdout(&gatehouse(
        dir.path(),
        &["servers", "add", "demo", "--url", &url],
    ));
    stdout(&gatehouse(dir.path(), &["clients", "create", "agent"]));
    stdout(&gatehouse(
        dir.path(),
        &[
            "connections",
            "grant",
            "--client",
            "agent",
            "--server",
            "demo",
            "--tools",
            "*",
        ],
    ));
    let key: serde_json::Value = serde_json::from_str(&stdout(&gatehouse(
        dir.path(),
        &["-o", "json", "keys", "create", "--client", "agent"],
    )))
    .unwrap();
    let token = key["token"].as_str().unwrap();
    let (mut server, addr) = serve(dir.path());
    let answered = AtomicUsize::new(0);
    let relayed = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Half the clients are refused, half have their calls relayed.
        for n in 0..8 {
            let (token, expected) = if n % 2 == 0 {
                (None, 401)
            } else {
                (Some(token), 200)
            };
            let (addr, answered, relayed, stop) = (&addr, &answered, &relayed, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match call(addr, token) {
                        Some(status) => {
                            assert_eq!(status, expected);
                            answered.fetch_add(1, Ordering::Relaxed);
                            if status == 200 {
                                relayed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        None => break,
                    }
                }
            });
        }
        // Killed mid-stream: eight clients are waiting for answers at this moment.
        let deadline = Instant::now() + Duration::from_secs(60);
        while answered.load(Ordering::Relaxed) < 300 {
            assert!(
                Instant::now() < deadline,
                "the server answered too few calls"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        server.kill().unwrap();
        server.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
    });
    let answered = answered.into_inner();
    assert!(relayed.into_inner() > 0, "some calls were relayed");

    let out = stdout(&gatehouse(
        dir.path(),
        &[
            "-o", "json", "audit", "query", "--kind", "request", "--limit", "0",
        ],
    ));
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let recorded = rows.as_array().unwrap().len();
    assert!(
        recorded >= answered,
        "{answered} requests answered, {recorded} events recorded"
    );
    let verified = stdout(&gatehouse(dir.path(), &["audit", "verify"]));
    assert!(verified.contains("intact"), "{verified}");
}
