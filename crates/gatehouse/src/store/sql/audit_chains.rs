//! The chain-level reads of the audit trail (heads, checkpoints, the chain registry) that
//! writers and verification need. Appending is each backend's own (`append_audit`).

use super::backend::{SqlConn, query};
use super::{Columns, all, audit_from};
use crate::store::StoreResult;
use gatehouse_model::audit::{AuditRow, ChainStart, Checkpoint};

// No index on the chain (migration 0010): a chain's rows lie in table order, so its head is
// found reading back from the newest row (a writer asks only after a failed append, when its
// rows are among the newest). A page in chain order scans the table; verification asks for
// one only for a chain whose rows are out of table order (tampered).
pub(crate) const CHAIN_HEAD: &str =
    "SELECT chain_seq, hash FROM audit_events WHERE chain_id = $1 ORDER BY seq DESC LIMIT 1";
const CHAIN_PAGE: &str = "SELECT * FROM audit_events WHERE chain_id = $1 AND chain_seq > $2 \
    ORDER BY chain_seq LIMIT $3";
const CHAIN_IDS: &str = "SELECT DISTINCT chain_id FROM audit_events ORDER BY chain_id";

pub(super) async fn chain_head<C: SqlConn + ?Sized>(
    conn: &mut C,
    chain_id: i64,
) -> StoreResult<Option<(i64, String)>> {
    let row = query(CHAIN_HEAD)
        .bind(chain_id)
        .fetch_optional(conn)
        .await?;
    row.map(|r| Ok((r.int("chain_seq")?, r.text("hash")?)))
        .transpose()
}

pub(super) async fn chain_page<C: SqlConn + ?Sized>(
    conn: &mut C,
    chain_id: i64,
    after_chain_seq: i64,
    limit: i64,
) -> StoreResult<Vec<AuditRow>> {
    let rows = query(CHAIN_PAGE)
        .bind(chain_id)
        .bind(after_chain_seq)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    all(&rows, audit_from)
}

pub(super) async fn chain_ids<C: SqlConn + ?Sized>(conn: &mut C) -> StoreResult<Vec<i64>> {
    let rows = query(CHAIN_IDS).fetch_all(conn).await?;
    rows.iter().map(|r| Ok(r.int("chain_id")?)).collect()
}

pub(super) async fn checkpoint<C: SqlConn + ?Sized>(
    conn: &mut C,
    chain_id: i64,
) -> StoreResult<Option<Checkpoint>> {
    let row = query("SELECT * FROM audit_chain_checkpoints WHERE chain_id = $1")
        .bind(chain_id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(checkpoint_from).transpose()
}

pub(super) async fn checkpoints<C: SqlConn + ?Sized>(conn: &mut C) -> StoreResult<Vec<Checkpoint>> {
    let rows = query("SELECT * FROM audit_chain_checkpoints ORDER BY chain_id")
        .fetch_all(conn)
        .await?;
    all(&rows, checkpoint_from)
}

pub(super) async fn chains<C: SqlConn + ?Sized>(conn: &mut C) -> StoreResult<Vec<ChainStart>> {
    let rows = query("SELECT * FROM audit_chains ORDER BY chain_id")
        .fetch_all(conn)
        .await?;
    all(&rows, chain_start_from)
}

fn chain_start_from(r: &impl Columns) -> StoreResult<ChainStart> {
    Ok(ChainStart {
        chain_id: r.int("chain_id")?,
        prev: r.text("prev")?,
        started_ms: r.int("started_ms")?,
        writer: r.text("writer")?,
        hash: r.text("hash")?,
    })
}

fn checkpoint_from(r: &impl Columns) -> StoreResult<Checkpoint> {
    Ok(Checkpoint {
        chain_id: r.int("chain_id")?,
        seq: r.int("seq")?,
        hash: r.text("hash")?,
        ts_ms: r.int("ts_ms")?,
        mac: r.text("mac")?,
    })
}
