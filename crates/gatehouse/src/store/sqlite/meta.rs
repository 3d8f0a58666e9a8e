//! The generation, the consistent read the snapshot is built from, and what the running
//! server reports back, on SQLite.

use sqlx::{AssertSqlSafe, SqlitePool, sqlite::SqliteRow};

use super::{KEY_COLUMNS, oauth, pins};
use crate::store::{
    Generation, ReloadReport, StoreContents, StoreError, StoreResult,
    sql::{all, client_from, connection_from, key_from, policy_from, server_from, to_json},
};

pub(super) async fn generation(pool: &SqlitePool) -> StoreResult<Generation> {
    Ok(
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'generation'")
            .fetch_one(pool)
            .await?,
    )
}

/// Reads a query's rows into records one at a time. Holding every row of a large table at
/// once (`fetch_all`) took several times the memory of the records built from them, on every
/// snapshot rebuild. `count` (the same rows, counted, in the same transaction) sizes the
/// records once rather than by doubling.
async fn read_records<T>(
    conn: &mut sqlx::SqliteConnection,
    count: &'static str,
    sql: impl sqlx::SqlSafeStr,
    from: fn(&SqliteRow) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    use futures_util::TryStreamExt;
    let expected: i64 = sqlx::query_scalar(count).fetch_one(&mut *conn).await?;
    let mut records = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    let mut rows = sqlx::query(sql).fetch(conn);
    while let Some(row) = rows.try_next().await? {
        records.push(from(&row)?);
    }
    Ok(records)
}

pub(super) async fn load_contents(pool: &SqlitePool) -> StoreResult<StoreContents> {
    // A read transaction gives one consistent view across the queries (WAL snapshot).
    let mut tx = pool.begin().await?;
    let generation: i64 = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'generation'")
        .fetch_one(&mut *tx)
        .await?;
    let servers = sqlx::query("SELECT * FROM servers")
        .fetch_all(&mut *tx)
        .await?;
    let clients = read_records(
        &mut tx,
        "SELECT COUNT(*) FROM clients",
        "SELECT * FROM clients",
        client_from,
    )
    .await?;
    let api_keys = read_records(
        &mut tx,
        "SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL",
        AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE revoked_at IS NULL"
        )),
        key_from,
    )
    .await?;
    let connections = read_records(
        &mut tx,
        "SELECT COUNT(*) FROM connections",
        "SELECT * FROM connections",
        connection_from,
    )
    .await?;
    let policies = sqlx::query("SELECT * FROM policies ORDER BY id")
        .fetch_all(&mut *tx)
        .await?;
    let mut contents = StoreContents::default();
    oauth::load_into(&mut tx, &mut contents).await?;
    tx.commit().await?;
    let tool_pins = pins::list(pool).await?;
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

pub(super) async fn report_reload(pool: &SqlitePool, report: &ReloadReport) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO reload_report (id, report) VALUES (1, $1) \
         ON CONFLICT (id) DO UPDATE SET report = excluded.report",
    )
    .bind(to_json(report)?)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn reload_report(pool: &SqlitePool) -> StoreResult<Option<ReloadReport>> {
    let json: Option<String> = sqlx::query_scalar("SELECT report FROM reload_report WHERE id = 1")
        .fetch_optional(pool)
        .await?;
    json.map(|json| {
        serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("reload report: {e}")))
    })
    .transpose()
}
