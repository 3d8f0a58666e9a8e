//! Tool pins: what observing a definition changes, and approving pending ones.

use super::backend::{SqlBackend, SqlConn, query};
use super::records::{SERVER_EXISTS, bump, require};
use super::{Columns, all, pin_from};
use crate::store::{StoreError, StoreResult};
use gatehouse_model::records::{Generation, MAX_PINNED_DEFINITION, ToolObservation, ToolPin};

pub(super) async fn list<C: SqlConn + ?Sized>(conn: &mut C) -> StoreResult<Vec<ToolPin>> {
    let rows = query("SELECT * FROM tool_pins ORDER BY server, tool")
        .fetch_all(conn)
        .await?;
    all(&rows, pin_from)
}

pub(super) async fn observe<B: SqlBackend>(
    mut tx: B::Tx,
    seen: &ToolObservation,
) -> StoreResult<Option<Generation>> {
    let current =
        query("SELECT approved_hash, pending_hash FROM tool_pins WHERE server = $1 AND tool = $2")
            .bind(&seen.server)
            .bind(&seen.tool)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| {
                Ok::<_, sqlx::Error>((
                    row.opt_text("approved_hash")?,
                    row.opt_text("pending_hash")?,
                ))
            })
            .transpose()?;
    let changed = match current {
        None => {
            let (approved, pending) = if seen.suspicious.is_some() {
                (None, Some(&seen.hash))
            } else {
                (Some(&seen.hash), None)
            };
            query(
                "INSERT INTO tool_pins (server, tool, approved_hash, pending_hash, pending_definition, \
                 pending_reason, first_seen, updated_at, approved_definition) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)",
            )
            .bind(&seen.server)
            .bind(&seen.tool)
            .bind(approved)
            .bind(pending)
            .bind(pending.map(|_| &seen.definition))
            .bind(pending.and(seen.suspicious.as_ref()))
            .bind(seen.at)
            .bind(approved.and(kept(&seen.definition)))
            .execute(&mut *tx)
            .await?;
            true
        }
        Some((approved, _)) if approved.as_deref() == Some(seen.hash.as_str()) => {
            // Back to the approved definition: nothing is pending any more.
            query(
                "UPDATE tool_pins SET pending_hash = NULL, pending_definition = NULL, pending_reason = NULL, \
                 updated_at = $3 WHERE server = $1 AND tool = $2 AND pending_hash IS NOT NULL",
            )
            .bind(&seen.server)
            .bind(&seen.tool)
            .bind(seen.at)
            .execute(&mut *tx)
            .await?
                > 0
        }
        Some((_, pending)) if pending.as_deref() == Some(seen.hash.as_str()) => false,
        Some(_) => {
            let reason = seen
                .suspicious
                .clone()
                .unwrap_or_else(|| "definition changed".into());
            query(
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
        Some(bump::<B>(&mut tx).await?)
    } else {
        None
    };
    B::commit(tx).await?;
    Ok(generation)
}

/// The definition kept as approved: at most [`MAX_PINNED_DEFINITION`] bytes.
fn kept(definition: &str) -> Option<&str> {
    (definition.len() <= MAX_PINNED_DEFINITION).then_some(definition)
}

pub(super) async fn approve<B: SqlBackend>(
    tx: B::Tx,
    server: &str,
    tools: &[String],
    at: i64,
) -> StoreResult<(Generation, u64)> {
    settle::<B>(
        tx,
        server,
        tools,
        at,
        "UPDATE tool_pins SET approved_hash = pending_hash, \
         approved_definition = CASE WHEN LENGTH(pending_definition) <= $4 THEN pending_definition END, \
         pending_hash = NULL, pending_definition = NULL, \
         pending_reason = NULL, updated_at = $3 WHERE server = $1 AND tool = $2",
    )
    .await
}

/// Discards pending definitions: the approved one (or none, for a tool never approved) stays,
/// so the tool stays held while the upstream serves anything else.
pub(super) async fn reject<B: SqlBackend>(
    tx: B::Tx,
    server: &str,
    tools: &[String],
    at: i64,
) -> StoreResult<(Generation, u64)> {
    settle::<B>(
        tx,
        server,
        tools,
        at,
        "UPDATE tool_pins SET pending_hash = NULL, pending_definition = NULL, \
         pending_reason = NULL, updated_at = $3 WHERE server = $1 AND tool = $2",
    )
    .await
}

/// Runs `update` on each pending pin of `server` (all, or those in `tools`; naming a tool
/// with nothing pending is an error and changes nothing).
async fn settle<B: SqlBackend>(
    mut tx: B::Tx,
    server: &str,
    tools: &[String],
    at: i64,
    update: &'static str,
) -> StoreResult<(Generation, u64)> {
    require(&mut *tx, "server", SERVER_EXISTS, server).await?;
    let mut approved = 0;
    let pending =
        query("SELECT tool FROM tool_pins WHERE server = $1 AND pending_hash IS NOT NULL")
            .bind(server)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.text("tool"))
            .collect::<sqlx::Result<Vec<String>>>()?;
    for tool in &pending {
        if !tools.is_empty() && !tools.contains(tool) {
            continue;
        }
        let mut statement = query(update).bind(server).bind(tool).bind(at);
        if update.contains("$4") {
            statement = statement.bind(MAX_PINNED_DEFINITION as i64);
        }
        approved += statement.execute(&mut *tx).await?;
    }
    for tool in tools {
        if !pending.contains(tool) {
            return Err(StoreError::not_found(
                "pending tool change",
                format!("{server}/{tool}"),
            ));
        }
    }
    let generation = bump::<B>(&mut tx).await?;
    B::commit(tx).await?;
    Ok((generation, approved))
}
