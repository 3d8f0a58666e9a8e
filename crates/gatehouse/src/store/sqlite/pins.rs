//! Tool pins on SQLite: what observing a definition changes, and approving pending ones.

use sqlx::{Sqlite, SqlitePool, Transaction};

use super::{SERVER_EXISTS, bump, require};
use crate::store::{
    StoreError, StoreResult,
    sql::{all, pin_from},
};
use gatehouse_model::records::{Generation, ToolObservation, ToolPin};

pub(super) async fn list(pool: &SqlitePool) -> StoreResult<Vec<ToolPin>> {
    let rows = sqlx::query("SELECT * FROM tool_pins ORDER BY server, tool")
        .fetch_all(pool)
        .await?;
    all(&rows, pin_from)
}

pub(super) async fn observe(
    mut tx: Transaction<'static, Sqlite>,
    seen: &ToolObservation,
) -> StoreResult<Option<Generation>> {
    let current: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT approved_hash, pending_hash FROM tool_pins WHERE server = $1 AND tool = $2",
    )
    .bind(&seen.server)
    .bind(&seen.tool)
    .fetch_optional(&mut *tx)
    .await?;
    let changed = match current {
        None => {
            let (approved, pending) = if seen.suspicious.is_some() {
                (None, Some(&seen.hash))
            } else {
                (Some(&seen.hash), None)
            };
            sqlx::query(
                "INSERT INTO tool_pins (server, tool, approved_hash, pending_hash, pending_definition, \
                 pending_reason, first_seen, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(&seen.server)
            .bind(&seen.tool)
            .bind(approved)
            .bind(pending)
            .bind(pending.map(|_| &seen.definition))
            .bind(pending.and(seen.suspicious.as_ref()))
            .bind(seen.at)
            .execute(&mut *tx)
            .await?;
            true
        }
        Some((approved, _)) if approved.as_deref() == Some(seen.hash.as_str()) => {
            // Back to the approved definition: nothing is pending any more.
            sqlx::query(
                "UPDATE tool_pins SET pending_hash = NULL, pending_definition = NULL, pending_reason = NULL, \
                 updated_at = $3 WHERE server = $1 AND tool = $2 AND pending_hash IS NOT NULL",
            )
            .bind(&seen.server)
            .bind(&seen.tool)
            .bind(seen.at)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0
        }
        Some((_, pending)) if pending.as_deref() == Some(seen.hash.as_str()) => false,
        Some(_) => {
            let reason = seen
                .suspicious
                .clone()
                .unwrap_or_else(|| "definition changed".into());
            sqlx::query(
                "UPDATE tool_pins SET pending_hash = $3, pending_definition = $4, pending_reason = $5, \
                 updated_at = $6 WHERE server = $1 AND tool = $2",
            )
            .bind(&seen.server)
            .bind(&seen.tool)
            .bind(&seen.hash)
            .bind(&seen.definition)
            .bind(reason)
            .bind(seen.at)
            .execute(&mut *tx)
            .await?;
            true
        }
    };
    let generation = if changed {
        Some(bump(&mut tx).await?)
    } else {
        None
    };
    tx.commit().await?;
    Ok(generation)
}

pub(super) async fn approve(
    mut tx: Transaction<'static, Sqlite>,
    server: &str,
    tools: &[String],
    at: i64,
) -> StoreResult<(Generation, u64)> {
    require(&mut tx, "server", SERVER_EXISTS, server).await?;
    let mut approved = 0;
    let pending: Vec<String> = sqlx::query_scalar(
        "SELECT tool FROM tool_pins WHERE server = $1 AND pending_hash IS NOT NULL",
    )
    .bind(server)
    .fetch_all(&mut *tx)
    .await?;
    for tool in &pending {
        if !tools.is_empty() && !tools.contains(tool) {
            continue;
        }
        approved += sqlx::query(
            "UPDATE tool_pins SET approved_hash = pending_hash, pending_hash = NULL, pending_definition = NULL, \
             pending_reason = NULL, updated_at = $3 WHERE server = $1 AND tool = $2",
        )
        .bind(server)
        .bind(tool)
        .bind(at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    for tool in tools {
        if !pending.contains(tool) {
            return Err(StoreError::not_found(
                "pending tool change",
                format!("{server}/{tool}"),
            ));
        }
    }
    let generation = bump(&mut tx).await?;
    tx.commit().await?;
    Ok((generation, approved))
}
