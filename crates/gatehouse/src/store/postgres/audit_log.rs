//! Appending audit rows on PostgreSQL: one transaction per batch, the rows in one statement
//! (typed arrays through `UNNEST`), never a round trip per request.
//!
//! The transaction holds [`AUDIT_LOCK`] from before the rows take their `seq` until after
//! they are committed, so `seq` is commit order across every replica's chain, as audit.md
//! promises (`audit tail -f` reads the rows after the last `seq` it printed and must miss
//! none). An identity is otherwise taken at insert, and two replicas could commit out of
//! order.
//!
//! The audit writer runs on a thread of its own with its own runtime; its appends use a
//! connection opened there, not a pool connection driven by the main runtime. Appends from
//! anywhere else (the CLI, tests) use the pool.

use sqlx::{
    Connection, PgConnection, PgPool,
    postgres::{PgConnectOptions, Postgres},
};
use std::thread::ThreadId;
use tokio::sync::Mutex;

use crate::store::sql::audit_details;
use crate::store::{StoreError, StoreResult};
use gatehouse_model::audit::{AuditRow, ChainStart, Checkpoint};

/// Held by each append transaction (an arbitrary key of Gatehouse's own).
const AUDIT_LOCK: i64 = 0x6761_7465_0002;

// `seq` is left to the identity: commit order under the lock. ORDINALITY keeps the batch's
// order in the numbering.
const INSERT: &str = "INSERT INTO audit_events (chain_id, chain_seq, ts_ms, request_id, client, \
    credential_id, user_id, ip, country, server, http_method, rpc_method, tool, decision, reason, \
    status, upstream_status, latency_us, prev_hash, hash, hash_version, outcome, response_bytes, \
    batch, rule) \
    SELECT c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, \
    c20, c21, c22, c23, c24, c25 FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], \
    $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
    $12::text[], $13::text[], $14::text[], $15::text[], $16::bigint[], $17::bigint[], \
    $18::bigint[], $19::text[], $20::text[], $21::bigint[], $22::text[], $23::bigint[], \
    $24::text[], $25::text[]) WITH ORDINALITY AS r(c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, \
    c12, c13, c14, c15, c16, c17, c18, c19, c20, c21, c22, c23, c24, c25, n) ORDER BY n \
    RETURNING chain_seq, seq";

const CHECKPOINT: &str = "INSERT INTO audit_chain_checkpoints (chain_id, seq, hash, ts_ms, mac) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (chain_id) DO UPDATE SET seq = excluded.seq, \
    hash = excluded.hash, ts_ms = excluded.ts_ms, mac = excluded.mac";

// No upsert: a chain id or registry position another writer took refuses the whole append.
const REGISTER: &str = "INSERT INTO audit_chains (chain_id, prev, started_ms, writer, hash) \
    VALUES ($1, $2, $3, $4, $5)";

pub(super) struct AuditLog {
    options: PgConnectOptions,
    pool: PgPool,
    /// How each append transaction begins (its lock, and the commit mode).
    begin: &'static str,
    /// The writer thread's own connection, and that thread.
    own: Mutex<Option<(ThreadId, PgConnection)>>,
}

impl AuditLog {
    /// `durable` false (`audit.durable = false`) commits appends with `synchronous_commit =
    /// off`: the same loss window as SQLite's `synchronous = NORMAL`, fixed here once rather
    /// than passed with every append.
    pub(super) fn new(options: PgConnectOptions, pool: PgPool, durable: bool) -> Self {
        Self {
            options,
            pool,
            begin: begin_statement(durable),
            own: Mutex::new(None),
        }
    }

    pub(super) async fn append(
        &self,
        rows: &[AuditRow],
        checkpoint: &Checkpoint,
        opens: Option<&ChainStart>,
    ) -> StoreResult<Vec<i64>> {
        let on_own_thread = tokio::runtime::Handle::try_current().is_ok_and(|handle| {
            handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread
        });
        if !on_own_thread {
            let mut conn = self.pool.acquire().await?;
            return insert(&mut conn, self.begin, rows, checkpoint, opens).await;
        }
        let here = std::thread::current().id();
        let mut own = self.own.lock().await;
        let conn = match own.take() {
            Some((thread, conn)) if thread == here => conn,
            _ => PgConnection::connect_with(&self.options).await?,
        };
        let mut conn = conn;
        let result = insert(&mut conn, self.begin, rows, checkpoint, opens).await;
        // After a failure the connection may be broken (or its answer lost): a new one next
        // time; the writer finds out from the chain's checkpoint what was committed.
        if result.is_ok() {
            *own = Some((here, conn));
        }
        result
    }
}

/// The append transaction's first statement: the lock, and without durability the commit mode
/// in the same round trip (`set_config(…, true)` is `SET LOCAL`).
fn begin_statement(durable: bool) -> &'static str {
    if durable {
        "SELECT pg_advisory_xact_lock($1)"
    } else {
        "SELECT pg_advisory_xact_lock($1), set_config('synchronous_commit', 'off', true)"
    }
}

async fn insert(
    conn: &mut PgConnection,
    begin: &'static str,
    rows: &[AuditRow],
    checkpoint: &Checkpoint,
    opens: Option<&ChainStart>,
) -> StoreResult<Vec<i64>> {
    let mut tx = conn.begin().await?;
    sqlx::query(begin)
        .bind(AUDIT_LOCK)
        .execute(&mut *tx)
        .await?;
    if let Some(start) = opens {
        sqlx::query(REGISTER)
            .bind(start.chain_id)
            .bind(&start.prev)
            .bind(start.started_ms)
            .bind(&start.writer)
            .bind(&start.hash)
            .execute(&mut *tx)
            .await
            .map_err(
                |err| match crate::store::sql::write_error(err, "audit chain", "") {
                    // Another writer opened a chain first: expected, and answered by a retry.
                    StoreError::Conflict { kind, .. } => StoreError::Conflict {
                        kind,
                        name: start.chain_id.to_string(),
                    },
                    other => other,
                },
            )?;
    }
    let mut seqs = Vec::with_capacity(rows.len());
    if !rows.is_empty() {
        // RETURNING does not promise the insert's order: match each row by its chain_seq
        // (one chain per append, so unique within it).
        let mut numbered = std::collections::HashMap::with_capacity(rows.len());
        for row in columns(rows)?
            .bind_to(sqlx::query(INSERT))
            .fetch_all(&mut *tx)
            .await?
        {
            use sqlx::Row as _;
            numbered.insert(row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?);
        }
        seqs.extend(
            rows.iter()
                .map(|row| numbered.get(&row.chain_seq).copied().unwrap_or(0)),
        );
    }
    sqlx::query(CHECKPOINT)
        .bind(checkpoint.chain_id)
        .bind(checkpoint.seq)
        .bind(&checkpoint.hash)
        .bind(checkpoint.ts_ms)
        .bind(&checkpoint.mac)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(seqs)
}

/// The batch column by column, each bound once as a typed array.
#[derive(Default)]
struct Columns {
    chain_id: Vec<i64>,
    chain_seq: Vec<i64>,
    ts_ms: Vec<i64>,
    request_id: Vec<String>,
    client: Vec<Option<String>>,
    credential_id: Vec<Option<String>>,
    user: Vec<Option<String>>,
    ip: Vec<Option<String>>,
    country: Vec<Option<String>>,
    server: Vec<Option<String>>,
    http_method: Vec<String>,
    rpc_method: Vec<Option<String>>,
    tool: Vec<Option<String>>,
    decision: Vec<&'static str>,
    reason: Vec<Option<String>>,
    status: Vec<i64>,
    upstream_status: Vec<Option<i64>>,
    latency_us: Vec<i64>,
    prev_hash: Vec<String>,
    hash: Vec<String>,
    hash_version: Vec<i64>,
    outcome: Vec<Option<&'static str>>,
    response_bytes: Vec<Option<i64>>,
    batch: Vec<Option<String>>,
    rule: Vec<Option<String>>,
}

fn columns(rows: &[AuditRow]) -> StoreResult<Columns> {
    let mut c = Columns::default();
    for row in rows {
        let e = &row.event;
        c.chain_id.push(row.chain_id);
        c.chain_seq.push(row.chain_seq);
        c.ts_ms.push(e.ts_ms);
        c.request_id.push(e.request_id.clone());
        c.client.push(e.client.clone());
        c.credential_id.push(e.credential_id.clone());
        c.user.push(e.user.clone());
        c.ip.push(e.ip.clone());
        c.country.push(e.country.clone());
        c.server.push(e.server.clone());
        c.http_method.push(e.http_method.clone());
        c.rpc_method.push(e.rpc_method.clone());
        c.tool.push(e.tool.clone());
        c.decision.push(e.decision.as_str());
        c.reason.push(e.reason.clone());
        c.status.push(i64::from(e.status));
        c.upstream_status.push(e.upstream_status.map(i64::from));
        c.latency_us.push(e.latency_us);
        c.prev_hash.push(row.prev_hash.clone());
        c.hash.push(row.hash.clone());
        c.hash_version.push(i64::from(row.hash_version));
        c.outcome.push(e.outcome.map(|o| o.as_str()));
        c.response_bytes
            .push(e.response_bytes.and_then(|n| i64::try_from(n).ok()));
        c.batch.push(audit_details::encode(e)?);
        c.rule.push(e.rule.clone());
    }
    Ok(c)
}

impl Columns {
    fn bind_to<'q>(
        self,
        query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(self.chain_id)
            .bind(self.chain_seq)
            .bind(self.ts_ms)
            .bind(self.request_id)
            .bind(self.client)
            .bind(self.credential_id)
            .bind(self.user)
            .bind(self.ip)
            .bind(self.country)
            .bind(self.server)
            .bind(self.http_method)
            .bind(self.rpc_method)
            .bind(self.tool)
            .bind(self.decision)
            .bind(self.reason)
            .bind(self.status)
            .bind(self.upstream_status)
            .bind(self.latency_us)
            .bind(self.prev_hash)
            .bind(self.hash)
            .bind(self.hash_version)
            .bind(self.outcome)
            .bind(self.response_bytes)
            .bind(self.batch)
            .bind(self.rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row as _;

    /// The commit mode each append transaction runs with, read inside one after its first
    /// statement; and that the mode ends with the transaction.
    async fn commit_mode(durable: bool) -> (String, String) {
        let url = gatehouse_testkit::postgres::Postgres::shared().empty_database();
        let mut conn = PgConnection::connect(&url).await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        sqlx::query(begin_statement(durable))
            .bind(AUDIT_LOCK)
            .execute(&mut *tx)
            .await
            .unwrap();
        let inside: String = sqlx::query("SELECT current_setting('synchronous_commit')")
            .fetch_one(&mut *tx)
            .await
            .unwrap()
            .get(0);
        tx.commit().await.unwrap();
        let after: String = sqlx::query("SELECT current_setting('synchronous_commit')")
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get(0);
        (inside, after)
    }

    #[tokio::test]
    async fn appends_commit_asynchronously_only_without_durability() {
        assert_eq!(commit_mode(true).await, ("on".into(), "on".into()));
        assert_eq!(commit_mode(false).await, ("off".into(), "on".into()));
    }
}
