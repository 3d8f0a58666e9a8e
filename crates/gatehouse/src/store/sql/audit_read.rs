//! Reading the audit trail: SQL with only the filters given, so every filter can use its
//! index (`(? IS NULL OR client = ?)` cannot, and made a query for a rare client read the
//! whole table), and pages small enough that a reader holds one page at a time.

use super::backend::{self, SqlConn, query_built};
use super::{all, audit_from};
use crate::store::StoreResult;
use gatehouse_model::audit::{AuditFilter, AuditRow, Decision};

/// Rows in table order (`seq`) after `after_seq`.
pub(super) async fn page<C: SqlConn + ?Sized>(
    conn: &mut C,
    after_seq: i64,
    limit: i64,
) -> StoreResult<Vec<AuditRow>> {
    let rows = backend::query("SELECT * FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2")
        .bind(after_seq)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    all(&rows, audit_from)
}

/// The statement for `f`, its placeholders numbered in the order [`query`] binds them.
pub(super) fn sql(f: &AuditFilter) -> String {
    let mut conditions: Vec<String> = Vec::new();
    // Each `?` in a condition is the same, next placeholder.
    let mut placeholder = |condition: &str| {
        let n = conditions.len() + 1;
        conditions.push(condition.replace('?', &format!("${n}")));
    };
    if f.client.is_some() {
        placeholder("client = ?");
    }
    if f.server.is_some() {
        placeholder("server = ?");
    }
    if f.decision.is_some() {
        placeholder("decision = ?");
    }
    if f.since_ms.is_some() {
        placeholder("ts_ms >= ?");
    }
    if f.after_seq.is_some() {
        placeholder("seq > ?");
    }
    if f.until_ms.is_some() {
        placeholder("ts_ms < ?");
    }
    if f.before_seq.is_some() {
        placeholder("seq < ?");
    }
    if f.user.is_some() {
        placeholder("user_id = ?");
    }
    if f.credential_id.is_some() {
        placeholder("credential_id = ?");
    }
    if f.tool.is_some() {
        placeholder("tool = ?");
    }
    if f.reason.is_some() {
        // The code, or a more specific one under it: `rate_limit` finds `rate_limit:burst`.
        // No LIKE: `_` in a code would be a wildcard.
        placeholder("(reason = ? OR substr(reason, 1, length(?) + 1) = ? || ':')");
    }
    if f.rule.is_some() {
        placeholder("rule = ?");
    }
    let bound = conditions.len();
    if let Some(kind) = f.kind {
        conditions.push(super::audit_details::kind_condition(kind).to_owned());
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let order = if f.newest_first { "DESC" } else { "ASC" };
    format!(
        "SELECT * FROM audit_events{filter} ORDER BY seq {order} LIMIT ${} OFFSET ${}",
        bound + 1,
        bound + 2
    )
}

pub(super) async fn query<C: SqlConn + ?Sized>(
    conn: &mut C,
    f: &AuditFilter,
) -> StoreResult<Vec<AuditRow>> {
    let mut query = query_built(sql(f));
    if let Some(client) = &f.client {
        query = query.bind(client);
    }
    if let Some(server) = &f.server {
        query = query.bind(server);
    }
    if let Some(decision) = f.decision {
        query = query.bind(Decision::as_str(decision));
    }
    if let Some(since) = f.since_ms {
        query = query.bind(since);
    }
    if let Some(after) = f.after_seq {
        query = query.bind(after);
    }
    if let Some(until) = f.until_ms {
        query = query.bind(until);
    }
    if let Some(before) = f.before_seq {
        query = query.bind(before);
    }
    for text in [&f.user, &f.credential_id, &f.tool, &f.reason, &f.rule]
        .into_iter()
        .flatten()
    {
        query = query.bind(text);
    }
    let rows = query.bind(f.limit).bind(f.offset).fetch_all(conn).await?;
    all(&rows, audit_from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;

    async fn plan(pool: &sqlx::SqlitePool, f: &AuditFilter) -> String {
        let explain = format!("EXPLAIN QUERY PLAN {}", sql(f));
        let mut explain = sqlx::query(sqlx::AssertSqlSafe(explain));
        for value in [&f.client, &f.server].into_iter().flatten() {
            explain = explain.bind(value);
        }
        let rows = explain
            .bind(f.limit)
            .bind(f.offset)
            .fetch_all(pool)
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[tokio::test]
    async fn client_and_server_filters_read_their_index_in_sequence_order() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = crate::store::SqliteStore::open(&url).await.unwrap();
        for newest_first in [true, false] {
            let by_client = AuditFilter {
                client: Some("rare".into()),
                limit: 10,
                newest_first,
                ..AuditFilter::default()
            };
            let plan_text = plan(store.pool(), &by_client).await;
            assert!(
                plan_text.contains("USING INDEX audit_events_client_seq")
                    && !plan_text.contains("TEMP B-TREE"),
                "{plan_text}"
            );
            let by_server = AuditFilter {
                client: None,
                server: Some("demo".into()),
                ..by_client
            };
            let plan_text = plan(store.pool(), &by_server).await;
            assert!(
                plan_text.contains("USING INDEX audit_events_server_seq")
                    && !plan_text.contains("TEMP B-TREE"),
                "{plan_text}"
            );
        }
    }

    /// PostgreSQL: with sequential scans ruled out, a client or server filter reads its
    /// `(column, seq)` index in order, newest or oldest first, and sorts nothing.
    #[tokio::test]
    async fn postgres_filters_read_their_index_without_a_sort() {
        let url = gatehouse_testkit::postgres::Postgres::shared().empty_database();
        let store = crate::store::PostgresStore::open(&url, 2).await.unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        sqlx::query("SET enable_seqscan = off")
            .execute(&mut *conn)
            .await
            .unwrap();
        for newest_first in [true, false] {
            for (client, server, index) in [
                (Some("rare"), None, "audit_events_client_seq"),
                (None, Some("demo"), "audit_events_server_seq"),
            ] {
                let f = AuditFilter {
                    client: client.map(Into::into),
                    server: server.map(Into::into),
                    limit: 10,
                    newest_first,
                    ..AuditFilter::default()
                };
                let explain = format!("EXPLAIN {}", sql(&f));
                let lines: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
                    .bind(client.or(server))
                    .bind(f.limit)
                    .bind(f.offset)
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap();
                let plan = lines.join("\n");
                assert!(plan.contains(index) && !plan.contains("Sort"), "{plan}");
            }
        }
    }
}
