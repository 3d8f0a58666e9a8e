//! Retention (`audit.retention`): rows older than the period are archived into an evidence
//! bundle in `audit.archive_dir`, synced to disk, then removed in one transaction with a
//! signed seal per chain (the last removed row and the bundle that holds it). `audit verify`
//! starts each chain from its seal; the archives, consecutive bundles, prove what came
//! before (docs/audit.md, "Retention").
//!
//! One replica at a time: a lease row in the store (`audit_retention_lease`) is taken before a
//! run and given back after; a second run that sealed the same rows anyway would be refused
//! whole by the seals' primary key.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use super::evidence::{
    self, BundleReport, EvidenceError, ExportRange, Head, public_key_hex, signature_verifies,
};
use crate::{audit::chain::VerifyReport, secrets::Keyring, store::Store};
use gatehouse_model::audit::AuditSeal;

/// Archives are named by the last table position they hold, so names sort in order.
const PREFIX: &str = "audit-";
const SUFFIX: &str = ".bundle";
/// Written here first and renamed once complete: a crash leaves no half bundle under an
/// archive's name.
const PARTIAL: &str = ".audit-partial.bundle";
/// How long a run may hold the lease before another replica may take it over.
const LEASE: Duration = Duration::from_secs(15 * 60);

/// What the seal's signature covers.
fn seal_bytes(seal: &AuditSeal) -> Vec<u8> {
    format!(
        "gatehouse audit seal v1\nchain {}\n{}\n{}\n{}\n{}\n{}\n{}",
        seal.chain_id,
        seal.seq,
        seal.hash,
        seal.upto_seq,
        seal.bundle_digest,
        seal.sealed_ms,
        seal.bundle
    )
    .into_bytes()
}

/// Whether the seal is signed with this master key's evidence key and unchanged.
pub fn seal_is_authentic(seal: &AuditSeal, keyring: &Keyring) -> bool {
    signature_verifies(&public_key_hex(keyring), &seal_bytes(seal), &seal.signature)
}

/// One run's result: the archive written and the rows removed.
#[derive(Debug, Clone)]
pub struct Archived {
    pub bundle: PathBuf,
    pub rows: u64,
    pub removed: u64,
    pub upto_seq: i64,
}

/// The archives in `dir`, oldest first.
pub fn archives(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    found.sort();
    Ok(found)
}

/// Rows per archive: each run removes at most this many in one transaction (a short write
/// lock), and a run goes on bundle after bundle until every old row is archived.
pub const ROWS_PER_ARCHIVE: u64 = 50_000;

/// Archives the rows recorded before `now_ms - keep` and removes them, in bundles of at most
/// `max_rows`; the archives written (none when there was nothing to archive or another
/// replica holds the lease).
pub async fn run_once(
    store: &dyn Store,
    keyring: &Keyring,
    keep: Duration,
    archive_dir: &Path,
    now_ms: i64,
    max_rows: u64,
) -> Result<Vec<Archived>, EvidenceError> {
    let holder = super::registry::this_writer();
    let until = now_ms + i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX);
    if !store.audit_retention_lease(&holder, now_ms, until).await? {
        return Ok(Vec::new());
    }
    let mut done = Vec::new();
    let outcome = loop {
        match archive(store, keyring, keep, archive_dir, now_ms, max_rows.max(1)).await {
            Ok(Some(archived)) => {
                let full = archived.rows >= max_rows;
                done.push(archived);
                if !full {
                    break Ok(());
                }
                // Each bundle renews the lease: a long backlog is not taken over mid-way.
                let now = crate::now_ms();
                let until = now + i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX);
                if !store.audit_retention_lease(&holder, now, until).await? {
                    break Ok(());
                }
            }
            Ok(None) => break Ok(()),
            Err(err) => break Err(err),
        }
    };
    if let Err(err) = store.audit_retention_lease(&holder, now_ms, 0).await {
        tracing::warn!(error = %err, "could not give the audit retention lease back; it expires");
    }
    outcome.map(|()| done)
}

async fn archive(
    store: &dyn Store,
    keyring: &Keyring,
    keep: Duration,
    archive_dir: &Path,
    now_ms: i64,
    max_rows: u64,
) -> Result<Option<Archived>, EvidenceError> {
    crate::secrets::create_private_dir(archive_dir)
        .map_err(|e| EvidenceError::io(archive_dir, e))?;
    let partial = archive_dir.join(PARTIAL);
    match std::fs::remove_file(&partial) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(EvidenceError::io(&partial, e));
        }
        _ => {}
    }
    let previous = archives(archive_dir)
        .map_err(|e| EvidenceError::io(archive_dir, e))?
        .pop();
    let range = ExportRange {
        from_ms: None,
        to_ms: Some(now_ms - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX)),
        max_rows: Some(max_rows),
        leave_newest: true,
        heads: Vec::new(),
        previous,
    };
    let exported = evidence::export(store, keyring, &range, &partial).await?;
    if exported.manifest.rows == 0 {
        let _ = std::fs::remove_file(&partial);
        return Ok(None);
    }
    let upto_seq = exported.manifest.upto_seq;
    let name = format!("{PREFIX}{upto_seq:020}{SUFFIX}");
    let bundle = archive_dir.join(&name);
    std::fs::rename(&partial, &bundle).map_err(|e| EvidenceError::io(&bundle, e))?;
    if let Ok(dir) = std::fs::File::open(archive_dir) {
        let _ = dir.sync_all();
    }
    // Every chain whose head moved past its seal: this bundle's chains, and those of an
    // archive a crashed run wrote but did not seal (its rows are removed now too).
    let sealed = newest_seals(store).await?;
    let seals: Vec<AuditSeal> = exported
        .manifest
        .heads
        .iter()
        .filter(|head| {
            !sealed
                .iter()
                .any(|s| s.chain_id == head.chain_id && s.seq >= head.seq)
        })
        .map(|head| {
            let mut seal = AuditSeal {
                chain_id: head.chain_id,
                seq: head.seq,
                hash: head.hash.clone(),
                upto_seq,
                bundle: name.clone(),
                bundle_digest: exported.digest.clone(),
                sealed_ms: now_ms,
                signature: String::new(),
            };
            seal.signature = hex::encode(keyring.sign_evidence(&seal_bytes(&seal)));
            seal
        })
        .collect();
    // The archive stays if the removal fails: the next run continues it, and its rows are
    // removed with the next seal.
    let removed = store.remove_archived_audit(&seals, upto_seq).await?;
    Ok(Some(Archived {
        bundle,
        rows: exported.manifest.rows,
        removed,
        upto_seq,
    }))
}

/// Each chain's newest seal as a head: where a chain's live rows start.
async fn newest_seals(store: &dyn Store) -> Result<Vec<Head>, EvidenceError> {
    let mut heads = std::collections::BTreeMap::new();
    for seal in store.audit_seals().await? {
        heads.insert(
            seal.chain_id,
            Head {
                chain_id: seal.chain_id,
                seq: seal.seq,
                hash: seal.hash,
            },
        );
    }
    Ok(heads.into_values().collect())
}

/// Runs retention every `every` until `stop`; failures are logged and retried next time
/// (nothing is removed unless its archive was written).
pub async fn run(
    store: crate::store::DynStore,
    keyring: Arc<Keyring>,
    keep: Duration,
    archive_dir: PathBuf,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        let now = crate::now_ms();
        match run_once(&*store, &keyring, keep, &archive_dir, now, ROWS_PER_ARCHIVE).await {
            Ok(archived) => {
                for archived in archived {
                    tracing::info!(
                        bundle = %archived.bundle.display(),
                        rows = archived.rows,
                        removed = archived.removed,
                        "audit rows archived and removed"
                    );
                }
            }
            Err(err) => tracing::error!(error = %err, "audit retention failed; retrying later"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// The whole history: every archive on its own and as the continuation of the one before,
/// the live table from the seals, and each seal against the archive it names.
#[derive(Debug, Default)]
pub struct ArchiveReport {
    pub bundles: Vec<(PathBuf, BundleReport)>,
    pub live: VerifyReport,
    /// Problems between the archives and the live table.
    pub problems: Vec<String>,
}

impl ArchiveReport {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
            && self.live.is_intact()
            && self.bundles.iter().all(|(_, r)| r.is_intact())
    }
}

pub async fn verify_archive(
    store: &dyn Store,
    keyring: &Keyring,
    archive_dir: &Path,
) -> Result<ArchiveReport, EvidenceError> {
    let paths = archives(archive_dir).map_err(|e| EvidenceError::io(archive_dir, e))?;
    let key = public_key_hex(keyring);
    let reports = evidence::verify_sequence(&paths, Some(&key))
        .map_err(|why| EvidenceError::io(archive_dir, std::io::Error::other(why)))?;
    let mut problems = Vec::new();
    if let Some(first) = reports.first()
        && first.manifest.previous.is_some()
    {
        problems.push(format!(
            "{}: continues a bundle that is not in the archive (an older archive was removed?)",
            paths[0].display()
        ));
    }
    let seals = store.audit_seals().await?;
    let mut newest = std::collections::BTreeMap::new();
    for seal in &seals {
        newest.insert(seal.chain_id, seal);
    }
    for seal in newest.values() {
        let named = paths
            .iter()
            .zip(&reports)
            .find(|(path, _)| path.file_name().and_then(|n| n.to_str()) == Some(&seal.bundle));
        match named {
            None => problems.push(format!(
                "chain {}: its seal names archive {}, which is not in the archive directory (removed?)",
                seal.chain_id, seal.bundle
            )),
            Some((path, report)) => {
                let head = report
                    .manifest
                    .heads
                    .iter()
                    .find(|h| h.chain_id == seal.chain_id);
                if report.digest != seal.bundle_digest
                    || head.is_none_or(|h| h.seq != seal.seq || h.hash != seal.hash)
                {
                    problems.push(format!(
                        "chain {}: {} is not the archive its seal names (replaced?)",
                        seal.chain_id,
                        path.display()
                    ));
                }
            }
        }
    }
    let live = super::chain::verify(store, keyring).await?;
    Ok(ArchiveReport {
        bundles: paths.into_iter().zip(reports).collect(),
        live,
        problems,
    })
}
