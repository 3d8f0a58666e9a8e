//! Three `gatehouse serve` replicas on one PostgreSQL database and one Redis, the example
//! server as their upstream; one replica killed with SIGKILL while callers load all three. In
//! durable mode (the default) every answer a caller received whole has its event in the
//! shared trail, the two others keep serving, the killed one's sessions continue through
//! another replica (they live in Redis), and `gatehouse audit verify` passes across the
//! replicas' chains (the killed one's simply ends).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::serve_with;
use gatehouse_example_server::ExampleServer;
use gatehouse_testkit::{postgres::Postgres, redis::Redis};
use std::{
    collections::BTreeSet,
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Command, Output},
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};
use tokio_util::sync::CancellationToken;

const MASTER_KEY: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";
const REPLICAS: usize = 3;
const CALLERS_PER_REPLICA: usize = 3;

struct Cluster {
    database_url: String,
    redis_url: String,
}

impl Cluster {
    fn env(&self) -> [(&str, &str); 3] {
        [
            ("GATEHOUSE_DATABASE_URL", &self.database_url),
            ("GATEHOUSE_REDIS__URL", &self.redis_url),
            ("GATEHOUSE_MASTER_KEY", MASTER_KEY),
        ]
    }

    fn gatehouse(&self, dir: &Path, args: &[&str]) -> String {
        let out: Output = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .envs(self.env())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gatehouse {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// One answer read whole: its status, `x-request-id` and `mcp-session-id`, and its body.
struct Answer {
    status: u16,
    request_id: Option<String>,
    session: Option<String>,
    body: String,
}

/// Sends one POST on a fresh connection and reads the answer to its end. `None` unless the
/// whole answer arrived (the replica was killed before or while answering).
fn post(addr: &str, token: Option<&str>, session: Option<&str>, body: &str) -> Option<Answer> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let session = session.map_or(String::new(), |s| format!("Mcp-Session-Id: {s}\r\n"));
    write!(
        stream,
        "POST /demo/mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-06-18\r\n\
         {auth}{session}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    parse_answer(&raw)
}

fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines
        .next()?
        .strip_prefix("HTTP/1.1 ")?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    let (mut request_id, mut session, mut length, mut chunked) = (None, None, None, false);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "x-request-id" => request_id = Some(value.to_owned()),
            "mcp-session-id" => session = Some(value.to_owned()),
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    let body = if chunked {
        dechunk(rest)?
    } else {
        let length = length?;
        (rest.len() == length).then(|| rest.to_vec())?
    };
    Some(Answer {
        status,
        request_id,
        session,
        body: String::from_utf8(body).ok()?,
    })
}

/// A chunked body, only when its last (empty) chunk arrived.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&rest[..end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// Opens a legacy session through `addr`: `initialize`, then `notifications/initialized`.
fn open_session(addr: &str, token: &str) -> String {
    let initialize = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"kill-test","version":"1"}}}"#;
    let answer = post(addr, Some(token), None, initialize).expect("initialize answered");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let session = answer.session.expect("an Mcp-Session-Id");
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let answer = post(addr, Some(token), Some(&session), initialized).expect("answered");
    assert_eq!(answer.status, 202, "{}", answer.body);
    session
}

#[test]
fn a_replica_killed_under_load_loses_no_answered_event_and_the_others_keep_serving() {
    let redis = Redis::private().unwrap_or_else(|err| panic!("starting redis-server: {err}"));
    let cluster = Cluster {
        database_url: Postgres::shared().empty_database(),
        redis_url: redis.url(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream = runtime
        .block_on(ExampleServer::start(
            "127.0.0.1:0".parse().unwrap(),
            CancellationToken::new(),
        ))
        .unwrap();

    let admin = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| cluster.gatehouse(admin.path(), args);
    cli(&["servers", "add", "demo", "--url", &upstream.mcp_url()]);
    cli(&["clients", "create", "agent"]);
    cli(&[
        "connections",
        "grant",
        "--client",
        "agent",
        "--server",
        "demo",
        "--tools",
        "echo",
    ]);
    let key: serde_json::Value =
        serde_json::from_str(&cli(&["-o", "json", "keys", "create", "--client", "agent"])).unwrap();
    let token = key["token"].as_str().unwrap().to_owned();

    let dirs: Vec<_> = (0..REPLICAS)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let mut replicas: Vec<_> = dirs
        .iter()
        .map(|dir| serve_with(dir.path(), &cluster.env()))
        .collect();
    let addrs: Vec<String> = replicas.iter().map(|(_, addr)| addr.clone()).collect();

    // Every answer received whole, by replica: its request id.
    let answered: Vec<Mutex<Vec<String>>> = (0..REPLICAS).map(|_| Mutex::default()).collect();
    let counts: Vec<AtomicUsize> = (0..REPLICAS).map(|_| AtomicUsize::new(0)).collect();
    let stop = AtomicBool::new(false);
    let moved_sessions = AtomicUsize::new(0);
    let victim = 0;
    std::thread::scope(|scope| {
        for replica in 0..REPLICAS {
            for caller in 0..CALLERS_PER_REPLICA {
                let (addrs, answered, counts, stop, token, moved_sessions) =
                    (&addrs, &answered, &counts, &stop, &token, &moved_sessions);
                scope.spawn(move || {
                    let mut addr = &addrs[replica];
                    // One caller in three has no credential: refusals are recorded too.
                    let refused = caller == 0;
                    let session = (!refused).then(|| open_session(addr, token));
                    let mut moved = false;
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let call = format!(
                            r#"{{"jsonrpc":"2.0","id":{n},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"r{replica}c{caller}n{n}"}}}}}}"#
                        );
                        let credential = (!refused).then_some(token.as_str());
                        let Some(answer) = post(addr, credential, session.as_deref(), &call)
                        else {
                            assert!(replica == victim && !moved, "a surviving replica failed a call");
                            // As behind a balancer: the next call goes to another replica,
                            // in the same session (bound in Redis, not in the dead process).
                            addr = &addrs[(replica + 1) % REPLICAS];
                            moved = true;
                            continue;
                        };
                        let expected = if refused { 401 } else { 200 };
                        assert_eq!(answer.status, expected, "moved: {moved}: {}", answer.body);
                        if !refused {
                            assert!(
                                answer.body.contains(&format!("r{replica}c{caller}n{n}")),
                                "the echo is in the answer: {}",
                                answer.body
                            );
                        }
                        let id = answer.request_id.expect("every answer has x-request-id");
                        answered[replica].lock().unwrap().push(id);
                        counts[replica].fetch_add(1, Ordering::Relaxed);
                        if moved && !refused {
                            moved_sessions.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        }
        let total = || {
            counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum::<usize>()
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while total() < 300 || counts[victim].load(Ordering::Relaxed) < 50 {
            assert!(
                Instant::now() < deadline,
                "the replicas answered too few calls"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Killed mid-load: its callers are waiting for answers at this moment.
        let (server, _) = &mut replicas[victim];
        server.kill().unwrap();
        server.wait().unwrap();
        let after_kill: Vec<usize> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        for survivor in (0..REPLICAS).filter(|&r| r != victim) {
            while counts[survivor].load(Ordering::Relaxed) < after_kill[survivor] + 100 {
                assert!(
                    Instant::now() < deadline,
                    "replica {survivor} stopped serving after another was killed"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // The victim's session callers continue on another replica.
        while moved_sessions.load(Ordering::Relaxed) < 20 {
            assert!(
                Instant::now() < deadline,
                "the killed replica's sessions did not continue elsewhere"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
    });
    for (server, _) in &mut replicas[1..] {
        server.kill().unwrap();
        server.wait().unwrap();
    }

    let rows: serde_json::Value = serde_json::from_str(&cli(&[
        "-o", "json", "audit", "query", "--kind", "request", "--limit", "0",
    ]))
    .unwrap();
    let recorded: BTreeSet<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["request_id"].as_str().unwrap())
        .collect();
    for (replica, ids) in answered.iter().enumerate() {
        let ids = ids.lock().unwrap();
        let missing: Vec<_> = ids
            .iter()
            .filter(|id| !recorded.contains(id.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "replica {replica}: {} of {} answered requests have no event, e.g. {:?}",
            missing.len(),
            ids.len(),
            &missing[..missing.len().min(5)]
        );
    }
    let verified = cli(&["audit", "verify"]);
    assert!(verified.contains("intact"), "{verified}");
    runtime.block_on(upstream.shutdown());
}
