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

use crate::store::{StoreError, StoreResult};
use gatehouse_model::audit::{AuditRow, ChainStart, Checkpoint};

// `seq` is left to SQLite (the next rowid): commit order across every writer's chain.
const INSERT: &str = "INSERT INTO audit_events (chain_id, chain_seq, ts_ms, request_id, client, \
    credential_id, user_id, ip, country, server, http_method, rpc_method, tool, decision, reason, \
    status, upstream_status, latency_us, prev_hash, hash, hash_version, outcome, response_bytes, \
    batch, rule) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, \
    ?20, ?21, ?22, ?23, ?24, ?25)";

const CHECKPOINT: &str = "INSERT INTO audit_chain_checkpoints (chain_id, seq, hash, ts_ms, mac) \
    VALUES (?1, ?2, ?3, ?4, ?5) \
    ON CONFLICT (chain_id) DO UPDATE SET seq = ?2, hash = ?3, ts_ms = ?4, mac = ?5";

// No upsert: a chain id or registry position another writer took refuses the whole append.
const REGISTER: &str = "INSERT INTO audit_chains (chain_id, prev, started_ms, writer, hash) \
    VALUES (?1, ?2, ?3, ?4, ?5)";

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

    /// Registers the chain (when opening it), appends the rows and moves the checkpoint in
    /// one transaction: all or none.
    pub(super) async fn append(
        &self,
        rows: Arc<Vec<AuditRow>>,
        checkpoint: Checkpoint,
        opens: Option<ChainStart>,
    ) -> StoreResult<Vec<i64>> {
        // The audit writer runs on a thread of its own with a single-threaded runtime
        // (audit/writer.rs): nothing else waits on that thread, so the append runs right
        // there, without handing it to the blocking pool and back (two thread wake-ups, most
        // of a durable request's wait for its commit).
        let own_thread = tokio::runtime::Handle::try_current().is_ok_and(|handle| {
            handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread
        });
        if own_thread {
            return insert(&mut self.conn.lock(), &rows, &checkpoint, opens.as_ref());
        }
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            insert(&mut conn.lock(), &rows, &checkpoint, opens.as_ref())
        })
        .await
        .map_err(|err| StoreError::Audit(format!("audit append task failed: {err}")))?
    }
}

fn insert(
    conn: &mut Connection,
    rows: &[AuditRow],
    checkpoint: &Checkpoint,
    opens: Option<&ChainStart>,
) -> StoreResult<Vec<i64>> {
    // IMMEDIATE takes the write lock up front (waiting up to the busy timeout for another
    // writer) instead of failing at the first INSERT.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    if let Some(start) = opens {
        tx.execute(
            REGISTER,
            params![
                start.chain_id,
                start.prev,
                start.started_ms,
                start.writer,
                start.hash
            ],
        )
        .map_err(|err| match err.sqlite_error_code() {
            // Another writer opened a chain first: expected, and answered by a retry.
            Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Conflict {
                kind: "audit chain",
                name: start.chain_id.to_string(),
            },
            _ => backend(err),
        })?;
    }
    let mut seqs = Vec::with_capacity(rows.len());
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
                    row.chain_id,
                    row.chain_seq,
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
                    e.rule,
                ])
                .map_err(backend)?;
            // `seq` is the rowid: the table position the row was just given.
            seqs.push(tx.last_insert_rowid());
        }
    }
    tx.prepare_cached(CHECKPOINT)
        .and_then(|mut statement| {
            statement.execute(params![
                checkpoint.chain_id,
                checkpoint.seq,
                checkpoint.hash,
                checkpoint.ts_ms,
                checkpoint.mac
            ])
        })
        .map_err(backend)?;
    tx.commit().map_err(backend)?;
    Ok(seqs)
}

fn backend(err: rusqlite::Error) -> StoreError {
    StoreError::Audit(err.to_string())
}

#[cfg(test)]
mod tests {
    use crate::audit::{checkpoint::KeyedCheckpoint, registry::KeyedChainStart};
    use crate::{
        audit::chain::GENESIS,
        secrets::Keyring,
        store::{SqliteStore, Store, StoreError},
    };
    use gatehouse_model::audit::{AuditEvent, AuditRow, ChainStart, Checkpoint, Decision};
    use std::sync::Arc;

    /// Row `seq` of chain 1 (the store numbers the table order the same in a fresh database).
    fn row(seq: i64) -> AuditRow {
        AuditRow {
            seq,
            chain_id: 1,
            chain_seq: seq,
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
                rule: None,
            },
            hash_version: 2,
            prev_hash: GENESIS.into(),
            hash: format!("{seq:064}"),
        }
    }

    fn checkpoint(seq: i64) -> Checkpoint {
        Checkpoint::sign(
            &Keyring::from_master(&[7; 32]),
            1,
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
            .append_audit(Arc::new(vec![row(1), row(2)]), checkpoint(2), None)
            .await
            .unwrap();
        // A row the database refuses, after two it accepts: the whole batch is rolled back.
        sqlx::query(
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_events WHEN NEW.request_id = 'r5' \
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .execute(store.pool())
        .await
        .unwrap();
        let err = store
            .append_audit(Arc::new(vec![row(3), row(4), row(5)]), checkpoint(5), None)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Audit(_)), "{err:?}");
        let rows = store.audit_page(0, 10).await.unwrap();
        assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(rows[1], row(2));
        assert_eq!(
            store.audit_chain_head(1).await.unwrap(),
            Some((2, format!("{:064}", 2)))
        );
        assert_eq!(
            store.audit_checkpoint(1).await.unwrap(),
            Some(checkpoint(2))
        );
    }

    /// Two writers opening a chain at once both pick the next id after the newest entry: the
    /// second append is refused whole (its rows too), as a conflict, so it re-reads the
    /// registry and retries at once.
    #[tokio::test]
    async fn a_chain_id_or_registry_position_taken_refuses_the_append() {
        let (_dir, store) = store().await;
        let ring = Keyring::from_master(&[7; 32]);
        let first = ChainStart::new(&ring, 1, GENESIS, 1, "a pid 1");
        store
            .append_audit(Arc::new(vec![row(1)]), checkpoint(1), Some(first.clone()))
            .await
            .unwrap();
        let same_id = ChainStart::new(&ring, 1, &first.hash, 2, "b pid 2");
        let same_prev = ChainStart::new(&ring, 2, GENESIS, 2, "b pid 2");
        for opens in [same_id, same_prev] {
            let mut other = row(1);
            other.chain_id = opens.chain_id;
            let err = store
                .append_audit(Arc::new(vec![other]), checkpoint(1), Some(opens))
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
        }
        assert_eq!(store.audit_chains().await.unwrap(), [first]);
        assert_eq!(store.audit_chain_ids().await.unwrap(), [1]);
        assert_eq!(store.audit_page(0, 10).await.unwrap().len(), 1);
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

    /// A database as the build before chains left it (migrations up to 7, rows hashed in
    /// forms 1 and 2, the single checkpoint): after the upgrade its rows are chain 0 and
    /// verify byte for byte, and the first chain opened links to them.
    #[tokio::test]
    async fn rows_written_before_chains_keep_verifying_as_chain_0() {
        use crate::audit::{AuditWriter, chain};
        use sqlx::{SqlitePool, sqlite::SqliteConnectOptions};
        use std::str::FromStr as _;

        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        let before = sqlx::migrate::Migrator::with_migrations(
            crate::store::sql::migrations::sqlite()
                .iter()
                .filter(|m| m.version < 9)
                .cloned()
                .collect(),
        );
        before.run(&pool).await.unwrap();
        let ring = Keyring::from_master(&[7; 32]);
        let mut scratch = Vec::new();
        let mut prev = GENESIS.to_owned();
        for (seq, version) in [(1, 1), (2, 2), (3, 2)] {
            let e = row(seq).event;
            let hash =
                chain::link_version(&ring, version, 0, &prev, seq, &e, &mut scratch).unwrap();
            sqlx::query(
                "INSERT INTO audit_events (seq, ts_ms, request_id, client, ip, server, \
                 http_method, rpc_method, tool, decision, status, upstream_status, latency_us, \
                 prev_hash, hash, hash_version) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'allow', 200, 200, 10, ?, ?, ?)",
            )
            .bind(seq)
            .bind(e.ts_ms)
            .bind(&e.request_id)
            .bind(&e.client)
            .bind(&e.ip)
            .bind(&e.server)
            .bind(&e.http_method)
            .bind(&e.rpc_method)
            .bind(&e.tool)
            .bind(&prev)
            .bind(&hash)
            .bind(i64::from(version))
            .execute(&pool)
            .await
            .unwrap();
            prev = hash;
        }
        // Signed as the build before chains signed it.
        let text = format!("gatehouse audit checkpoint\n3\n{prev}\n5");
        let mac = hex::encode(ring.audit_mac(&[text.as_bytes()]));
        sqlx::query(
            "INSERT INTO audit_checkpoint (id, seq, hash, ts_ms, mac) VALUES (1, 3, ?, 5, ?)",
        )
        .bind(&prev)
        .bind(&mac)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let store: crate::store::DynStore = Arc::new(SqliteStore::open(&url).await.unwrap());
        let rows = store.audit_page(0, 10).await.unwrap();
        let places: Vec<(i64, i64, i64)> = rows
            .iter()
            .map(|r| (r.seq, r.chain_id, r.chain_seq))
            .collect();
        assert_eq!(places, [(1, 0, 1), (2, 0, 2), (3, 0, 3)]);
        assert_eq!(
            store.audit_checkpoints().await.unwrap(),
            [Checkpoint {
                chain_id: 0,
                seq: 3,
                hash: prev.clone(),
                ts_ms: 5,
                mac
            }]
        );
        let report = chain::verify(&*store, &ring).await.unwrap();
        assert!(report.is_intact(), "{:?}", report.problems);
        assert_eq!(report.rows_checked, 3);

        let (sink, writer) = AuditWriter::new(
            store.clone(),
            Arc::new(ring.clone()),
            8,
            8,
            true,
            std::time::Duration::ZERO,
        );
        let stop = tokio_util::sync::CancellationToken::new();
        let running = tokio::spawn(writer.run(stop.clone()));
        sink.record(row(4).event).await;
        stop.cancel();
        running.await.unwrap();
        let chains = store.audit_chains().await.unwrap();
        assert_eq!(chains.len(), 1);
        assert_eq!((chains[0].chain_id, &chains[0].prev), (1, &prev));
        let report = chain::verify(&*store, &ring).await.unwrap();
        assert!(report.is_intact(), "{:?}", report.problems);
        assert_eq!((report.rows_checked, report.chains.len()), (4, 2));
    }

    /// Appends pay for no chain index; a chain's head is read back from the newest row, not
    /// sorted out of the whole table.
    #[tokio::test]
    async fn appends_keep_no_chain_index_and_the_head_reads_back_in_table_order() {
        use sqlx::Row as _;
        let (_dir, store) = store().await;
        let indexes: Vec<String> = sqlx::query(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_events'",
        )
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("name"))
        .collect();
        assert!(
            !indexes.iter().any(|name| name.contains("chain")),
            "{indexes:?}"
        );
        let explain = format!(
            "EXPLAIN QUERY PLAN {}",
            crate::store::sql::audit_chains::CHAIN_HEAD
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(explain))
            .bind(1)
            .fetch_all(store.pool())
            .await
            .unwrap();
        let plan: Vec<String> = rows.iter().map(|r| r.get("detail")).collect();
        let plan = plan.join("; ");
        assert!(
            plan.contains("SCAN audit_events") && !plan.contains("TEMP B-TREE"),
            "{plan}"
        );
    }
}
