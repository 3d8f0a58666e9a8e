//! Evidence bundles: exported from the trail, verified offline from the file alone; every
//! kind of tampering is named, and consecutive bundles prove continuity.

use gatehouse::{
    audit::{
        AuditWriter,
        evidence::{self, BundleProblem, ExportRange},
    },
    secrets::Keyring,
    store::DynStore,
};
use gatehouse_model::audit::{AuditEvent, Decision};
use std::{path::Path, path::PathBuf, sync::Arc, time::Duration};
use tokio_util::sync::CancellationToken;

use crate::helpers::TestDb;

const T0: i64 = 1_750_000_000_000;

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
        decision: if n % 4 == 0 {
            Decision::Deny
        } else {
            Decision::Allow
        },
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

/// Records events `numbers` in order through a writer of its own (one new chain).
async fn write(store: &DynStore, numbers: std::ops::Range<i64>) {
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
    for n in numbers {
        sink.record(event(n)).await;
    }
    stop.cancel();
    running.await.unwrap();
}

async fn export(store: &DynStore, range: ExportRange, path: &Path) -> evidence::Exported {
    evidence::export(&**store, &keyring(), &range, path)
        .await
        .unwrap()
}

fn key() -> String {
    evidence::public_key_hex(&keyring())
}

fn problems(path: &Path) -> Vec<BundleProblem> {
    evidence::verify_bundle(path, Some(&key()))
        .unwrap()
        .problems
}

/// The bundle's lines, changed by `edit`, written to a file beside it.
fn tampered(path: &Path, name: &str, edit: impl FnOnce(&mut Vec<String>)) -> PathBuf {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    edit(&mut lines);
    let out = path.with_file_name(name);
    std::fs::write(&out, lines.join("\n") + "\n").unwrap();
    out
}

/// Two chains of 12 rows each, exported whole.
async fn bundle_of_two_chains(dir: &tempfile::TempDir) -> (TestDb, PathBuf) {
    let db = TestDb::new();
    let store = db.open().await;
    write(&store, 0..12).await;
    write(&store, 12..24).await;
    let path = dir.path().join("all.bundle");
    let exported = export(&store, ExportRange::default(), &path).await;
    assert_eq!(exported.manifest.rows, 24);
    assert_eq!(exported.manifest.chains.len(), 2);
    (db, path)
}

#[tokio::test]
async fn an_exported_bundle_verifies_offline_with_the_pinned_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, path) = bundle_of_two_chains(&dir).await;
    let report = evidence::verify_bundle(&path, Some(&key())).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.rows_checked, 24);
    assert_eq!(report.digest, evidence::file_digest(&path).unwrap());
    // The key each bundle names is trusted without a pin; a pin of another key is not met.
    assert!(evidence::verify_bundle(&path, None).unwrap().is_intact());
    let other = evidence::public_key_hex(&Keyring::from_master(&[8; 32]));
    assert!(matches!(
        evidence::verify_bundle(&path, Some(&other))
            .unwrap()
            .problems[..],
        [BundleProblem::KeyNotPinned { .. }]
    ));
}

#[tokio::test]
async fn every_kind_of_tampering_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, path) = bundle_of_two_chains(&dir).await;

    // Row 4 of chain 1 (the bundle's 4th line): a tool renamed.
    let altered = tampered(&path, "altered", |lines| {
        lines[3] = lines[3].replace("tool-3", "tool-X");
    });
    assert_eq!(
        problems(&altered),
        vec![BundleProblem::Altered {
            chain_id: 1,
            seq: 4
        }]
    );

    let deleted = tampered(&path, "deleted", |lines| {
        lines.remove(5);
    });
    let found = problems(&deleted);
    assert!(
        found.contains(&BundleProblem::Missing {
            chain_id: 1,
            from: 6,
            to: 6
        }),
        "{found:?}"
    );

    let reordered = tampered(&path, "reordered", |lines| lines.swap(2, 3));
    let found = problems(&reordered);
    assert!(
        found.contains(&BundleProblem::OutOfOrder {
            chain_id: 1,
            seq: 3
        }),
        "{found:?}"
    );

    // The last three rows of chain 2 (lines 22 to 24; the manifest is line 25).
    let cut = tampered(&path, "cut", |lines| {
        lines.drain(21..24);
    });
    let found = problems(&cut);
    assert!(
        found.contains(&BundleProblem::MissingAtEnd {
            chain_id: 2,
            from: 10,
            to: 12
        }),
        "{found:?}"
    );

    // The whole manifest gone with the last rows: nothing vouches for the rest.
    let headless = tampered(&path, "headless", |lines| {
        lines.pop();
    });
    assert!(problems(&headless).contains(&BundleProblem::NoManifest));

    // Another key put in the manifest: its signature no longer verifies.
    let other = evidence::public_key_hex(&Keyring::from_master(&[8; 32]));
    let swapped = tampered(&path, "swapped", |lines| {
        let last = lines.len() - 1;
        lines[last] = lines[last].replace(&key(), &other);
    });
    let found = evidence::verify_bundle(&swapped, None).unwrap().problems;
    assert_eq!(found, vec![BundleProblem::BadSignature]);
    let found = problems(&swapped);
    assert!(found.contains(&BundleProblem::KeyNotPinned {
        found: other,
        pinned: key()
    }));

    // A row edited and every digest after it recomputed: the manifest's signed digest
    // still tells.
    let rechained = tampered(&path, "rechained", |lines| {
        rechain(lines, 3, |line| line.replace("tool-3", "tool-X"));
    });
    assert_eq!(
        problems(&rechained),
        vec![BundleProblem::DigestMismatch { chain_id: 1 }]
    );

    // The messages name what is wrong.
    let text = |p: &BundleProblem| p.to_string();
    assert_eq!(
        text(&problems(&altered)[0]),
        "chain 1: row 4 was altered (it does not match its signed digest)"
    );
    assert!(text(&problems(&cut)[0]).contains("rows 10 to 12 are missing from the end"));
}

/// Edits line `at` and recomputes the digest of it and of every row after it in its chain, as
/// someone without the evidence key could.
fn rechain(lines: &mut [String], at: usize, edit: impl Fn(&str) -> String) {
    lines[at] = edit(&lines[at]);
    let mut parsed: Vec<evidence::RowLine> = lines[..lines.len() - 1]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let chain = parsed[at].row.chain_id;
    let mut prev: [u8; 32] = hex::decode(&parsed[at - 1].digest)
        .unwrap()
        .try_into()
        .unwrap();
    for (index, line) in parsed.iter_mut().enumerate().skip(at) {
        if line.row.chain_id != chain {
            continue;
        }
        prev = evidence::row_digest(&prev, &line.row);
        line.digest = hex::encode(prev);
        lines[index] = serde_json::to_string(line).unwrap();
    }
}

#[tokio::test]
async fn consecutive_bundles_verify_as_continuous_and_a_gap_between_them_fails() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new();
    let store = db.open().await;
    let first = dir.path().join("1.bundle");
    let second = dir.path().join("2.bundle");
    let third = dir.path().join("3.bundle");
    write(&store, 0..10).await;
    export(&store, ExportRange::default(), &first).await;
    // The writer of chain 1 is gone; chain 2 opens, then chain 3.
    write(&store, 10..20).await;
    let previous = |path: &Path| ExportRange {
        previous: Some(path.to_owned()),
        ..ExportRange::default()
    };
    let exported = export(&store, previous(&first), &second).await;
    assert_eq!(exported.manifest.rows, 10, "only the rows after the first");
    write(&store, 20..25).await;
    export(&store, previous(&second), &third).await;

    let reports = evidence::verify_sequence(&[&first, &second, &third], Some(&key())).unwrap();
    for report in &reports {
        assert!(report.is_intact(), "{:?}", report.problems);
    }

    let reports = evidence::verify_sequence(&[&first, &third], Some(&key())).unwrap();
    assert!(reports[0].is_intact());
    let found = &reports[1].problems;
    assert!(
        found
            .iter()
            .any(|p| matches!(p, BundleProblem::NotFollowing { .. })),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| matches!(p, BundleProblem::RangeGap { .. })),
        "{found:?}"
    );
}

#[tokio::test]
async fn a_time_range_takes_only_its_rows_and_the_next_bundle_continues_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new();
    let store = db.open().await;
    write(&store, 0..20).await;
    let middle = dir.path().join("middle.bundle");
    let exported = export(
        &store,
        ExportRange {
            from_ms: Some(T0 + 5),
            to_ms: Some(T0 + 15),
            ..ExportRange::default()
        },
        &middle,
    )
    .await;
    assert_eq!(exported.manifest.rows, 10);
    assert_eq!(exported.manifest.chains[0].first_seq, 6);
    assert!(problems(&middle).is_empty());
    let rest = dir.path().join("rest.bundle");
    export(
        &store,
        ExportRange {
            previous: Some(middle.clone()),
            ..ExportRange::default()
        },
        &rest,
    )
    .await;
    let reports = evidence::verify_sequence(&[&middle, &rest], Some(&key())).unwrap();
    assert!(reports.iter().all(|r| r.is_intact()), "{reports:?}");
    assert_eq!(reports[1].rows_checked, 5);
}

#[tokio::test]
async fn an_edited_trail_is_not_exported() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new();
    let store = db.open().await;
    write(&store, 0..6).await;
    db.execute(
        "UPDATE audit_events SET tool = 'forged' WHERE chain_seq = 3",
        &[],
    )
    .await;
    let path = dir.path().join("x.bundle");
    let err = evidence::export(&*store, &keyring(), &ExportRange::default(), &path)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "chain 1: row 3 does not verify with this master key; nothing was exported (run `gatehouse audit verify`)"
    );
    assert!(!path.exists(), "no partial bundle is left behind");
}
