//! The generation, the consistent read the snapshot is built from, and what the running
//! server reports back.

use super::backend::{SqlBackend, SqlConn, query, query_built};
use super::records::KEY_COLUMNS;
use super::{
    Columns, all, client_from, connection_from, key_from, oauth, pins, policy_from, server_from,
    to_json,
};
use crate::store::{StoreError, StoreResult};
use gatehouse_model::records::{Generation, ReloadReport, StoreContents};

const GENERATION: &str = "SELECT value FROM meta WHERE key = 'generation'";

pub(super) async fn generation<C: SqlConn + ?Sized>(conn: &mut C) -> StoreResult<Generation> {
    Ok(query(GENERATION).fetch_one(conn).await?.int("value")?)
}

/// Reads a query's rows into records one at a time. Holding every row of a large table at
/// once (`fetch_all`) took several times the memory of the records built from them, on every
/// snapshot rebuild. `count` (the same rows, counted, in the same transaction) sizes the
/// records once rather than by doubling.
async fn read_records<C: SqlConn + ?Sized, T: Send>(
    conn: &mut C,
    count: &'static str,
    sql: super::backend::Stmt,
    from: fn(&C::Row) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let expected = query(count).fetch_one(&mut *conn).await?.int("n")?;
    conn.fetch_records(sql, usize::try_from(expected).unwrap_or(0), from)
        .await
}

pub(super) async fn load_contents<B: SqlBackend>(backend: &B) -> StoreResult<StoreContents> {
    // One snapshot across the queries, so the records are of one generation.
    let mut tx = backend.begin_snapshot().await?;
    let generation = query(GENERATION).fetch_one(&mut *tx).await?.int("value")?;
    let servers = query("SELECT * FROM servers").fetch_all(&mut *tx).await?;
    let clients = read_records(
        &mut *tx,
        "SELECT COUNT(*) AS n FROM clients",
        query("SELECT * FROM clients"),
        client_from,
    )
    .await?;
    let api_keys = read_records(
        &mut *tx,
        "SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL",
        query_built(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE revoked_at IS NULL"
        )),
        key_from,
    )
    .await?;
    let connections = read_records(
        &mut *tx,
        "SELECT COUNT(*) AS n FROM connections",
        query("SELECT * FROM connections"),
        connection_from,
    )
    .await?;
    let policies = query("SELECT * FROM policies ORDER BY id")
        .fetch_all(&mut *tx)
        .await?;
    let mut contents = StoreContents::default();
    oauth::load_into(&mut *tx, &mut contents).await?;
    let tool_pins = pins::list(&mut *tx).await?;
    B::commit(tx).await?;
    Ok(StoreContents {
        generation,
        servers: all(&servers, server_from)?,
        clients,
        api_keys,
        connections,
        policies: all(&policies, policy_from)?,
        tool_pins,
        ..contents
    })
}

pub(super) async fn report_reload<C: SqlConn + ?Sized>(
    conn: &mut C,
    report: &ReloadReport,
) -> StoreResult<()> {
    query(
        "INSERT INTO reload_report (id, report) VALUES (1, $1) \
         ON CONFLICT (id) DO UPDATE SET report = excluded.report",
    )
    .bind(to_json(report)?)
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn reload_report<C: SqlConn + ?Sized>(
    conn: &mut C,
) -> StoreResult<Option<ReloadReport>> {
    let row = query("SELECT report FROM reload_report WHERE id = 1")
        .fetch_optional(conn)
        .await?;
    row.map(|row| {
        let json = row.text("report")?;
        serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("reload report: {e}")))
    })
    .transpose()
}
