//! Checking a bundle offline: no database, no master key, only the file (and, to be sure
//! whose it is, the evidence public key pinned out of band).

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader},
    path::Path,
};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::{
    FORMAT, Manifest, ManifestLine, RowLine, Segment, VERSION, row_digest, signature_verifies,
    signed_bytes, start_digest,
};

/// What is wrong with a bundle, or between a bundle and the one before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum BundleProblem {
    Unreadable {
        line: u64,
        why: String,
    },
    NoManifest,
    UnknownFormat {
        format: String,
        version: u32,
    },
    BadSignature,
    KeyNotPinned {
        found: String,
        pinned: String,
    },
    Altered {
        chain_id: i64,
        seq: i64,
    },
    BrokenLink {
        chain_id: i64,
        seq: i64,
    },
    Duplicated {
        chain_id: i64,
        seq: i64,
    },
    OutOfOrder {
        chain_id: i64,
        seq: i64,
    },
    Missing {
        chain_id: i64,
        from: i64,
        to: i64,
    },
    MissingAtEnd {
        chain_id: i64,
        from: i64,
        to: i64,
    },
    OutsideManifest {
        chain_id: i64,
        seq: i64,
    },
    DigestMismatch {
        chain_id: i64,
    },
    RowCount {
        found: u64,
        signed: u64,
    },
    TooLarge {
        chain_id: i64,
    },
    NoRegistryEntry {
        chain_id: i64,
    },
    NoPrevious,
    NotFollowing {
        names: String,
        previous: String,
    },
    RangeGap {
        previous_upto: i64,
        after: i64,
    },
    ChainGap {
        chain_id: i64,
        head_seq: i64,
        first_seq: i64,
    },
    ChainRelinked {
        chain_id: i64,
        seq: i64,
    },
}

impl std::fmt::Display for BundleProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use BundleProblem as P;
        match self {
            P::Unreadable { line, why } => write!(f, "line {line} is not a bundle row: {why}"),
            P::NoManifest => write!(
                f,
                "the bundle has no signed manifest as its last line (cut short?)"
            ),
            P::UnknownFormat { format, version } => {
                write!(f, "unknown bundle format {format:?} version {version}")
            }
            P::BadSignature => write!(
                f,
                "the manifest's signature does not verify with the public key it names (the manifest or the key was altered)"
            ),
            P::KeyNotPinned { found, pinned } => write!(
                f,
                "the bundle is signed with public key {found}, not the pinned key {pinned}"
            ),
            P::Altered { chain_id, seq } => write!(
                f,
                "chain {chain_id}: row {seq} was altered (it does not match its signed digest)"
            ),
            P::BrokenLink { chain_id, seq } => write!(
                f,
                "chain {chain_id}: row {seq} does not link to the row before it"
            ),
            P::Duplicated { chain_id, seq } => {
                write!(f, "chain {chain_id}: row {seq} appears more than once")
            }
            P::OutOfOrder { chain_id, seq } => write!(
                f,
                "chain {chain_id}: row {seq} is out of order (it comes after a later row)"
            ),
            P::Missing { chain_id, from, to } => write!(
                f,
                "chain {chain_id}: rows {from} to {to} are missing (deleted)"
            ),
            P::MissingAtEnd { chain_id, from, to } => write!(
                f,
                "chain {chain_id}: rows {from} to {to} are missing from the end (the manifest names row {to})"
            ),
            P::OutsideManifest { chain_id, seq } => write!(
                f,
                "chain {chain_id}: row {seq} is not among the rows the manifest lists"
            ),
            P::DigestMismatch { chain_id } => write!(
                f,
                "chain {chain_id}: the rows do not match the manifest's signed digest"
            ),
            P::RowCount { found, signed } => write!(
                f,
                "the bundle holds {found} rows but its manifest lists {signed}"
            ),
            P::TooLarge { chain_id } => write!(
                f,
                "chain {chain_id}: the manifest lists more rows than a bundle can hold"
            ),
            P::NoRegistryEntry { chain_id } => write!(
                f,
                "chain {chain_id}: starts in this bundle but does not link to its registry entry"
            ),
            P::NoPrevious => write!(f, "the bundle does not name a previous bundle"),
            P::NotFollowing { names, previous } => write!(
                f,
                "the bundle does not follow the previous one: it names a bundle with digest {names}, the previous bundle's is {previous} (a bundle between them missing?)"
            ),
            P::RangeGap {
                previous_upto,
                after,
            } => write!(
                f,
                "rows after table position {previous_upto} up to {after} are in neither bundle"
            ),
            P::ChainGap {
                chain_id,
                head_seq,
                first_seq,
            } => write!(
                f,
                "chain {chain_id}: the previous bundle ends at row {head_seq}, this one starts at row {first_seq}"
            ),
            P::ChainRelinked { chain_id, seq } => write!(
                f,
                "chain {chain_id}: row {seq} does not link to the previous bundle's last row"
            ),
        }
    }
}

/// A bundle as verification found it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BundleReport {
    /// The manifest as read (empty when there is none).
    pub manifest: Manifest,
    /// SHA-256 (hex) of the file: what the next bundle and a retention seal name it by.
    pub digest: String,
    pub rows_checked: u64,
    pub problems: Vec<BundleProblem>,
}

impl BundleReport {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A chain's span past which a bundle is refused rather than tracked (a bit per row).
const MAX_SPAN: i64 = 1 << 31;

/// Checks one bundle (any file: a forged one is reported, never trusted); `pinned` is the evidence public key (hex) it must be signed with.
/// `Err` only when the file cannot be read.
pub fn verify_bundle(path: &Path, pinned: Option<&str>) -> Result<BundleReport, String> {
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    // First pass: the file's digest and its last line, the manifest.
    let mut reader = BufReader::new(std::fs::File::open(path).map_err(io)?);
    let mut hasher = Sha256::new();
    let mut line = Vec::new();
    let mut last: Option<(u64, Vec<u8>)> = None;
    let mut number = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(io)? == 0 {
            break;
        }
        hasher.update(&line);
        number += 1;
        if !line.trim_ascii().is_empty() {
            last = Some((number, line.clone()));
        }
    }
    let mut report = BundleReport {
        digest: hex::encode(hasher.finalize()),
        ..BundleReport::default()
    };
    let manifest_line = last
        .as_ref()
        .and_then(|(_, bytes)| serde_json::from_slice::<ManifestLine>(bytes).ok());
    let manifest_at = match (&manifest_line, &last) {
        (Some(_), Some((at, _))) => *at,
        _ => {
            report.problems.push(BundleProblem::NoManifest);
            u64::MAX
        }
    };
    if let Some(signed) = &manifest_line {
        check_manifest(signed, pinned, &mut report.problems);
        report.manifest = signed.manifest.clone();
    }

    // Second pass: the rows, against the manifest's segments.
    let mut chains: BTreeMap<i64, ChainCheck> = BTreeMap::new();
    for segment in &report.manifest.chains {
        match ChainCheck::new(segment) {
            Some(check) => {
                chains.insert(segment.chain_id, check);
            }
            None => report.problems.push(BundleProblem::TooLarge {
                chain_id: segment.chain_id,
            }),
        }
    }
    let mut reader = BufReader::new(std::fs::File::open(path).map_err(io)?);
    let mut number = 0;
    let mut unlisted = std::collections::BTreeSet::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(io)? == 0 {
            break;
        }
        number += 1;
        if number == manifest_at || line.trim_ascii().is_empty() {
            continue;
        }
        let parsed = match serde_json::from_slice::<RowLine>(&line) {
            Ok(parsed) => parsed,
            Err(e) => {
                report.problems.push(BundleProblem::Unreadable {
                    line: number,
                    why: e.to_string(),
                });
                continue;
            }
        };
        report.rows_checked += 1;
        let chain_id = parsed.row.chain_id;
        match chains.get_mut(&chain_id) {
            Some(check) => check.row(parsed, &mut report.problems),
            None => {
                if unlisted.insert(chain_id) {
                    report.problems.push(BundleProblem::OutsideManifest {
                        chain_id,
                        seq: parsed.row.chain_seq,
                    });
                }
            }
        }
    }
    for check in chains.into_values() {
        check.finish(&mut report.problems);
    }
    if manifest_line.is_some() && report.rows_checked != report.manifest.rows {
        report.problems.push(BundleProblem::RowCount {
            found: report.rows_checked,
            signed: report.manifest.rows,
        });
    }
    for segment in report.manifest.chains.iter().filter(|s| s.first_seq == 1) {
        let linked = report
            .manifest
            .registry
            .iter()
            .any(|entry| entry.chain_id == segment.chain_id && entry.hash == segment.prev_hash);
        if segment.chain_id != 0 && !linked {
            report.problems.push(BundleProblem::NoRegistryEntry {
                chain_id: segment.chain_id,
            });
        }
    }
    Ok(report)
}

/// Checks bundles in order, each on its own and each as the continuation of the one before.
pub fn verify_sequence(
    paths: &[impl AsRef<Path>],
    pinned: Option<&str>,
) -> Result<Vec<BundleReport>, String> {
    let mut reports: Vec<BundleReport> = Vec::with_capacity(paths.len());
    for path in paths {
        let mut report = verify_bundle(path.as_ref(), pinned)?;
        if let Some(before) = reports.last() {
            let mut problems = continuity(before, &report);
            report.problems.append(&mut problems);
        }
        reports.push(report);
    }
    Ok(reports)
}

/// Whether `next` continues `before`: it names it, starts where it ended, and each chain
/// goes on from its head there.
fn continuity(before: &BundleReport, next: &BundleReport) -> Vec<BundleProblem> {
    let mut problems = Vec::new();
    let Some(previous) = &next.manifest.previous else {
        problems.push(BundleProblem::NoPrevious);
        return problems;
    };
    if previous.digest != before.digest {
        problems.push(BundleProblem::NotFollowing {
            names: previous.digest.clone(),
            previous: before.digest.clone(),
        });
    }
    if next.manifest.after_seq != before.manifest.upto_seq {
        problems.push(BundleProblem::RangeGap {
            previous_upto: before.manifest.upto_seq,
            after: next.manifest.after_seq,
        });
    }
    for segment in &next.manifest.chains {
        let head = before
            .manifest
            .heads
            .iter()
            .find(|head| head.chain_id == segment.chain_id);
        let (head_seq, head_hash) = head.map_or((0, None), |h| (h.seq, Some(&h.hash)));
        if segment.first_seq != head_seq.saturating_add(1) {
            problems.push(BundleProblem::ChainGap {
                chain_id: segment.chain_id,
                head_seq,
                first_seq: segment.first_seq,
            });
        } else if head_hash.is_some_and(|hash| *hash != segment.prev_hash) {
            problems.push(BundleProblem::ChainRelinked {
                chain_id: segment.chain_id,
                seq: segment.first_seq,
            });
        }
    }
    problems
}

fn check_manifest(signed: &ManifestLine, pinned: Option<&str>, problems: &mut Vec<BundleProblem>) {
    let manifest = &signed.manifest;
    if manifest.format != FORMAT || manifest.version != VERSION {
        problems.push(BundleProblem::UnknownFormat {
            format: manifest.format.clone(),
            version: manifest.version,
        });
    }
    if let Some(pinned) = pinned
        && !pinned.eq_ignore_ascii_case(&manifest.public_key)
    {
        problems.push(BundleProblem::KeyNotPinned {
            found: manifest.public_key.clone(),
            pinned: pinned.to_owned(),
        });
    }
    if !signature_verifies(
        &manifest.public_key,
        &signed_bytes(manifest),
        &signed.signature,
    ) {
        problems.push(BundleProblem::BadSignature);
    }
}

/// One chain's rows against its segment: a bit per row seen, the digest and link chain
/// while the rows come in order.
struct ChainCheck {
    segment: Segment,
    seen: Vec<u64>,
    next_seq: i64,
    prev_hash: String,
    prev_digest: [u8; 32],
    in_order: bool,
}

impl ChainCheck {
    fn new(segment: &Segment) -> Option<Self> {
        // Checked: the manifest may be forged, its numbers anything.
        let span = segment
            .last_seq
            .checked_sub(segment.first_seq)?
            .checked_add(1)?;
        if segment.first_seq < 1 || !(1..=MAX_SPAN).contains(&span) {
            return None;
        }
        Some(ChainCheck {
            seen: vec![0; usize::try_from(span).ok()?.div_ceil(64)],
            next_seq: segment.first_seq,
            prev_hash: segment.prev_hash.clone(),
            prev_digest: start_digest(segment.chain_id, segment.first_seq, &segment.prev_hash),
            in_order: true,
            segment: segment.clone(),
        })
    }

    fn row(&mut self, line: RowLine, problems: &mut Vec<BundleProblem>) {
        let chain_id = self.segment.chain_id;
        let seq = line.row.chain_seq;
        if seq < self.segment.first_seq || seq > self.segment.last_seq {
            problems.push(BundleProblem::OutsideManifest { chain_id, seq });
            return;
        }
        let index = (seq - self.segment.first_seq) as usize;
        let (word, bit) = (index / 64, 1u64 << (index % 64));
        if self.seen[word] & bit != 0 {
            problems.push(BundleProblem::Duplicated { chain_id, seq });
            return;
        }
        self.seen[word] |= bit;
        if seq < self.next_seq {
            problems.push(BundleProblem::OutOfOrder { chain_id, seq });
            self.in_order = false;
            return;
        }
        let stored: Option<[u8; 32]> = hex::decode(&line.digest)
            .ok()
            .and_then(|bytes| bytes.try_into().ok());
        if seq == self.next_seq {
            if line.row.prev_hash != self.prev_hash {
                problems.push(BundleProblem::BrokenLink { chain_id, seq });
            }
            if stored != Some(row_digest(&self.prev_digest, &line.row)) {
                problems.push(BundleProblem::Altered { chain_id, seq });
            }
        }
        // After a gap (reported at the end) the chain goes on from this row; an altered row's
        // stored digest is taken as given so only that row is reported, and the last one must
        // still match the manifest.
        self.next_seq = seq.saturating_add(1);
        self.prev_hash = line.row.hash;
        self.prev_digest = stored.unwrap_or([0; 32]);
    }

    fn finish(self, problems: &mut Vec<BundleProblem>) {
        let chain_id = self.segment.chain_id;
        let first = self.segment.first_seq;
        let span = self.segment.last_seq - first + 1;
        let mut gap: Option<i64> = None;
        let mut complete = true;
        for index in 0..=span {
            let seen = index < span && {
                let i = index as usize;
                self.seen[i / 64] & (1u64 << (i % 64)) != 0
            };
            match (seen, gap) {
                (false, None) if index < span => gap = Some(index),
                (true, Some(start)) => {
                    complete = false;
                    problems.push(BundleProblem::Missing {
                        chain_id,
                        from: first + start,
                        to: first + index - 1,
                    });
                    gap = None;
                }
                (false, Some(start)) if index == span => {
                    complete = false;
                    problems.push(BundleProblem::MissingAtEnd {
                        chain_id,
                        from: first + start,
                        to: first + span - 1,
                    });
                }
                _ => {}
            }
        }
        let matches = hex::encode(self.prev_digest) == self.segment.digest
            && self.prev_hash == self.segment.last_hash;
        if complete && self.in_order && !matches {
            problems.push(BundleProblem::DigestMismatch { chain_id });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::evidence::{Manifest, ManifestLine, Segment};

    /// A manifest with numbers at the ends of their range is reported, not a panic.
    #[test]
    fn a_manifest_with_extreme_numbers_is_refused_without_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("forged.bundle");
        let segment = |first_seq, last_seq| Segment {
            chain_id: 1,
            first_seq,
            last_seq,
            prev_hash: String::new(),
            last_hash: String::new(),
            digest: String::new(),
        };
        let line = ManifestLine {
            manifest: Manifest {
                chains: vec![segment(i64::MIN, i64::MAX), segment(i64::MAX, i64::MAX)],
                upto_seq: i64::MAX,
                ..Manifest::default()
            },
            signature: "00".into(),
        };
        let row = r#"{"row":{"seq":1,"chain_id":1,"chain_seq":9223372036854775807,"ts_ms":0,"request_id":"x","client":null,"credential_id":null,"user":null,"ip":null,"country":null,"server":null,"http_method":"POST","rpc_method":null,"tool":null,"decision":"allow","reason":null,"status":200,"upstream_status":null,"latency_us":0,"prev_hash":"","hash":""},"digest":"zz"}"#;
        std::fs::write(
            &path,
            format!("{row}\n{}\n", serde_json::to_string(&line).unwrap()),
        )
        .unwrap();
        let report = verify_bundle(&path, None).unwrap();
        assert!(report.problems.contains(&BundleProblem::BadSignature));
        assert!(
            report
                .problems
                .contains(&BundleProblem::TooLarge { chain_id: 1 }),
            "{:?}",
            report.problems
        );
    }
}
