//! Retention: rows past the period are archived into bundles and removed under signed seals;
//! the table stays bounded while archives plus live rows verify end to end, and tampering with
//! or removing an archive is found.

use gatehouse::{
    audit::{
        AuditWriter,
        chain::{self, ChainProblem},
        evidence::{self, BundleProblem},
        retention,
    },
    secrets::Keyring,
    store::DynStore,
};
use gatehouse_model::audit::{AuditEvent, Decision};
use std::{path::Path, sync::Arc, time::Duration};
use tokio_util::sync::CancellationToken;

use crate::helpers::TestDb;

const T0: i64 = 1_750_000_000_000;
/// Rows recorded more than this before "now" are archived.
const KEEP: Duration = Duration::from_millis(30);
/// Small, so a run writes several archives (a round archives about 10 rows).
const ROWS_PER_ARCHIVE: u64 = 7;

fn keyring() -> Arc<Keyring> {
    Arc::new(Keyring::from_master(&[7; 32]))
}

fn event(n: i64) -> AuditEvent {
    AuditEvent {
        ts_ms: T0 + n,
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
        decision: Decision::Allow,
        reason: None,
        status: 200,
        upstream_status: Some(200),
        latency_us: 10,
        outcome: None,
        response_bytes: None,
        batch: Vec::new(),
        operator: None,
        rule: None,
    }
}

/// A running writer (one chain) recording durably.
struct Writer {
    sink: gatehouse::audit::AuditSink,
    stop: CancellationToken,
    running: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(store: &DynStore) -> Writer {
        let (sink, audit) = AuditWriter::new(
            store.clone(),
            keyring(),
            64,
            16,
            true,
            Duration::from_millis(1),
        );
        let stop = CancellationToken::new();
        let running = tokio::spawn(audit.run(stop.clone()));
        Writer {
            sink,
            stop,
            running,
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.running.await.unwrap();
    }
}

async fn live_rows(store: &DynStore) -> usize {
    store.audit_page(0, 100_000).await.unwrap().len()
}

/// 400 events in 40 rounds of 10, alternating between two writers that stay up (their chains
/// are cut mid-way by every run) and a third opened and closed half-way; retention runs after
/// each round. Returns the store and the archive directory's path.
async fn long_run(db: &TestDb, archive: &Path) -> DynStore {
    let store = db.open().await;
    let ring = keyring();
    let first = Writer::start(&store);
    let second = Writer::start(&store);
    let mut most_live = 0;
    for round in 0..40 {
        for k in 0..10 {
            let n = round * 10 + k;
            let writer = if n % 2 == 0 { &first } else { &second };
            writer.sink.record(event(n)).await;
        }
        if round == 20 {
            let third = Writer::start(&store);
            third.sink.record(event(round * 10 + 9)).await;
            third.stop().await;
        }
        let now = T0 + round * 10 + 10;
        let archived = retention::run_once(&*store, &ring, KEEP, archive, now, ROWS_PER_ARCHIVE)
            .await
            .unwrap();
        assert!(archived.iter().all(|a| a.rows <= ROWS_PER_ARCHIVE));
        let live = live_rows(&store).await;
        most_live = most_live.max(live);
        assert!(
            live <= 41,
            "round {round}: {live} rows live; retention keeps about the last 30 ms (30 rows)"
        );
    }
    assert!(
        most_live >= 30,
        "retention kept the recent rows: {most_live}"
    );
    first.stop().await;
    second.stop().await;
    store
}

#[tokio::test]
async fn a_long_run_stays_bounded_and_archives_plus_live_rows_verify_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let db = TestDb::new();
    let store = long_run(&db, &archive).await;

    let report = retention::verify_archive(&*store, &keyring(), &archive)
        .await
        .unwrap();
    assert!(
        report.is_intact(),
        "{:?} {:?} {:?}",
        report.problems,
        report.live.problems,
        report
            .bundles
            .iter()
            .map(|(_, r)| &r.problems)
            .collect::<Vec<_>>()
    );
    let archived: u64 = report.bundles.iter().map(|(_, r)| r.rows_checked).sum();
    assert!(
        report.bundles.len() >= 30,
        "{} archives",
        report.bundles.len()
    );
    assert_eq!(
        archived + report.live.rows_checked,
        401,
        "every row is in an archive or the live table, once"
    );
    // The live trail alone verifies too, each chain starting from its seal.
    assert!(
        chain::verify(&*store, &keyring())
            .await
            .unwrap()
            .is_intact()
    );
}

#[tokio::test]
async fn a_tampered_or_removed_archive_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let db = TestDb::new();
    let store = long_run(&db, &archive).await;
    let ring = keyring();
    let archives = retention::archives(&archive).unwrap();
    let moved = dir.path().join("moved");
    std::fs::create_dir(&moved).unwrap();

    // A row edited in the middle archive.
    let middle = &archives[archives.len() / 2];
    let text = std::fs::read_to_string(middle).unwrap();
    let edited = text.replacen("\"status\":200", "\"status\":201", 1);
    assert_ne!(text, edited);
    std::fs::write(middle, &edited).unwrap();
    let report = retention::verify_archive(&*store, &ring, &archive)
        .await
        .unwrap();
    let (_, broken) = report.bundles.iter().find(|(p, _)| p == middle).unwrap();
    assert!(
        broken
            .problems
            .iter()
            .any(|p| matches!(p, BundleProblem::Altered { .. })),
        "{:?}",
        broken.problems
    );
    std::fs::write(middle, &text).unwrap();
    assert!(
        retention::verify_archive(&*store, &ring, &archive)
            .await
            .unwrap()
            .is_intact()
    );

    // The middle archive removed: the next one does not follow the one before it.
    std::fs::rename(middle, moved.join("middle")).unwrap();
    let report = retention::verify_archive(&*store, &ring, &archive)
        .await
        .unwrap();
    assert!(!report.is_intact());
    assert!(
        report.bundles.iter().any(|(_, r)| r
            .problems
            .iter()
            .any(|p| matches!(p, BundleProblem::NotFollowing { .. }))),
        "a gap between archives"
    );
    std::fs::rename(moved.join("middle"), middle).unwrap();

    // The newest archive removed: the seals name it.
    let newest = archives.last().unwrap();
    std::fs::rename(newest, moved.join("newest")).unwrap();
    let report = retention::verify_archive(&*store, &ring, &archive)
        .await
        .unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("which is not in the archive directory")),
        "{:?}",
        report.problems
    );
    std::fs::rename(moved.join("newest"), newest).unwrap();

    // The oldest archive removed: the first one left continues a missing one.
    std::fs::rename(&archives[0], moved.join("oldest")).unwrap();
    let report = retention::verify_archive(&*store, &ring, &archive)
        .await
        .unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("continues a bundle that is not in the archive")),
        "{:?}",
        report.problems
    );
    std::fs::rename(moved.join("oldest"), &archives[0]).unwrap();

    // A seal moved forward over live rows (someone deleting more rows and covering for it).
    db.execute(
        "UPDATE audit_seals SET seq = seq + 1 WHERE chain_id = 1 AND seq = \
         (SELECT MAX(seq) FROM audit_seals WHERE chain_id = 1)",
        &[],
    )
    .await;
    let live = chain::verify(&*store, &ring).await.unwrap();
    assert!(
        live.problems_in(1)
            .iter()
            .any(|p| matches!(p, ChainProblem::SealForged { .. })),
        "{:?}",
        live.problems
    );
}

#[tokio::test]
async fn one_replica_at_a_time_holds_the_retention_lease() {
    let db = TestDb::new();
    let store = db.open().await;
    assert!(store.audit_retention_lease("a", 100, 1_000).await.unwrap());
    assert!(
        !store.audit_retention_lease("b", 200, 1_100).await.unwrap(),
        "held by a until 1000"
    );
    assert!(store.audit_retention_lease("a", 300, 1_300).await.unwrap());
    assert!(
        store
            .audit_retention_lease("b", 1_400, 2_400)
            .await
            .unwrap(),
        "a's lease expired"
    );
    assert!(store.audit_retention_lease("b", 1_500, 0).await.unwrap());
    assert!(
        store
            .audit_retention_lease("a", 1_600, 2_600)
            .await
            .unwrap(),
        "given back"
    );
}

#[tokio::test]
async fn a_bundle_exported_after_retention_starts_from_the_seals() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let db = TestDb::new();
    let store = long_run(&db, &archive).await;
    let path = dir.path().join("live.bundle");
    let exported = evidence::export(
        &*store,
        &keyring(),
        &evidence::ExportRange {
            previous: retention::archives(&archive).unwrap().pop(),
            ..Default::default()
        },
        &path,
    )
    .await
    .unwrap();
    assert_eq!(exported.manifest.rows as usize, live_rows(&store).await);
    let mut all = retention::archives(&archive).unwrap();
    all.push(path);
    let reports = evidence::verify_sequence(&all, None).unwrap();
    assert!(reports.iter().all(|r| r.is_intact()));

    // Without --previous: the live rows alone, each chain from its seal.
    let alone = dir.path().join("alone.bundle");
    let exported = evidence::export(
        &*store,
        &keyring(),
        &evidence::ExportRange::default(),
        &alone,
    )
    .await
    .unwrap();
    assert_eq!(exported.manifest.rows as usize, live_rows(&store).await);
    assert!(exported.manifest.chains.iter().all(|c| c.first_seq > 1));
    assert!(evidence::verify_bundle(&alone, None).unwrap().is_intact());
}

/// A running server with retention on archives its own rows as they age, and the history
/// still verifies end to end.
#[tokio::test]
async fn a_server_with_retention_on_archives_as_it_runs() {
    let archive = tempfile::tempdir().unwrap();
    let archive_dir = archive.path().to_owned();
    let upstream = crate::scripted_upstream::Upstream::start().await;
    let app = crate::helpers::TestApp::start_with(|config| {
        config.audit.retention = Duration::from_millis(1);
        config.audit.retention_interval = Duration::from_millis(20);
        config.audit.archive_dir = Some(archive_dir.clone());
    })
    .await;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("agent", "demo", "echo").await;
    for _ in 0..10 {
        let answer = app
            .post("demo", Some(&key), &crate::helpers::call("echo"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    // Each call ages past the period at once: retention archives it and then removes it (an
    // archive is in place before its rows are removed, so wait for the removal). The table's
    // newest row, the last call, stays: SQLite numbers new rows after it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let calls_live = app
            .audit()
            .await
            .iter()
            .filter(|row| row.event.operator.is_none())
            .count();
        if calls_live == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{calls_live} calls still live"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = retention::verify_archive(&*app.store, &app.keyring, &archive_dir)
        .await
        .unwrap();
    assert!(
        report.is_intact(),
        "{:?} {:?}",
        report.problems,
        report.live.problems
    );
    let archived_calls: usize = report
        .bundles
        .iter()
        .map(|(path, _)| {
            std::fs::read_to_string(path)
                .unwrap()
                .matches("\"rpc_method\":\"tools/call\"")
                .count()
        })
        .sum();
    assert_eq!(
        archived_calls, 9,
        "every call but the newest is in an archive"
    );
}

/// Retention leaves the table's newest row: SQLite numbers a new row after the highest left,
/// so emptying the table would hand archived numbers to new rows, which the next archive
/// (starting after the last archived number) would then skip.
#[tokio::test]
async fn rows_written_after_a_run_that_archived_everything_old_are_archived_next() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let db = TestDb::new();
    let store = db.open().await;
    let ring = keyring();
    let later = T0 + 3_600_000;
    let first = Writer::start(&store);
    for n in 0..5 {
        first.sink.record(event(n)).await;
    }
    first.stop().await;
    let archived = retention::run_once(&*store, &ring, KEEP, &archive, later, 100)
        .await
        .unwrap();
    assert_eq!(archived[0].rows, 4, "all but the newest row");
    let second = Writer::start(&store);
    for n in 5..10 {
        second.sink.record(event(n)).await;
    }
    second.stop().await;
    let archived = retention::run_once(&*store, &ring, KEEP, &archive, later, 100)
        .await
        .unwrap();
    assert_eq!(archived[0].rows, 5, "the row left last time and 4 new ones");
    assert_eq!(live_rows(&store).await, 1);
    let report = retention::verify_archive(&*store, &ring, &archive)
        .await
        .unwrap();
    assert!(
        report.is_intact(),
        "{:?} {:?}",
        report.problems,
        report.live.problems
    );
}
