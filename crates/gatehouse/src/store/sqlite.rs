//! The embedded default: one SQLite file in WAL mode.
//!
//! Only what differs from other SQL backends lives here (opening, transactions, the dialect,
//! the appender, migrations); the store itself is [`super::sql::SqlStore`].

use sqlx::{
    Sqlite, SqlitePool, Transaction,
    pool::PoolConnection,
    sqlite::{
        SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
        SqliteSynchronous,
    },
};
use std::{str::FromStr, sync::Arc, time::Duration};

use super::sql::{Dialect, SqlBackend, SqlStore, dialect, sql_conn};
use super::{StoreError, StoreResult};
use gatehouse_model::audit::{AuditRow, ChainStart, Checkpoint};

mod audit_log;

/// The store on one SQLite file.
pub type SqliteStore = SqlStore<SqliteBackend>;

pub struct SqliteBackend {
    pool: SqlitePool,
    /// The audit trail's own appending connection (see `audit_log.rs`).
    audit_log: audit_log::AuditLog,
}

sql_conn!(Sqlite, SqliteConnection, SqliteRow);

impl SqlStore<SqliteBackend> {
    pub async fn open(url: &str) -> StoreResult<Self> {
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::Unsupported(
                "an in-memory SQLite database would lose the audit trail and every key at exit; \
                 use a file (sqlite:///path/gatehouse.db)"
                    .into(),
            ));
        }
        let busy_timeout = Duration::from_secs(10);
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // The CLI and a running server write the same file; wait instead of failing.
            .busy_timeout(busy_timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone())
            .await?;
        super::sql::migrations::sqlite().run(&pool).await?;
        let audit_log = audit_log::AuditLog::open(options.get_filename(), busy_timeout)?;
        Ok(SqlStore::new(SqliteBackend { pool, audit_log }))
    }

    #[cfg(test)]
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.b.pool
    }
}

// A rowid is always numbered after the highest one: nothing to move after an import.
const SQLITE: Dialect = dialect!("MIN", "MAX", "SELECT 1");

#[cfg(test)]
pub(crate) fn dialect_for_tests() -> &'static Dialect {
    &SQLITE
}

impl SqlBackend for SqliteBackend {
    type Connection = SqliteConnection;
    type Pooled = PoolConnection<Sqlite>;
    type Tx = Transaction<'static, Sqlite>;

    const DIALECT: &'static Dialect = &SQLITE;

    async fn acquire(&self) -> StoreResult<Self::Pooled> {
        Ok(self.pool.acquire().await?)
    }

    async fn begin_write(&self) -> StoreResult<Self::Tx> {
        // BEGIN IMMEDIATE takes the write lock up front, so read-then-write transactions
        // cannot fail halfway with SQLITE_BUSY.
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn begin_snapshot(&self) -> StoreResult<Self::Tx> {
        // A read transaction sees one WAL snapshot across its statements.
        Ok(self.pool.begin().await?)
    }

    async fn commit(tx: Self::Tx) -> StoreResult<()> {
        Ok(tx.commit().await?)
    }

    async fn append_audit(
        &self,
        rows: Arc<Vec<AuditRow>>,
        checkpoint: Checkpoint,
        opens: Option<ChainStart>,
    ) -> StoreResult<Vec<i64>> {
        self.audit_log.append(rows, checkpoint, opens).await
    }
}
