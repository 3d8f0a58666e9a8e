//! `[log] format = "json"`: every log line is one JSON object, and at `debug` under
//! `gatehouse::request` each gateway request writes one line with its decision and reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_gateway_request_is_one_json_line_at_debug() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Kill(
        Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("--data-dir")
            .arg(dir.path())
            .arg("serve")
            .env_remove("GATEHOUSE_MASTER_KEY")
            .env_remove("RUST_LOG")
            .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
            .env("GATEHOUSE_LOG__FORMAT", "json")
            .env("GATEHOUSE_LOG__FILTER", "info,gatehouse::request=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stderr = BufReader::new(server.0.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let next = |what: &str| {
        let left = deadline.saturating_duration_since(Instant::now());
        lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {what} within the deadline"))
    };
    let mut logged = Vec::new();
    let addr = loop {
        let line = next("listening line");
        if let Some(rest) = line.strip_prefix("gatehouse listening on http://") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
        logged.push(line);
    };
    // A request to a server that does not exist: refused, and logged like any other.
    let mut stream = TcpStream::connect(&addr).unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    write!(
        stream,
        "POST /nosuch/mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let request_line = loop {
        let line = next("request line");
        if line.contains("gatehouse::request") {
            break line;
        }
        logged.push(line);
    };
    for line in &logged {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    }
    assert!(!logged.is_empty(), "the startup log lines were read");
    let event: serde_json::Value = serde_json::from_str(&request_line).unwrap();
    assert_eq!(event["level"], "DEBUG", "{event}");
    assert_eq!(event["target"], "gatehouse::request", "{event}");
    assert_eq!(event["decision"], "deny", "{event}");
    assert_eq!(event["reason"], "unknown_server", "{event}");
    assert_eq!(event["status"], 404, "{event}");
    assert!(
        event["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{event}"
    );
}
