//! Verifying the trail: every chain row by row, each against its checkpoint, and the
//! registry that lists the chains (`registry.rs` says what that proves).

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

use crate::{
    audit::{
        chain::{GENESIS, link_version},
        checkpoint::KeyedCheckpoint,
        registry::KeyedChainStart,
    },
    secrets::Keyring,
    store::{Store, StoreResult},
};
use gatehouse_model::audit::{AuditRow, AuditSeal, ChainStart, Checkpoint};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum ChainProblem {
    /// Rows between these sequence numbers are missing (deleted).
    Missing { after_seq: i64, next_seq: i64 },
    /// The row's content no longer matches its hash (edited).
    Modified { seq: i64 },
    /// A second row with the same sequence number (a row copied in).
    Duplicated { seq: i64 },
    /// The row does not link to the row before it (rows removed or re-ordered before it).
    BrokenLink { seq: i64 },
    /// The chain ends before a checkpoint: its newest rows were deleted.
    Truncated { last_seq: i64, checkpoint_seq: i64 },
    /// The row a checkpoint names has another hash (rows replaced).
    CheckpointMismatch { seq: i64 },
    /// The checkpoint's MAC does not match (edited, or not made with this master key).
    CheckpointForged { seq: i64 },
    /// Rows written with checkpoints exist, but the stored checkpoint is gone.
    CheckpointMissing,
    /// Rows follow the stored checkpoint: an older checkpoint was put back.
    CheckpointBehind { checkpoint_seq: i64, last_seq: i64 },
    /// Rows or a checkpoint of a chain the registry does not list: its entry was deleted.
    Unregistered,
    /// The chain's registry entry does not match its hash (edited, or not made with this
    /// master key).
    EntryForged,
    /// The chain's registry entry does not link to the entry before it (for the first entry,
    /// to the last row written before chains): an entry or those rows were deleted or replaced.
    EntryBrokenLink,
    /// The chains between these ids are missing: deleted with their registry entries.
    ChainsMissing { after_chain: i64, next_chain: i64 },
    /// The retention seal the chain starts from is not signed with this master key's
    /// evidence key (edited or forged).
    SealForged { seq: i64 },
}

impl std::fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainProblem::Missing {
                after_seq,
                next_seq,
            } => write!(
                f,
                "rows {} to {} are missing (deleted)",
                after_seq + 1,
                next_seq - 1
            ),
            ChainProblem::Modified { seq } => write!(f, "row {seq} was modified"),
            ChainProblem::Duplicated { seq } => write!(f, "row {seq} appears more than once"),
            ChainProblem::BrokenLink { seq } => {
                write!(f, "row {seq} does not link to the row before it")
            }
            ChainProblem::Truncated {
                last_seq,
                checkpoint_seq,
            } => write!(
                f,
                "rows {} to {checkpoint_seq} are missing (deleted from the end; a checkpoint \
                 names row {checkpoint_seq})",
                last_seq + 1
            ),
            ChainProblem::CheckpointMismatch { seq } => {
                write!(f, "row {seq} does not match the checkpoint that names it")
            }
            ChainProblem::CheckpointForged { seq } => write!(
                f,
                "the checkpoint at row {seq} is not signed with this master key (edited?)"
            ),
            ChainProblem::CheckpointMissing => write!(
                f,
                "the stored checkpoint is missing (deleted with the newest rows?)"
            ),
            ChainProblem::CheckpointBehind {
                checkpoint_seq,
                last_seq,
            } => write!(
                f,
                "the stored checkpoint names row {checkpoint_seq} but rows go on to \
                 {last_seq} (an older checkpoint was put back?)"
            ),
            ChainProblem::Unregistered => write!(
                f,
                "the chain is not in the chain registry (its entry was deleted)"
            ),
            ChainProblem::EntryForged => write!(
                f,
                "the chain's registry entry is not signed with this master key (edited?)"
            ),
            ChainProblem::EntryBrokenLink => write!(
                f,
                "the chain's registry entry does not link to the entry before it (a chain \
                 before it was deleted or replaced)"
            ),
            ChainProblem::ChainsMissing {
                after_chain,
                next_chain,
            } => write!(
                f,
                "chains {} to {} are missing (deleted with their registry entries)",
                after_chain + 1,
                next_chain - 1
            ),
            ChainProblem::SealForged { seq } => write!(
                f,
                "the retention seal at row {seq} is not signed with this master key's evidence key (edited?)"
            ),
        }
    }
}

/// A problem and the chain it was found in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    pub chain_id: i64,
    #[serde(flatten)]
    pub problem: ChainProblem,
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.chain_id == 0 {
            write!(f, "chain 0 (rows written before chains): {}", self.problem)
        } else {
            write!(f, "chain {}: {}", self.chain_id, self.problem)
        }
    }
}

/// One chain as verification found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainSummary {
    pub chain_id: i64,
    /// From the chain's registry entry (none for chain 0 or an unregistered chain).
    pub writer: Option<String>,
    pub started_ms: Option<i64>,
    pub rows_checked: u64,
    /// The last row's sequence number in the chain.
    pub last_seq: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub rows_checked: u64,
    pub chains: Vec<ChainSummary>,
    pub problems: Vec<Found>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problems found in one chain, in the order found.
    pub fn problems_in(&self, chain_id: i64) -> Vec<ChainProblem> {
        self.problems
            .iter()
            .filter(|found| found.chain_id == chain_id)
            .map(|found| found.problem.clone())
            .collect()
    }
}

/// Walks every chain in pages and checks each against its stored checkpoint, and the chain
/// registry; reports every problem found, not just the first.
pub async fn verify(store: &dyn Store, keyring: &Keyring) -> StoreResult<VerifyReport> {
    verify_with(store, keyring, &[]).await
}

/// [`verify`], also checking checkpoints exported earlier and kept elsewhere: each chain must
/// still hold the row its checkpoint names, unchanged, so a chain deleted whole since is found
/// even when it was the newest.
pub async fn verify_with(
    store: &dyn Store,
    keyring: &Keyring,
    exported: &[Checkpoint],
) -> StoreResult<VerifyReport> {
    // Retention may remove rows while the walk runs (it started from the seals read before):
    // a walk during which the seals moved is done again from the new ones.
    let mut attempts = 0;
    loop {
        let seals = store.audit_seals().await?;
        let report = verify_once(store, keyring, exported).await?;
        attempts += 1;
        if report.is_intact() || attempts == 3 || store.audit_seals().await? == seals {
            return Ok(report);
        }
    }
}

async fn verify_once(
    store: &dyn Store,
    keyring: &Keyring,
    exported: &[Checkpoint],
) -> StoreResult<VerifyReport> {
    let mut report = VerifyReport::default();
    for checkpoint in exported {
        if !checkpoint.is_authentic(keyring) {
            report.problems.push(Found {
                chain_id: checkpoint.chain_id,
                problem: ChainProblem::CheckpointForged {
                    seq: checkpoint.seq,
                },
            });
        }
    }
    // Checkpoints are listed before the registry is read, and a chain first met in the rows
    // sends the walk back to the registry: a chain opened meanwhile is then in it too (its
    // entry and first rows commit together).
    let checkpointed: BTreeSet<i64> = store
        .audit_checkpoints()
        .await?
        .iter()
        .map(|c| c.chain_id)
        .collect();
    let mut registry = read_registry(store).await?;
    let seals = newest_seals(store).await?;
    let seals = &seals;
    let mut walks: BTreeMap<i64, Walk<'_>> = BTreeMap::new();
    let known = checkpointed
        .iter()
        .chain(registry.keys())
        .chain(exported.iter().map(|c| &c.chain_id));
    for &chain_id in known {
        walks.entry(chain_id).or_insert_with(|| {
            Walk::new(keyring, chain_id, registry.get(&chain_id), exported, seals)
        });
    }

    // One pass over the table in `seq` order feeds every chain. A chain's rows lie in that
    // order, numbered 1, 2, 3…; a chain whose rows do not is walked again on its own, in
    // `chain_seq` order, so what is reported does not depend on where tampered rows sit.
    let mut after_seq = 0;
    let mut stored = table_pass(
        store,
        keyring,
        exported,
        seals,
        &mut after_seq,
        &mut walks,
        &mut registry,
    )
    .await?;
    for (&chain_id, walk) in &mut walks {
        if walk.out_of_order {
            *walk = Walk::new(keyring, chain_id, registry.get(&chain_id), exported, seals);
            walk.run(store).await?;
        } else {
            walk.finish(stored.remove(&chain_id).as_ref());
        }
    }

    let mut before_chains = GENESIS.to_owned();
    for (chain_id, walk) in walks {
        let start = registry.get(&chain_id);
        let found_in_store = walk.rows_checked > 0 || checkpointed.contains(&chain_id);
        if chain_id != 0 && start.is_none() && found_in_store {
            report.problems.push(Found {
                chain_id,
                problem: ChainProblem::Unregistered,
            });
        }
        if chain_id == 0 {
            before_chains = walk.prev_hash.clone();
        }
        report.rows_checked += walk.rows_checked;
        report.chains.push(ChainSummary {
            chain_id,
            writer: start.map(|s| s.writer.clone()),
            started_ms: start.map(|s| s.started_ms),
            rows_checked: walk.rows_checked,
            last_seq: (walk.prev_seq > 0).then_some(walk.prev_seq),
        });
        report.problems.extend(
            walk.problems
                .into_iter()
                .map(|problem| Found { chain_id, problem }),
        );
    }
    check_registry(
        keyring,
        registry.values(),
        before_chains,
        &mut report.problems,
    );
    report.problems.sort_by_key(|found| found.chain_id);
    Ok(report)
}

/// Each chain's newest retention seal: where its live rows start.
async fn newest_seals(store: &dyn Store) -> StoreResult<BTreeMap<i64, AuditSeal>> {
    Ok(store
        .audit_seals()
        .await?
        .into_iter()
        .map(|seal| (seal.chain_id, seal))
        .collect())
}

async fn read_registry(store: &dyn Store) -> StoreResult<BTreeMap<i64, ChainStart>> {
    Ok(store
        .audit_chains()
        .await?
        .into_iter()
        .map(|start| (start.chain_id, start))
        .collect())
}

/// Walks the rows after `after_seq` in table order, each into its chain's walk, until the
/// stored checkpoints are all reached (one ahead may be rows appended during the walk);
/// returns those checkpoints by chain.
async fn table_pass<'a>(
    store: &dyn Store,
    keyring: &'a Keyring,
    exported: &'a [Checkpoint],
    seals: &'a BTreeMap<i64, AuditSeal>,
    after_seq: &mut i64,
    walks: &mut BTreeMap<i64, Walk<'a>>,
    registry: &mut BTreeMap<i64, ChainStart>,
) -> StoreResult<BTreeMap<i64, Checkpoint>> {
    loop {
        let mut any = false;
        loop {
            let page = store.audit_page(*after_seq, 1_000).await?;
            let Some(last) = page.last() else { break };
            *after_seq = last.seq;
            any = true;
            for row in page {
                if !walks.contains_key(&row.chain_id) {
                    *registry = read_registry(store).await?;
                }
                walks
                    .entry(row.chain_id)
                    .or_insert_with(|| {
                        Walk::new(
                            keyring,
                            row.chain_id,
                            registry.get(&row.chain_id),
                            exported,
                            seals,
                        )
                    })
                    .in_table_order(row);
            }
        }
        // Read after the rows: every row walked was committed with a checkpoint at or after
        // it, so a checkpoint behind the last row was put back.
        let stored: BTreeMap<i64, Checkpoint> = store
            .audit_checkpoints()
            .await?
            .into_iter()
            .map(|c| (c.chain_id, c))
            .collect();
        let behind = stored.iter().any(|(chain_id, checkpoint)| {
            walks
                .get(chain_id)
                .is_some_and(|walk| !walk.out_of_order && checkpoint.seq > walk.prev_seq)
        });
        if !(behind && any) {
            return Ok(stored);
        }
    }
}

/// Each entry signed, linking to the one before it, the ids without gaps.
fn check_registry<'a>(
    keyring: &Keyring,
    registry: impl Iterator<Item = &'a ChainStart>,
    before_chains: String,
    problems: &mut Vec<Found>,
) {
    let mut prev = before_chains;
    let mut prev_id = 0;
    for start in registry {
        let chain_id = start.chain_id;
        let mut found = |problem| problems.push(Found { chain_id, problem });
        if !start.is_authentic(keyring) {
            found(ChainProblem::EntryForged);
        }
        if chain_id != prev_id + 1 {
            found(ChainProblem::ChainsMissing {
                after_chain: prev_id,
                next_chain: chain_id,
            });
        }
        if start.prev != prev {
            found(ChainProblem::EntryBrokenLink);
        }
        prev.clone_from(&start.hash);
        prev_id = chain_id;
    }
}

/// One chain's walk.
struct Walk<'a> {
    keyring: &'a Keyring,
    chain_id: i64,
    anchors: Vec<&'a Checkpoint>,
    problems: Vec<ChainProblem>,
    rows_checked: u64,
    prev_hash: String,
    prev_seq: i64,
    scratch: Vec<u8>,
    /// Whether the chain must have a stored checkpoint: a registered chain always has one
    /// (written with its first rows), chain 0 once rows of version 2 or later were written.
    checkpointed: bool,
    /// Met a row out of its place in table order: the chain is walked again in chain order.
    out_of_order: bool,
}

impl<'a> Walk<'a> {
    fn new(
        keyring: &'a Keyring,
        chain_id: i64,
        start: Option<&ChainStart>,
        exported: &'a [Checkpoint],
        seals: &BTreeMap<i64, AuditSeal>,
    ) -> Self {
        // Retention removed the rows up to the seal: the chain goes on from it.
        let seal = seals.get(&chain_id);
        let mut problems = Vec::new();
        if let Some(seal) = seal
            && !crate::audit::retention::seal_is_authentic(seal, keyring)
        {
            problems.push(ChainProblem::SealForged { seq: seal.seq });
        }
        Walk {
            keyring,
            chain_id,
            anchors: exported.iter().filter(|c| c.chain_id == chain_id).collect(),
            problems,
            rows_checked: 0,
            prev_hash: match seal {
                Some(seal) => seal.hash.clone(),
                None => start.map_or_else(|| GENESIS.to_owned(), |s| s.hash.clone()),
            },
            prev_seq: seal.map_or(0, |seal| seal.seq),
            scratch: Vec::new(),
            checkpointed: start.is_some(),
            out_of_order: false,
        }
    }

    /// A row met walking the whole table; the walk stops at the first one out of place.
    fn in_table_order(&mut self, row: AuditRow) {
        if self.out_of_order {
            return;
        }
        if row.chain_seq != self.prev_seq + 1 {
            self.out_of_order = true;
            return;
        }
        self.row(row);
    }

    async fn run(&mut self, store: &dyn Store) -> StoreResult<()> {
        self.rows(store).await?;
        // Read after the walk: every row walked was committed with a checkpoint at or after
        // it, so a checkpoint behind the last row was put back. One ahead may be rows
        // appended during the walk: walk on before calling them deleted.
        let mut stored = store.audit_checkpoint(self.chain_id).await?;
        while let Some(checkpoint) = &stored
            && checkpoint.seq > self.prev_seq
        {
            if !self.rows(store).await? {
                break;
            }
            stored = store.audit_checkpoint(self.chain_id).await?;
        }
        self.finish(stored.as_ref());
        Ok(())
    }

    /// Checks the rows after the last one checked; whether there were any.
    async fn rows(&mut self, store: &dyn Store) -> StoreResult<bool> {
        let mut any = false;
        loop {
            let page: Vec<AuditRow> = store
                .audit_chain_page(self.chain_id, self.prev_seq, 1_000)
                .await?;
            if page.is_empty() {
                return Ok(any);
            }
            any = true;
            for row in page {
                self.row(row);
            }
        }
    }

    fn row(&mut self, row: AuditRow) {
        let seq = row.chain_seq;
        let problems = &mut self.problems;
        if seq == self.prev_seq && seq > 0 {
            // The walk goes on from the first of the two: the chain is the same either way
            // when the copy is exact, and an edited copy is reported as modified too.
            problems.push(ChainProblem::Duplicated { seq });
            let computed = link_version(
                self.keyring,
                row.hash_version,
                row.chain_id,
                &row.prev_hash,
                seq,
                &row.event,
                &mut self.scratch,
            );
            if computed.as_deref() != Some(row.hash.as_str()) {
                problems.push(ChainProblem::Modified { seq });
            }
            self.rows_checked += 1;
            return;
        }
        if seq != self.prev_seq + 1 {
            problems.push(ChainProblem::Missing {
                after_seq: self.prev_seq,
                next_seq: seq,
            });
        }
        if row.prev_hash != self.prev_hash {
            problems.push(ChainProblem::BrokenLink { seq });
        }
        let computed = link_version(
            self.keyring,
            row.hash_version,
            row.chain_id,
            &row.prev_hash,
            seq,
            &row.event,
            &mut self.scratch,
        );
        if computed.as_deref() != Some(row.hash.as_str()) {
            problems.push(ChainProblem::Modified { seq });
        }
        for anchor in &self.anchors {
            if anchor.seq == seq && anchor.hash != row.hash {
                problems.push(ChainProblem::CheckpointMismatch { seq });
            }
        }
        self.checkpointed |= row.hash_version >= 2;
        self.rows_checked += 1;
        self.prev_seq = seq;
        self.prev_hash = row.hash;
    }

    fn finish(&mut self, stored: Option<&Checkpoint>) {
        let last_seq = self.prev_seq;
        let problems = &mut self.problems;
        for anchor in stored.iter().copied().chain(self.anchors.iter().copied()) {
            if anchor.seq > last_seq {
                problems.push(ChainProblem::Truncated {
                    last_seq,
                    checkpoint_seq: anchor.seq,
                });
            }
        }
        match stored {
            None if self.checkpointed => problems.push(ChainProblem::CheckpointMissing),
            None => {}
            Some(checkpoint) => {
                if !checkpoint.is_authentic(self.keyring) {
                    problems.push(ChainProblem::CheckpointForged {
                        seq: checkpoint.seq,
                    });
                }
                if checkpoint.seq < last_seq {
                    problems.push(ChainProblem::CheckpointBehind {
                        checkpoint_seq: checkpoint.seq,
                        last_seq,
                    });
                } else if checkpoint.seq == last_seq && checkpoint.hash != self.prev_hash {
                    problems.push(ChainProblem::CheckpointMismatch { seq: last_seq });
                }
            }
        }
    }
}
