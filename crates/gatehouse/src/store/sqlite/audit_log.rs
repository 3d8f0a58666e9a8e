//! Appending audit rows: one per request, so the write path is as short as SQLite allows.
//!
//! Appends go through a connection of their own, driven directly (rusqlite, on the blocking
//! pool) rather than through sqlx: sqlx copies every bound value and hands each statement to
//! its worker thread, which made a row cost 4.2 µs against 2.5 µs here, and a one-row batch
//! 183 µs against 31 µs (`cargo bench -p gatehouse --bench audit`). Both drivers share the one
//! bundled SQLite library; reads of the trail stay on the sqlx pool.

use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use std::{path::Path, sync::Arc, time::Duration};

use crate::{
    audit::{Checkpoint, event::AuditRow},
    store::{StoreError, StoreResult},
};

const INSERT: &str = "INSERT INTO audit_events (seq, ts_ms, request_id, client, credential_id, \
    user_id, ip, country, server, http_method, rpc_method, tool, decision, reason, status, \
    upstream_status, latency_us, prev_hash, hash, hash_version, outcome, response_bytes, batch) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, \
    ?20, ?21, ?22, ?23)";

const CHECKPOINT: &str = "INSERT INTO audit_checkpoint (id, seq, hash, ts_ms, mac) \
    VALUES (1, ?1, ?2, ?3, ?4) \
    ON CONFLICT (id) DO UPDATE SET seq = ?1, hash = ?2, ts_ms = ?3, mac = ?4";

/// Rows written between two yields of the core (~80 µs of work).
const YIELD_EVERY: usize = 32;

#[derive(Clone)]
pub(super) struct AuditLog {
    conn: Arc<Mutex<Connection>>,
}

impl AuditLog {
    /// Opens the database file the pool uses (after its migrations have run).
    pub(super) fn open(path: &Path, busy_timeout: Duration) -> StoreResult<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(backend)?;
        conn.busy_timeout(busy_timeout).map_err(backend)?;
        // WAL is a property of the file (set by the pool); `synchronous` is per connection.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Appends the rows and moves the checkpoint in one transaction: all or none.
    pub(super) async fn append(
        &self,
        rows: Arc<Vec<AuditRow>>,
        checkpoint: Checkpoint,
    ) -> StoreResult<()> {
        // The audit writer runs on a thread of its own with a single-threaded runtime
        // (audit/writer.rs): nothing else waits on that thread, so the append runs right
        // there, without handing it to the blocking pool and back (two thread wake-ups, most
        // of a durable request's wait for its commit).
        let own_thread = tokio::runtime::Handle::try_current().is_ok_and(|handle| {
            handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread
        });
        if own_thread {
            return insert(&mut self.conn.lock(), &rows, &checkpoint);
        }
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || insert(&mut conn.lock(), &rows, &checkpoint))
            .await
            .map_err(|err| StoreError::Audit(format!("audit append task failed: {err}")))?
    }
}

fn insert(conn: &mut Connection, rows: &[AuditRow], checkpoint: &Checkpoint) -> StoreResult<()> {
    // IMMEDIATE takes the write lock up front (waiting up to the busy timeout for another
    // writer) instead of failing at the first INSERT.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    {
        // Cached: parsing the statement cost more than inserting a row.
        let mut statement = tx.prepare_cached(INSERT).map_err(backend)?;
        for (i, row) in rows.iter().enumerate() {
            if i > 0 && i % YIELD_EVERY == 0 {
                // Lets a request thread waiting for this core run first: a batch is a few
                // hundred µs of CPU, and taken in one go it showed in the hop's p99 at c=1.
                std::thread::yield_now();
            }
            let e = &row.event;
            statement
                .execute(params![
                    row.seq,
                    e.ts_ms,
                    e.request_id,
                    e.client,
                    e.credential_id,
                    e.user,
                    e.ip,
                    e.country,
                    e.server,
                    e.http_method,
                    e.rpc_method,
                    e.tool,
                    e.decision.as_str(),
                    e.reason,
                    e.status,
                    e.upstream_status,
                    e.latency_us,
                    row.prev_hash,
                    row.hash,
                    row.hash_version,
                    e.outcome.map(|o| o.as_str()),
                    e.response_bytes.and_then(|n| i64::try_from(n).ok()),
                    crate::store::sql::audit_details::encode(e)?,
                ])
                .map_err(backend)?;
        }
    }
    tx.prepare_cached(CHECKPOINT)
        .and_then(|mut statement| {
            statement.execute(params![
                checkpoint.seq,
                checkpoint.hash,
                checkpoint.ts_ms,
                checkpoint.mac
            ])
        })
        .map_err(backend)?;
    tx.commit().map_err(backend)
}

fn backend(err: rusqlite::Error) -> StoreError {
    StoreError::Audit(err.to_string())
}

#[cfg(test)]
mod tests {
    use crate::{
        audit::{
            Checkpoint,
            chain::GENESIS,
            event::{AuditEvent, AuditRow, Decision},
        },
        secrets::Keyring,
        store::{SqliteStore, Store, StoreError},
    };
    use std::sync::Arc;

    fn row(seq: i64) -> AuditRow {
        AuditRow {
            seq,
            event: AuditEvent {
                ts_ms: 1_750_000_000_000 + seq,
                request_id: format!("r{seq}"),
                client: Some("agent".into()),
                credential_id: None,
                user: None,
                ip: Some("127.0.0.1".into()),
                country: None,
                server: Some("demo".into()),
                http_method: "POST".into(),
                rpc_method: Some("tools/call".into()),
                tool: Some("echo".into()),
                decision: Decision::Allow,
                reason: None,
                status: 200,
                upstream_status: Some(200),
                latency_us: 10,
                outcome: None,
                response_bytes: None,
                batch: Vec::new(),
                operator: None,
            },
            hash_version: 2,
            prev_hash: GENESIS.into(),
            hash: format!("{seq:064}"),
        }
    }

    fn checkpoint(seq: i64) -> Checkpoint {
        Checkpoint::sign(
            &Keyring::from_master(&[7; 32]),
            seq,
            &format!("{seq:064}"),
            1,
        )
    }

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn a_failing_batch_writes_nothing() {
        let (_dir, store) = store().await;
        store
            .append_audit(Arc::new(vec![row(1), row(2)]), checkpoint(2))
            .await
            .unwrap();
        // Row 2 again, after two new rows: the whole batch is refused and rolled back.
        let err = store
            .append_audit(Arc::new(vec![row(3), row(4), row(2)]), checkpoint(2))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Audit(_)), "{err:?}");
        let rows = store.audit_page(0, 10).await.unwrap();
        assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(rows[1], row(2));
        assert_eq!(
            store.audit_head().await.unwrap(),
            Some((2, format!("{:064}", 2)))
        );
    }

    #[tokio::test]
    async fn in_memory_databases_are_refused() {
        for url in ["sqlite::memory:", "sqlite://file:x?mode=memory"] {
            let Err(err) = SqliteStore::open(url).await else {
                panic!("{url} was accepted");
            };
            assert!(matches!(err, StoreError::Unsupported(_)), "{err:?}");
            assert!(err.to_string().contains("in-memory"), "{err}");
        }
    }
}
