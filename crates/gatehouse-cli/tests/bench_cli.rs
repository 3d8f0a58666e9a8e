//! `gatehouse bench --provision` against the bundled example server behind a real
//! `gatehouse serve`: every scenario at every concurrency measured without an error, the same
//! data as JSON, a chart, and the throw-away client gone afterwards. Numbers are checked for
//! being measured (positive, p99 at or above p50), never for speed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::deployment::gatehouse;
use serde_json::Value;
use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Output},
};

/// The gateway, killed when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const SCENARIOS: [&str; 6] = [
    "direct",
    "api-key",
    "token",
    "jwt-first-sight",
    "jwt-cached",
    "introspect",
];

struct Setup {
    dir: tempfile::TempDir,
    gateway: String,
    admin: String,
    upstream: String,
    pid: u32,
    _serve: Running,
    _example: gatehouse_example_server::ExampleServer,
    _runtime: tokio::runtime::Runtime,
}

fn setup() -> Setup {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let example = runtime
        .block_on(gatehouse_example_server::ExampleServer::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            tokio_util::sync::CancellationToken::new(),
        ))
        .unwrap();
    let upstream = format!("http://{}/mcp", example.addr());
    let dir = tempfile::tempdir().unwrap();
    let added = gatehouse()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["servers", "add", "example", "--url", &upstream])
        .output()
        .unwrap();
    assert!(added.status.success(), "{}", stderr(&added));
    let admin = format!(
        "127.0.0.1:{}",
        gatehouse_testkit::process::free_loopback_port().unwrap()
    );
    let (child, addr) = common::serve_with(dir.path(), &[("GATEHOUSE_ADMIN_LISTEN", &admin)]);
    common::deployment::wait_for_listener(&admin);
    let pid = child.id();
    Setup {
        dir,
        gateway: format!("http://{addr}"),
        admin,
        upstream,
        pid,
        _serve: Running(child),
        _example: example,
        _runtime: runtime,
    }
}

/// The gateway's count of access tokens it had to verify (not found among those it verified
/// before), from its `/metrics`.
fn token_cache_misses(admin: &str) -> u64 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(admin).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.lines()
        .find(|line| line.starts_with("gatehouse_token_cache_lookups_total{result=\"miss\"}"))
        .and_then(|line| line.split_whitespace().last())
        .map_or(0, |n| n.parse().unwrap())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `gatehouse [global] bench --provision … [more]` at 50 requests, concurrencies 1 and 4.
fn bench(setup: &Setup, global: &[&str], more: &[&str]) -> Output {
    let pid = setup.pid.to_string();
    gatehouse()
        .arg("--data-dir")
        .arg(setup.dir.path())
        .args(global)
        .args([
            "bench",
            "--provision",
            "--gateway",
            &setup.gateway,
            "--server",
            "example",
            "--upstream",
            &setup.upstream,
            "--requests",
            "50",
            "--concurrency",
            "1,4",
            "--gateway-pid",
            &pid,
        ])
        .args(more)
        .output()
        .unwrap()
}

fn clients(dir: &Path) -> Value {
    let out = gatehouse()
        .arg("--data-dir")
        .arg(dir)
        .args(["-o", "json", "clients", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn bench_measures_every_scenario_against_the_example_server_and_cleans_up() {
    let setup = setup();
    let plot = setup.dir.path().join("bench.png");
    let misses_before = token_cache_misses(&setup.admin);
    let out = bench(&setup, &[], &["--plot", plot.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8(out.stdout).unwrap();
    for scenario in SCENARIOS {
        for concurrency in ["1", "4"] {
            let row: Vec<&str> = table
                .lines()
                .map(|line| line.split_whitespace().collect::<Vec<_>>())
                .find(|cells| {
                    cells.first() == Some(&scenario) && cells.get(1) == Some(&concurrency)
                })
                .unwrap_or_else(|| panic!("no row {scenario} × {concurrency} in:\n{table}"));
            // SCENARIO CONC REQUESTS P50 P99 REQ/S ADDED CPU ERRORS
            let number = |i: usize| -> f64 {
                row[i]
                    .parse()
                    .unwrap_or_else(|_| panic!("cell {i} of {row:?} is not a number"))
            };
            assert_eq!(number(2), 50.0, "{row:?}");
            assert!(number(3) > 0.0 && number(4) >= number(3), "{row:?}");
            assert!(number(5) > 0.0, "{row:?}");
            assert_eq!(row[8], "0", "errors in {row:?}");
        }
    }
    // First sight means first sight: each of its 2 × 50 calls carried a token the gateway
    // had to verify.
    let misses = token_cache_misses(&setup.admin) - misses_before;
    assert!(misses >= 100, "only {misses} tokens verified afresh");
    // A PNG: its signature, then the IHDR chunk with the chart's size (1920 × 960).
    let png = std::fs::read(&plot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    assert_eq!(
        &png[16..24],
        &[0, 0, 7, 128, 0, 0, 3, 192],
        "width and height"
    );
    assert_eq!(clients(setup.dir.path()), serde_json::json!([]));

    let svg_path = setup.dir.path().join("bench.svg");
    let out = bench(
        &setup,
        &["-o", "json"],
        &["--plot", svg_path.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("-o json is JSON");
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), SCENARIOS.len() * 2, "{report:#}");
    for row in rows {
        assert_eq!(row["requests"], 50, "{row}");
        assert_eq!(row["errors"], 0, "{row}");
        assert!(row["p50_us"].as_u64().unwrap() > 0, "{row}");
        assert!(row["p99_us"].as_u64() >= row["p50_us"].as_u64(), "{row}");
        assert!(row["requests_per_second"].as_f64().unwrap() > 0.0, "{row}");
        if row["scenario"] == "direct" {
            assert!(row["added_p50_us"].is_null(), "{row}");
        } else {
            assert!(row["added_p50_us"].is_i64(), "{row}");
            assert!(row["cpu_us_per_request"].as_f64().unwrap() >= 0.0, "{row}");
        }
    }
    assert_eq!(report["cpu_measured"], true);
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("jwt-first-sight"),
        "{svg}"
    );
    assert_eq!(clients(setup.dir.path()), serde_json::json!([]));
}

#[test]
fn bench_refuses_a_target_off_this_machine_and_provisioning_through_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let out = gatehouse()
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "bench",
            "--gateway",
            "http://192.0.2.1:8080",
            "--server",
            "example",
            "--upstream",
            "http://127.0.0.1:9/mcp",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--allow-remote"), "{}", stderr(&out));

    // A chart format it cannot write is refused before any load is sent.
    let out = gatehouse()
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "bench",
            "--gateway",
            "http://127.0.0.1:9",
            "--server",
            "example",
            "--upstream",
            "http://127.0.0.1:9/mcp",
            "--plot",
            "chart.jpg",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("FILE.png or FILE.svg"),
        "{}",
        stderr(&out)
    );

    let out = gatehouse()
        .args(["--server", "http://127.0.0.1:9"])
        .args([
            "bench",
            "--provision",
            "--gateway",
            "http://127.0.0.1:9",
            "--server",
            "example",
            "--upstream",
            "http://127.0.0.1:9/mcp",
        ])
        .env("GATEHOUSE_ADMIN_TOKEN", "unused")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bench --provision"),
        "{}",
        stderr(&out)
    );
}
