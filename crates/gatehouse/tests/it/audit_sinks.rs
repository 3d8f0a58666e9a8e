//! Audit sinks against real receivers on loopback: a rotated JSON-lines file, syslog over UDP
//! and TCP, OTLP logs, signed webhooks with retries and a dead letter; and a stuck sink that
//! leaves the trail whole.

use gatehouse::{
    audit::{AuditWriter, CommittedRows},
    audit_sinks::{AuditSinks, SinkCounters},
    config::{
        GatewayConfig,
        audit_sinks::{AuditSinkConfig, SinkEvents, SyslogTransport},
    },
    secrets::Keyring,
    store::DynStore,
    upstream::client::UpstreamClient,
};
use gatehouse_model::audit::{AuditEvent, AuditRow, Decision};
use std::{
    collections::VecDeque,
    path::Path,
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, UdpSocket},
    sync::mpsc,
};
use tokio_util::sync::CancellationToken;

use crate::helpers::TestDb;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Every other event is refused.
fn event(n: i64) -> AuditEvent {
    AuditEvent {
        ts_ms: 1_750_000_000_000 + n,
        request_id: format!("req-{n}"),
        client: Some("agent".into()),
        credential_id: None,
        user: None,
        ip: Some("127.0.0.1".into()),
        country: None,
        server: Some("demo".into()),
        http_method: "POST".into(),
        rpc_method: Some("tools/call".into()),
        tool: Some(format!("tool-{n}")),
        decision: if n % 2 == 0 {
            Decision::Deny
        } else {
            Decision::Allow
        },
        reason: (n % 2 == 0).then(|| "tool_not_granted".to_owned()),
        status: if n % 2 == 0 { 403 } else { 200 },
        upstream_status: None,
        latency_us: 10,
        outcome: None,
        response_bytes: None,
        batch: Vec::new(),
        operator: None,
        rule: (n % 2 == 0).then(|| "grant".to_owned()),
    }
}

fn start(configs: Vec<AuditSinkConfig>) -> (Arc<AuditSinks>, CancellationToken) {
    let client = UpstreamClient::new(&GatewayConfig::default()).unwrap();
    let stop = CancellationToken::new();
    let sinks = AuditSinks::start_with_env(&configs, &client, &stop, |name| {
        (name == "HOOK_SECRET").then(|| SECRET.to_owned())
    })
    .unwrap();
    (Arc::new(sinks), stop)
}

/// Records events `1..=count` durably through a writer feeding `sinks`; returns the store.
async fn record(db: &TestDb, sinks: Arc<AuditSinks>, count: i64) -> DynStore {
    let store = db.open().await;
    let (sink, audit) = AuditWriter::new(
        store.clone(),
        Arc::new(Keyring::from_master(&[7; 32])),
        64,
        16,
        true,
        Duration::from_millis(1),
    );
    let committed: Arc<dyn CommittedRows> = sinks;
    let audit = audit.with_committed(Some(committed));
    let stop = CancellationToken::new();
    let running = tokio::spawn(audit.run(stop.clone()));
    for n in 1..=count {
        sink.record(event(n)).await;
    }
    stop.cancel();
    running.await.unwrap();
    store
}

fn counters(sinks: &AuditSinks) -> Arc<SinkCounters> {
    sinks.counters()[0].1.clone()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn rows_in(path: &Path) -> Vec<AuditRow> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn the_file_sink_rotates_by_size_and_keeps_the_newest_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (sinks, _stop) = start(vec![AuditSinkConfig::File {
        path: path.clone(),
        max_bytes: 2_000,
        max_age: Duration::from_secs(3600),
        keep: 2,
        events: vec![SinkEvents::All],
        queue: 1_000,
    }]);
    let db = TestDb::new();
    record(&db, sinks.clone(), 40).await;
    let sent = counters(&sinks);
    until("40 events written", || {
        sent.delivered.load(Ordering::Relaxed) == 40
    })
    .await;
    let older = path.with_file_name("audit.jsonl.2");
    let old = path.with_file_name("audit.jsonl.1");
    assert!(!path.with_file_name("audit.jsonl.3").exists(), "keep = 2");
    let mut kept = rows_in(&older);
    kept.extend(rows_in(&old));
    kept.extend(rows_in(&path));
    for file in [&older, &old, &path] {
        assert!(std::fs::metadata(file).unwrap().len() <= 2_000);
    }
    let seqs: Vec<i64> = kept.iter().map(|r| r.chain_seq).collect();
    assert!(seqs.len() < 40, "the oldest files were removed");
    assert_eq!(seqs, ((41 - seqs.len() as i64)..=40).collect::<Vec<_>>());
}

/// docs/audit.md: the file sink writes each row as `audit query -o json` prints it, its
/// `seq` (the table position the store gave it) included.
#[tokio::test]
async fn the_file_sink_writes_each_row_as_the_store_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (sinks, _stop) = start(vec![AuditSinkConfig::File {
        path: path.clone(),
        max_bytes: 1 << 30,
        max_age: Duration::from_secs(3600),
        keep: 1,
        events: vec![SinkEvents::All],
        queue: 1_000,
    }]);
    let db = TestDb::new();
    let store = record(&db, sinks.clone(), 5).await;
    let sent = counters(&sinks);
    until("5 events written", || {
        sent.delivered.load(Ordering::Relaxed) == 5
    })
    .await;
    let mut stored = store
        .query_audit(&gatehouse_model::audit::AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    stored.sort_by_key(|row| row.seq);
    let written = rows_in(&path);
    assert_eq!(
        serde_json::to_value(&written).unwrap(),
        serde_json::to_value(&stored).unwrap(),
        "the sink's rows are the stored rows, seq included"
    );
    assert!(written.iter().all(|row| row.seq > 0), "{written:?}");
}

/// A file older than `max_age` is rotated before the next line: with no age allowed, every
/// line starts a file of its own.
#[tokio::test]
async fn the_file_sink_rotates_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (sinks, _stop) = start(vec![AuditSinkConfig::File {
        path: path.clone(),
        max_bytes: 1 << 30,
        max_age: Duration::ZERO,
        keep: 10,
        events: vec![SinkEvents::All],
        queue: 1_000,
    }]);
    let db = TestDb::new();
    record(&db, sinks.clone(), 4).await;
    let sent = counters(&sinks);
    until("4 events written", || {
        sent.delivered.load(Ordering::Relaxed) == 4
    })
    .await;
    let oldest_first: Vec<i64> = (1..=3)
        .rev()
        .map(|n| rows_in(&path.with_file_name(format!("audit.jsonl.{n}")))[0].chain_seq)
        .chain([rows_in(&path)[0].chain_seq])
        .collect();
    assert_eq!(oldest_first, [1, 2, 3, 4]);
}

/// Splits `<PRI>1 TS HOST APP PROCID MSGID [SD] MSG` into PRI, the structured data and MSG.
fn parse_5424(message: &str) -> (u8, String, serde_json::Value) {
    let rest = message.strip_prefix('<').unwrap();
    let (pri, rest) = rest.split_once(">1 ").unwrap();
    let fields: Vec<&str> = rest.splitn(5, ' ').collect();
    assert_eq!(fields[2], "gatehouse", "APP-NAME");
    assert_eq!(fields[3], std::process::id().to_string(), "PROCID");
    let rest = fields[4];
    let (msgid, rest) = rest.split_once(' ').unwrap();
    assert_eq!(msgid, "request");
    let end = rest.find("] ").unwrap();
    let data = rest[..=end].to_owned();
    let json = serde_json::from_str(&rest[end + 2..]).unwrap();
    (pri.parse().unwrap(), data, json)
}

#[tokio::test]
async fn syslog_messages_reach_a_udp_receiver_as_rfc_5424() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (sinks, _stop) = start(vec![AuditSinkConfig::Syslog {
        address: socket.local_addr().unwrap().to_string(),
        transport: SyslogTransport::Udp,
        events: vec![SinkEvents::All],
        queue: 100,
    }]);
    let db = TestDb::new();
    record(&db, sinks, 2).await;
    let mut buffer = vec![0; 65_536];
    let mut messages = Vec::new();
    for _ in 0..2 {
        let read = tokio::time::timeout(Duration::from_secs(20), socket.recv(&mut buffer))
            .await
            .expect("a datagram")
            .unwrap();
        messages.push(String::from_utf8(buffer[..read].to_vec()).unwrap());
    }
    let (pri, data, json) = parse_5424(&messages[0]);
    assert_eq!(pri, 13 * 8 + 6, "log audit, informational: allowed");
    assert!(
        data.starts_with("[gatehouse@32473 decision=\"allow\""),
        "{data}"
    );
    assert_eq!(json["request_id"], "req-1");
    let (pri, data, _) = parse_5424(&messages[1]);
    assert_eq!(pri, 13 * 8 + 4, "warning: refused");
    assert!(data.contains("reason=\"tool_not_granted\""), "{data}");
    assert!(data.contains("rule=\"grant\""), "{data}");
    assert!(data.contains("chain=\"1:2\""), "{data}");
}

#[tokio::test]
async fn syslog_over_tcp_uses_octet_counting_frames() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (sinks, _stop) = start(vec![AuditSinkConfig::Syslog {
        address: listener.local_addr().unwrap().to_string(),
        transport: SyslogTransport::Tcp,
        events: vec![SinkEvents::All],
        queue: 100,
    }]);
    let db = TestDb::new();
    record(&db, sinks, 3).await;
    let (mut stream, _) = listener.accept().await.unwrap();
    let mut received = Vec::new();
    let mut frames = Vec::new();
    let mut buffer = [0; 4096];
    while frames.len() < 3 {
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buffer))
            .await
            .expect("three frames")
            .unwrap();
        assert!(read > 0, "connection closed after {} frames", frames.len());
        received.extend_from_slice(&buffer[..read]);
        // MSG-LEN SP SYSLOG-MSG, repeated.
        while let Some(space) = received.iter().position(|&b| b == b' ') {
            let length: usize = std::str::from_utf8(&received[..space])
                .unwrap()
                .parse()
                .unwrap();
            if received.len() < space + 1 + length {
                break;
            }
            let frame: Vec<u8> = received.drain(..space + 1 + length).collect();
            frames.push(String::from_utf8(frame[space + 1..].to_vec()).unwrap());
        }
    }
    let ids: Vec<String> = frames
        .iter()
        .map(|f| parse_5424(f).2["request_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["req-1", "req-2", "req-3"]);
}

/// One request as the receiver saw it.
#[derive(Debug)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }
}

/// A tiny HTTP/1.1 receiver: answers each request with the next status of `statuses` (200
/// once they run out), or never when `silent`; sends what it received.
async fn receiver(statuses: Vec<u16>, silent: bool) -> (String, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let statuses = Arc::new(Mutex::new(VecDeque::from(statuses)));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let statuses = statuses.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buffer = [0; 8192];
                loop {
                    let Some(head_end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => data.extend_from_slice(&buffer[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8(data[..head_end].to_vec()).unwrap();
                    let mut lines = head.split("\r\n");
                    let path = lines.next().unwrap().split(' ').nth(1).unwrap().to_owned();
                    let headers: Vec<(String, String)> = lines
                        .filter_map(|l| l.split_once(": "))
                        .map(|(n, v)| (n.to_owned(), v.to_owned()))
                        .collect();
                    let length: usize = headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                        .map_or(0, |(_, v)| v.parse().unwrap());
                    while data.len() < head_end + 4 + length {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => data.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let body: Vec<u8> = data.drain(..head_end + 4 + length).collect();
                    let body = String::from_utf8(body[head_end + 4..].to_vec()).unwrap();
                    let _ = tx.send(Received {
                        path,
                        headers,
                        body,
                    });
                    if silent {
                        // Holds the connection open without ever answering.
                        std::future::pending::<()>().await;
                    }
                    let status = statuses.lock().unwrap().pop_front().unwrap_or(200);
                    let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a request")
        .unwrap()
}

#[tokio::test]
async fn otlp_logs_are_posted_as_json_log_records() {
    let (url, mut rx) = receiver(Vec::new(), false).await;
    let (sinks, _stop) = start(vec![AuditSinkConfig::Otlp {
        endpoint: format!("{url}/v1/logs"),
        events: vec![SinkEvents::All],
        queue: 100,
        timeout: Duration::from_secs(20),
    }]);
    let db = TestDb::new();
    record(&db, sinks.clone(), 3).await;
    let mut records = Vec::new();
    while records.len() < 3 {
        let request = next(&mut rx).await;
        assert_eq!(request.path, "/v1/logs");
        assert_eq!(request.header("content-type"), "application/json");
        let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
        let logs = &body["resourceLogs"][0];
        assert_eq!(
            logs["resource"]["attributes"][0]["value"]["stringValue"],
            "gatehouse"
        );
        records.extend(
            logs["scopeLogs"][0]["logRecords"]
                .as_array()
                .unwrap()
                .clone(),
        );
    }
    assert_eq!(records[0]["severityText"], "INFO");
    assert_eq!(records[1]["severityText"], "WARN");
    assert_eq!(records[1]["timeUnixNano"], "1750000000002000000");
    let attribute = |record: &serde_json::Value, key: &str| {
        record["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == key)
            .map(|a| a["value"]["stringValue"].clone())
    };
    assert_eq!(
        attribute(&records[1], "gatehouse.rule"),
        Some("grant".into())
    );
    assert_eq!(attribute(&records[0], "gatehouse.rule"), None);
    let event: serde_json::Value =
        serde_json::from_str(records[2]["body"]["stringValue"].as_str().unwrap()).unwrap();
    assert_eq!(event["request_id"], "req-3");
    let counters = counters(&sinks);
    until("delivery counted", || {
        counters.delivered.load(Ordering::Relaxed) == 3
    })
    .await;
}

fn webhook(url: &str, retries: u32, dead_letter: &Path, queue: usize) -> AuditSinkConfig {
    AuditSinkConfig::Webhook {
        url: format!("{url}/hook"),
        secret_env: "HOOK_SECRET".into(),
        events: vec![SinkEvents::Deny, SinkEvents::Admin],
        retries,
        backoff: Duration::from_millis(5),
        timeout: Duration::from_secs(3600),
        dead_letter: dead_letter.to_owned(),
        queue,
    }
}

/// Checks the Standard Webhooks signature with the shared secret.
fn signed_correctly(request: &Received) -> bool {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(
        format!(
            "{}.{}.{}",
            request.header("webhook-id"),
            request.header("webhook-timestamp"),
            request.body
        )
        .as_bytes(),
    );
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    request.header("webhook-signature") == format!("v1,{expected}")
}

#[tokio::test]
async fn a_webhook_is_signed_filtered_and_retried_until_it_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let (url, mut rx) = receiver(vec![500, 503], false).await;
    let (sinks, _stop) = start(vec![webhook(&url, 5, &dead, 100)]);
    let db = TestDb::new();
    record(&db, sinks.clone(), 4).await;
    // Event 2 (refused) fails twice, then is taken; event 4 once. Allowed ones are not sent.
    let mut requests = Vec::new();
    for _ in 0..4 {
        requests.push(next(&mut rx).await);
    }
    for request in &requests {
        assert_eq!(request.path, "/hook");
        assert!(signed_correctly(request), "{request:?}");
    }
    let ids: Vec<&str> = requests.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids, ["gh_1_2", "gh_1_2", "gh_1_2", "gh_1_4"]);
    let event: serde_json::Value = serde_json::from_str(&requests[3].body).unwrap();
    assert_eq!(event["request_id"], "req-4");
    let counters = counters(&sinks);
    until("both delivered", || {
        counters.delivered.load(Ordering::Relaxed) == 2
    })
    .await;
    assert_eq!(counters.failed.load(Ordering::Relaxed), 0);
    assert!(!dead.exists());
}

#[tokio::test]
async fn a_webhook_that_never_takes_an_event_dead_letters_it() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let (url, _rx) = receiver(vec![500; 100], false).await;
    let (sinks, _stop) = start(vec![webhook(&url, 2, &dead, 100)]);
    let db = TestDb::new();
    record(&db, sinks.clone(), 4).await;
    let counters = counters(&sinks);
    until("both dead-lettered", || {
        counters.dead_lettered.load(Ordering::Relaxed) == 2
    })
    .await;
    let letters: Vec<serde_json::Value> = std::fs::read_to_string(&dead)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0]["webhook_id"], "gh_1_2");
    assert_eq!(letters[0]["attempts"], 3);
    assert_eq!(letters[1]["event"]["request_id"], "req-4");
    assert!(!letters[0].to_string().contains("MfKQ9r8G"), "no secret");
}

/// A receiver that takes the connection and never answers: the sink's queue fills and drops
/// its own events; every event still commits to the trail.
#[tokio::test]
async fn a_stuck_sink_leaves_the_trail_whole_and_counts_what_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (url, mut rx) = receiver(Vec::new(), true).await;
    let (sinks, _stop) = start(vec![webhook(&url, 0, &dir.path().join("dead"), 2)]);
    let db = TestDb::new();
    let store = record(&db, sinks.clone(), 100).await;
    assert_eq!(store.audit_page(0, 1_000).await.unwrap().len(), 100);
    next(&mut rx).await;
    let counters = counters(&sinks);
    // 50 refused events offered; at most 2 queued and 2 taken before the sink stuck.
    assert!(
        counters.dropped.load(Ordering::Relaxed) >= 46,
        "dropped {}",
        counters.dropped.load(Ordering::Relaxed)
    );
    assert_eq!(counters.delivered.load(Ordering::Relaxed), 0);
    assert!(
        gatehouse::audit::chain::verify(&*store, &Keyring::from_master(&[7; 32]))
            .await
            .unwrap()
            .is_intact()
    );
}

/// Through the gateway: an OTLP collector that takes connections and never answers does not
/// slow or fail a request, and every request is in the trail.
#[tokio::test]
async fn requests_are_answered_and_recorded_while_a_sink_is_stuck() {
    let (collector, mut rx) = receiver(Vec::new(), true).await;
    let upstream = crate::scripted_upstream::Upstream::start().await;
    let app = crate::helpers::TestApp::start_with(|config| {
        config.audit.sinks = vec![AuditSinkConfig::Otlp {
            endpoint: format!("{collector}/v1/logs"),
            events: vec![SinkEvents::All],
            queue: 2,
            timeout: Duration::from_secs(3600),
        }];
        config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    for n in 0..30 {
        let tool = if n % 3 == 0 { "delete_records" } else { "echo" };
        let answer = app
            .post("demo", Some(&key), &crate::helpers::call(tool))
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer.status().as_u16(),
            if n % 3 == 0 { 403 } else { 200 },
            "call {n}"
        );
    }
    next(&mut rx).await;
    let rows = app.audit().await;
    let calls = rows.iter().filter(|r| r.event.operator.is_none()).count();
    assert_eq!(calls, 30, "every call recorded");
    let sinks = app.server.state.audit_sinks.counters();
    let dropped = sinks[0].1.dropped.load(Ordering::Relaxed);
    assert!(
        dropped >= 20,
        "the stuck sink dropped its own events: {dropped}"
    );
    // /metrics says so, as a counter per sink and outcome.
    let scrape = app
        .http
        .get(format!("http://{}/metrics", app.server.admin_addr.unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        scrape.contains("# TYPE gatehouse_audit_sink_events counter"),
        "{scrape}"
    );
    let sink = &sinks[0].0;
    let line = format!("gatehouse_audit_sink_events_total{{sink=\"{sink}\",outcome=\"dropped\"}} ");
    let scraped: u64 = scrape
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("{line} in {scrape}"))
        .parse()
        .unwrap();
    assert!(scraped >= dropped, "{scraped} < {dropped}");
}

/// A webhook whose secret variable is missing, or too short, stops the start (fail closed),
/// naming the variable and never a secret.
#[test]
fn a_webhook_without_its_secret_does_not_start() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let client = UpstreamClient::new(&GatewayConfig::default()).unwrap();
    let config = webhook("http://127.0.0.1:9", 0, Path::new("dead"), 1);
    let stop = CancellationToken::new();
    let missing =
        AuditSinks::start_with_env(std::slice::from_ref(&config), &client, &stop, |_| None)
            .err()
            .unwrap();
    assert_eq!(
        missing.to_string(),
        "audit sink webhook:http://127.0.0.1:9/hook: the environment variable HOOK_SECRET is not set"
    );
    let short =
        AuditSinks::start_with_env(&[config], &client, &stop, |_| Some("tiny-secret".into()))
            .err()
            .unwrap();
    assert!(
        short.to_string().contains("shorter than 16 bytes"),
        "{short}"
    );
    assert!(!short.to_string().contains("tiny-secret"));
}
