//! Cost of the audit trail per request, off the load harness's noise.
//!
//! `cargo bench -p gatehouse --bench audit`
//!
//! - `link`: chaining one event (canonical form + keyed hash), done by the writer per row.
//! - `append`: writing a batch of rows to SQLite in one transaction (WAL, synchronous=NORMAL),
//!   for the batch sizes the writer produces under load; divide by the size for a row's cost.
//!   The runtime is current-thread: the append runs on the blocking pool, as in the server.
//! - `record_concurrently`: what recording costs the requests, durable against not, with 32
//!   requests recording at once (durable requests share commits: group commit).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use divan::{Bencher, black_box};
use gatehouse::audit::checkpoint::KeyedCheckpoint;
use gatehouse::{
    audit::chain,
    secrets::Keyring,
    store::{SqliteStore, Store},
};
use gatehouse_model::audit::{AuditEvent, AuditRow, Checkpoint, Decision};
use std::sync::LazyLock;

fn main() {
    divan::main();
}

static RING: LazyLock<Keyring> = LazyLock::new(|| Keyring::from_master(&[0x42; 32]));

/// A typical allowed `tools/call`, as the gateway records it.
fn event(n: i64) -> AuditEvent {
    AuditEvent {
        ts_ms: 1_750_000_000_000 + n,
        request_id: format!("01jq8x4c{n:08x}"),
        client: Some("analytics-agent".into()),
        credential_id: Some("gk_3f9a2c1b7d".into()),
        user: None,
        ip: Some("10.1.2.3".into()),
        country: None,
        server: Some("finance".into()),
        http_method: "POST".into(),
        rpc_method: Some("tools/call".into()),
        tool: Some("get_balance".into()),
        decision: Decision::Allow,
        reason: None,
        status: 200,
        upstream_status: Some(200),
        latency_us: 412,
        outcome: None,
        response_bytes: None,
        batch: Vec::new(),
        operator: None,
        rule: None,
    }
}

#[divan::bench]
fn link(bencher: Bencher<'_, '_>) {
    let event = event(1);
    let prev = chain::GENESIS.to_owned();
    bencher.bench(|| chain::link(&RING, 1, black_box(&prev), black_box(41), black_box(&event)));
}

#[divan::bench(args = [1, 64, 512], sample_count = 30)]
fn append(bencher: Bencher<'_, '_>, size: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = runtime.block_on(SqliteStore::open(&url)).unwrap();
    let mut seq = 0i64;
    let mut prev = chain::GENESIS.to_owned();
    bencher
        .with_inputs(|| {
            (0..size)
                .map(|_| {
                    seq += 1;
                    let event = event(seq);
                    let hash = chain::link(&RING, 1, &prev, seq, &event);
                    AuditRow {
                        seq,
                        chain_id: 1,
                        chain_seq: seq,
                        hash_version: chain::HASH_VERSION,
                        event,
                        prev_hash: std::mem::replace(&mut prev, hash.clone()),
                        hash,
                    }
                })
                .collect::<Vec<_>>()
        })
        .bench_local_values(|rows: Vec<AuditRow>| {
            let last = rows.last().unwrap();
            let checkpoint = Checkpoint::sign(&RING, 1, last.seq, &last.hash, last.event.ts_ms);
            runtime
                .block_on(store.append_audit(std::sync::Arc::new(rows), checkpoint, None))
                .unwrap()
        });
}

/// 32 requests at once, each recording 16 events one after another (512 per iteration),
/// through the real writer: `durable` waits for each event's commit, which the writer shares
/// among the requests waiting together (group commit); otherwise the request only queues it.
/// Divide by 512 for an event's cost.
#[divan::bench(args = [false, true], sample_count = 10)]
fn record_concurrently(bencher: Bencher<'_, '_>, durable: bool) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store: gatehouse::store::DynStore =
        std::sync::Arc::new(runtime.block_on(SqliteStore::open(&url)).unwrap());
    let ring = std::sync::Arc::new(Keyring::from_master(&[0x42; 32]));
    let (sink, writer) = gatehouse::audit::AuditWriter::new(
        store,
        ring,
        16_384,
        512,
        durable,
        std::time::Duration::from_millis(20),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let running = runtime.spawn(writer.run(stop.clone()));
    bencher.bench_local(|| {
        runtime.block_on(async {
            let mut requests = tokio::task::JoinSet::new();
            for r in 0..32 {
                let sink = sink.clone();
                requests.spawn(async move {
                    for n in 0..16 {
                        sink.record(event(r * 16 + n)).await;
                    }
                });
            }
            while requests.join_next().await.is_some() {}
        })
    });
    stop.cancel();
    runtime.block_on(running).unwrap();
}
