//! Retention's writes: the seals of archived rows, their removal, and the lease that lets one
//! replica at a time run it.

use super::backend::{SqlBackend, SqlConn, query};
use super::{Columns, OrConflict, all};
use crate::store::StoreResult;
use gatehouse_model::audit::AuditSeal;

pub(super) async fn seals<C: SqlConn + ?Sized>(conn: &mut C) -> StoreResult<Vec<AuditSeal>> {
    let rows = query("SELECT * FROM audit_seals ORDER BY chain_id, seq")
        .fetch_all(conn)
        .await?;
    all(&rows, seal_from)
}

/// Adds the seals and removes the rows they cover (`seq <= upto_seq`) in one transaction: both
/// or neither. A seal already there (another run sealed the same rows) refuses the whole.
pub(super) async fn remove_archived<B: SqlBackend>(
    backend: &B,
    seals: &[AuditSeal],
    upto_seq: i64,
) -> StoreResult<u64> {
    let mut tx = backend.begin_write().await?;
    for seal in seals {
        query(
            "INSERT INTO audit_seals (chain_id, seq, hash, upto_seq, bundle, bundle_digest, \
             sealed_ms, signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seal.chain_id)
        .bind(seal.seq)
        .bind(&seal.hash)
        .bind(seal.upto_seq)
        .bind(&seal.bundle)
        .bind(&seal.bundle_digest)
        .bind(seal.sealed_ms)
        .bind(&seal.signature)
        .execute(&mut *tx)
        .await
        .or_conflict("audit seal", &format!("{}:{}", seal.chain_id, seal.seq))?;
    }
    let removed = query("DELETE FROM audit_events WHERE seq <= $1")
        .bind(upto_seq)
        .execute(&mut *tx)
        .await?;
    B::commit(tx).await?;
    Ok(removed)
}

/// Takes (or renews) the retention lease until `until_ms` when it is free, expired or already
/// `holder`'s; whether it is now `holder`'s. `until_ms` 0 gives it back.
pub(super) async fn lease<C: SqlConn + ?Sized>(
    conn: &mut C,
    holder: &str,
    now_ms: i64,
    until_ms: i64,
) -> StoreResult<bool> {
    let taken = query(
        "UPDATE audit_retention_lease SET holder = $1, until_ms = $2 \
         WHERE id = 1 AND (until_ms < $3 OR holder = $1)",
    )
    .bind(holder)
    .bind(until_ms)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(taken == 1)
}

fn seal_from(r: &impl Columns) -> StoreResult<AuditSeal> {
    Ok(AuditSeal {
        chain_id: r.int("chain_id")?,
        seq: r.int("seq")?,
        hash: r.text("hash")?,
        upto_seq: r.int("upto_seq")?,
        bundle: r.text("bundle")?,
        bundle_digest: r.text("bundle_digest")?,
        sealed_ms: r.int("sealed_ms")?,
        signature: r.text("signature")?,
    })
}
