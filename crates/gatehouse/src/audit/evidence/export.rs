//! Writing a bundle: the rows of a range, each checked against its keyed hash and linked to
//! the one before it in its chain, then the signed manifest.

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
};

use sha2::{Digest as _, Sha256};

use super::{
    EvidenceError, FORMAT, Head, Manifest, ManifestLine, Previous, RowLine, Segment, VERSION,
    row_digest, signed_bytes, start_digest, verify_bundle,
};
use crate::{
    audit::chain::{GENESIS, link_version},
    secrets::Keyring,
    store::Store,
};
use gatehouse_model::audit::{AuditFilter, AuditRow};

/// Which rows a bundle takes.
#[derive(Debug, Clone, Default)]
pub struct ExportRange {
    /// Rows recorded before this are left out (ignored with `previous`, which says where
    /// the bundle starts).
    pub from_ms: Option<i64>,
    /// The bundle ends before the first row (in table order) recorded at or after this;
    /// without it, at the newest row when the export started.
    pub to_ms: Option<i64>,
    /// The bundle this one continues: it starts after that bundle's last row and records its
    /// file digest. It must verify with this master key's evidence key.
    pub previous: Option<PathBuf>,
    /// Leaves the table's newest row out. Retention sets it: SQLite numbers a new row after the
    /// highest one left in the table, so removing the newest would let new rows take numbers
    /// already archived.
    pub leave_newest: bool,
    /// The most rows the bundle takes (it then ends early, and the next bundle continues).
    pub max_rows: Option<u64>,
    /// Where chains stand before the table's first row, beyond the retention seals (which
    /// are read from the store).
    pub heads: Vec<Head>,
}

/// A bundle written: its manifest and its file's SHA-256 (hex).
#[derive(Debug, Clone)]
pub struct Exported {
    pub manifest: Manifest,
    pub digest: String,
}

/// Rows read from the store at a time.
const PAGE: i64 = 1_000;

/// Writes the bundle of `range` to `out` (a new file; an existing one is not replaced) and
/// flushes it to disk. Fails without leaving a file if any row read does not verify.
pub async fn export(
    store: &dyn Store,
    keyring: &Keyring,
    range: &ExportRange,
    out: &Path,
) -> Result<Exported, EvidenceError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(|e| EvidenceError::io(out, e))?;
    let written = write_bundle(store, keyring, range, out, file).await;
    if written.is_err() {
        let _ = std::fs::remove_file(out);
    }
    written
}

async fn write_bundle(
    store: &dyn Store,
    keyring: &Keyring,
    range: &ExportRange,
    out: &Path,
    file: std::fs::File,
) -> Result<Exported, EvidenceError> {
    let mut walk = Walk::new(keyring, store.audit_chains().await?);
    let mut after_seq = 0;
    let mut previous = None;
    // Rows retention removed are not read again: each chain continues from its newest seal.
    for seal in store.audit_seals().await? {
        walk.heads.insert(
            seal.chain_id,
            Head {
                chain_id: seal.chain_id,
                seq: seal.seq,
                hash: seal.hash,
            },
        );
    }
    for head in &range.heads {
        walk.heads.insert(head.chain_id, head.clone());
    }
    if let Some(path) = &range.previous {
        let report = verify_bundle(path, Some(&hex::encode(keyring.evidence_public_key())))
            .map_err(|why| EvidenceError::Previous {
                path: path.display().to_string(),
                why,
            })?;
        if let Some(problem) = report.problems.first() {
            return Err(EvidenceError::Previous {
                path: path.display().to_string(),
                why: format!("does not verify: {problem}"),
            });
        }
        let manifest = report.manifest;
        after_seq = manifest.upto_seq;
        walk.heads = manifest
            .heads
            .iter()
            .map(|head| (head.chain_id, head.clone()))
            .collect();
        previous = Some(Previous {
            digest: report.digest,
            upto_seq: manifest.upto_seq,
        });
    }
    let newest = store
        .query_audit(&AuditFilter {
            limit: 1,
            newest_first: true,
            ..AuditFilter::default()
        })
        .await?
        .first()
        .map_or(0, |row| row.seq);

    let mut writer = HashingWriter::new(std::io::BufWriter::new(file), out);
    let mut upto_seq = after_seq;
    let mut started = previous.is_some() || range.from_ms.is_none();
    let mut rows = 0;
    'pages: while upto_seq < newest {
        let page = store.audit_page(upto_seq, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for row in page {
            if row.seq > newest
                || (range.leave_newest && row.seq == newest)
                || range.to_ms.is_some_and(|to| row.event.ts_ms >= to)
                || range.max_rows.is_some_and(|max| started && rows >= max)
            {
                break 'pages;
            }
            if !started && range.from_ms.is_some_and(|from| row.event.ts_ms >= from) {
                started = true;
                after_seq = upto_seq;
            }
            upto_seq = row.seq;
            let digest = walk.row(&row, started)?;
            if started {
                rows += 1;
                writer.line(&RowLine {
                    row,
                    digest: hex::encode(digest),
                })?;
            }
        }
    }
    if !started {
        after_seq = upto_seq;
    }

    let checkpoints = store
        .audit_checkpoints()
        .await?
        .into_iter()
        .filter(|c| walk.segments.contains_key(&c.chain_id))
        .collect();
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        created_ms: crate::now_ms(),
        after_seq,
        upto_seq,
        rows,
        registry: walk
            .segments
            .values()
            .filter(|s| s.first_seq == 1)
            .filter_map(|s| walk.registry.get(&s.chain_id).cloned())
            .collect(),
        chains: walk.segments.into_values().collect(),
        heads: walk.heads.into_values().collect(),
        checkpoints,
        previous,
        public_key: hex::encode(keyring.evidence_public_key()),
    };
    let signature = hex::encode(keyring.sign_evidence(&signed_bytes(&manifest)));
    let line = ManifestLine {
        manifest,
        signature,
    };
    writer.line(&line)?;
    let digest = writer.finish()?;
    Ok(Exported {
        manifest: line.manifest,
        digest,
    })
}

/// Each chain followed through the rows read: heads, the bundle's segments, digests.
struct Walk<'a> {
    keyring: &'a Keyring,
    registry: BTreeMap<i64, gatehouse_model::audit::ChainStart>,
    heads: BTreeMap<i64, Head>,
    segments: BTreeMap<i64, Segment>,
    digests: BTreeMap<i64, [u8; 32]>,
    scratch: Vec<u8>,
}

impl<'a> Walk<'a> {
    fn new(keyring: &'a Keyring, registry: Vec<gatehouse_model::audit::ChainStart>) -> Self {
        Walk {
            keyring,
            registry: registry.into_iter().map(|s| (s.chain_id, s)).collect(),
            heads: BTreeMap::new(),
            segments: BTreeMap::new(),
            digests: BTreeMap::new(),
            scratch: Vec::new(),
        }
    }

    /// Checks the row against its keyed hash and the row before it in its chain (the chain's
    /// registry entry for its first row) and moves the chain's head; in the bundle
    /// (`included`), also its segment and public digest.
    fn row(&mut self, row: &AuditRow, included: bool) -> Result<[u8; 32], EvidenceError> {
        let unverified = || EvidenceError::Unverified {
            chain_id: row.chain_id,
            seq: row.chain_seq,
        };
        let (expected_seq, expected_prev) = match self.heads.get(&row.chain_id) {
            Some(head) => (head.seq + 1, head.hash.clone()),
            None if row.chain_id == 0 => (1, GENESIS.to_owned()),
            None => (
                1,
                self.registry
                    .get(&row.chain_id)
                    .map(|s| s.hash.clone())
                    .ok_or_else(unverified)?,
            ),
        };
        let computed = link_version(
            self.keyring,
            row.hash_version,
            row.chain_id,
            &row.prev_hash,
            row.chain_seq,
            &row.event,
            &mut self.scratch,
        );
        // Every chain, chain 0 too, links from its first row without a gap (as `audit
        // verify` walks it).
        if computed.as_deref() != Some(row.hash.as_str())
            || row.chain_seq != expected_seq
            || row.prev_hash != expected_prev
        {
            return Err(unverified());
        }
        self.heads.insert(
            row.chain_id,
            Head {
                chain_id: row.chain_id,
                seq: row.chain_seq,
                hash: row.hash.clone(),
            },
        );
        if !included {
            return Ok([0; 32]);
        }
        let prev = *self
            .digests
            .entry(row.chain_id)
            .or_insert_with(|| start_digest(row.chain_id, row.chain_seq, &row.prev_hash));
        let digest = row_digest(&prev, row);
        self.digests.insert(row.chain_id, digest);
        let segment = self
            .segments
            .entry(row.chain_id)
            .or_insert_with(|| Segment {
                chain_id: row.chain_id,
                first_seq: row.chain_seq,
                last_seq: row.chain_seq,
                prev_hash: row.prev_hash.clone(),
                last_hash: String::new(),
                digest: String::new(),
            });
        segment.last_seq = row.chain_seq;
        segment.last_hash.clone_from(&row.hash);
        segment.digest = hex::encode(digest);
        Ok(digest)
    }
}

/// Writes JSON lines and hashes every byte written: the file's digest without reading it
/// back.
struct HashingWriter<'p> {
    inner: std::io::BufWriter<std::fs::File>,
    hasher: Sha256,
    path: &'p Path,
}

impl<'p> HashingWriter<'p> {
    fn new(inner: std::io::BufWriter<std::fs::File>, path: &'p Path) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            path,
        }
    }

    fn line(&mut self, value: &impl serde::Serialize) -> Result<(), EvidenceError> {
        let mut bytes = serde_json::to_vec(value)
            .map_err(|e| EvidenceError::io(self.path, std::io::Error::other(e)))?;
        bytes.push(b'\n');
        self.hasher.update(&bytes);
        self.inner
            .write_all(&bytes)
            .map_err(|e| EvidenceError::io(self.path, e))
    }

    /// Flushes and syncs the file (an archive is relied on before rows are removed).
    fn finish(self) -> Result<String, EvidenceError> {
        let path = self.path;
        let file = self
            .inner
            .into_inner()
            .map_err(|e| EvidenceError::io(path, e.into_error()))?;
        file.sync_all().map_err(|e| EvidenceError::io(path, e))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(dir) = std::fs::File::open(dir)
        {
            let _ = dir.sync_all();
        }
        Ok(hex::encode(self.hasher.finalize()))
    }
}
