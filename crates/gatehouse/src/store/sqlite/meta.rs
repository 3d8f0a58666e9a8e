//! The generation, the consistent read the snapshot is built from, and what the running
//! server reports back, on SQLite.

use sqlx::{AssertSqlSafe, SqlitePool};

use super::{KEY_COLUMNS, oauth, pins};
use crate::{
    records::ReloadReport,
    store::{
        Generation, StoreContents, StoreError, StoreResult,
        sql::{all, client_from, connection_from, key_from, policy_from, server_from, to_json},
    },
};

pub(super) async fn generation(pool: &SqlitePool) -> StoreResult<Generation> {
    Ok(
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'generation'")
            .fetch_one(pool)
            .await?,
    )
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
    let clients = sqlx::query("SELECT * FROM clients")
        .fetch_all(&mut *tx)
        .await?;
    let keys = sqlx::query(AssertSqlSafe(format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE revoked_at IS NULL"
    )))
    .fetch_all(&mut *tx)
    .await?;
    let connections = sqlx::query("SELECT * FROM connections")
        .fetch_all(&mut *tx)
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
        clients: all(&clients, client_from)?,
        api_keys: all(&keys, key_from)?,
        connections: all(&connections, connection_from)?,
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
