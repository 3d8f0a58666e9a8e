//! PostgreSQL (15 and later), for several replicas sharing one database.
//!
//! What differs from SQLite: writers that read first are serialised by a transaction-scoped
//! advisory lock (as SQLite's single writer serialises them), the snapshot read is one
//! REPEATABLE READ transaction, two-argument MIN/MAX are LEAST/GREATEST, and the audit trail
//! has its own appender (`postgres/audit_log.rs`).

use sqlx::{
    PgPool, Postgres, Transaction,
    pool::PoolConnection,
    postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgRow},
};
use std::{str::FromStr, sync::Arc, time::Duration};

use super::sql::{Dialect, SqlBackend, SqlStore, dialect, sql_conn};
use super::{StoreError, StoreResult};
use gatehouse_model::audit::{AuditRow, ChainStart, Checkpoint};

mod audit_log;

/// The store on a PostgreSQL database.
pub type PostgresStore = SqlStore<PostgresBackend>;

/// Connections per process unless the configuration says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u32 = crate::config::DEFAULT_DATABASE_MAX_CONNECTIONS;

/// The advisory lock every write transaction takes (an arbitrary key of Gatehouse's own).
const WRITE_LOCK: i64 = 0x6761_7465_0001;

/// How long a writer waits for another's lock, as SQLite's busy timeout.
const LOCK_TIMEOUT: &str = "10s";

pub struct PostgresBackend {
    pool: PgPool,
    audit_log: audit_log::AuditLog,
}

sql_conn!(Postgres, PgConnection, PgRow);

impl SqlStore<PostgresBackend> {
    /// Connects and runs pending migrations (sqlx's migrator holds an advisory lock, so
    /// replicas starting together are safe).
    pub async fn open(url: &str, max_connections: u32) -> StoreResult<Self> {
        Self::open_with_audit(url, max_connections, true).await
    }

    /// [`Self::open`] for a server whose `audit.durable` is `durable`: without it the audit
    /// appender commits asynchronously (`audit_log.rs`).
    pub async fn open_with_audit(
        url: &str,
        max_connections: u32,
        durable: bool,
    ) -> StoreResult<Self> {
        let options = connect_options(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(|err| unreachable_database(url, err))?;
        super::sql::migrations::postgres().run(&pool).await?;
        let audit_log = audit_log::AuditLog::new(options, pool.clone(), durable);
        Ok(SqlStore::new(PostgresBackend { pool, audit_log }))
    }

    #[cfg(test)]
    pub(crate) fn pool(&self) -> &PgPool {
        &self.b.pool
    }
}

pub(crate) fn connect_options(url: &str) -> StoreResult<PgConnectOptions> {
    PgConnectOptions::from_str(url).map_err(|_| {
        StoreError::Unsupported(format!(
            "the PostgreSQL URL {} cannot be read",
            redacted(url)
        ))
    })
}

/// The URL without its password (or its query, where options could carry one), for
/// messages and logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(unreadable URL)".to_owned();
    };
    let rest = rest.split_once('?').map_or(rest, |(before, _)| before);
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}@{host}{path}")
        }
        None => format!("{scheme}://{authority}{path}"),
    }
}

fn unreachable_database(url: &str, err: sqlx::Error) -> StoreError {
    StoreError::Unreachable {
        url: redacted(url),
        reason: err.to_string(),
    }
}

const POSTGRES: Dialect = dialect!(
    "LEAST",
    "GREATEST",
    "SELECT setval(pg_get_serial_sequence('audit_events', 'seq'), \
     COALESCE((SELECT MAX(seq) FROM audit_events), 0) + 1, false)"
);

impl SqlBackend for PostgresBackend {
    type Connection = PgConnection;
    type Pooled = PoolConnection<Postgres>;
    type Tx = Transaction<'static, Postgres>;

    const DIALECT: &'static Dialect = &POSTGRES;

    async fn acquire(&self) -> StoreResult<Self::Pooled> {
        Ok(self.pool.acquire().await?)
    }

    async fn begin_write(&self) -> StoreResult<Self::Tx> {
        let mut tx = self.pool.begin().await?;
        // One statement: the lock wait is bounded like SQLite's busy timeout, then every
        // writer that reads first runs alone, as on SQLite (no serialization failures to
        // retry, the `races` contract tests hold unchanged).
        sqlx::query("SELECT set_config('lock_timeout', $1, true), pg_advisory_xact_lock($2)")
            .bind(LOCK_TIMEOUT)
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    async fn begin_snapshot(&self) -> StoreResult<Self::Tx> {
        // READ COMMITTED would take a new snapshot per statement and mix generations.
        Ok(self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?)
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
        self.audit_log
            .append(&rows, &checkpoint, opens.as_ref())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redacted_url_keeps_everything_but_the_password() {
        let shown = redacted("postgres://gatehouse:s3cret@db.internal:5433/gh?sslmode=require");
        assert_eq!(shown, "postgres://gatehouse@db.internal:5433/gh");
        let shown = redacted("postgresql://db.internal/gh?password=s3cret");
        assert_eq!(shown, "postgresql://db.internal/gh");
    }

    #[tokio::test]
    async fn an_unreachable_database_is_named_without_its_password() {
        let port = gatehouse_testkit::process::free_loopback_port().unwrap();
        let url = format!("postgres://gatehouse:s3cret@127.0.0.1:{port}/gh");
        let Err(err) = PostgresStore::open(&url, 1).await else {
            panic!("opened a database nobody serves");
        };
        let message = err.to_string();
        assert!(
            message.contains(&format!(
                "database unreachable (postgres://gatehouse@127.0.0.1:{port}/gh)"
            )),
            "{message}"
        );
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[test]
    fn each_dialect_names_its_own_two_argument_min_and_max() {
        let sqlite = crate::store::sqlite::dialect_for_tests();
        for (pg, lite) in [
            (POSTGRES.shorten_key_expiry, sqlite.shorten_key_expiry),
            (POSTGRES.shorten_secret_expiry, sqlite.shorten_secret_expiry),
            (POSTGRES.record_key_usage, sqlite.record_key_usage),
            (POSTGRES.add_quota_usage, sqlite.add_quota_usage),
        ] {
            assert!(!pg.contains("MIN(") && !pg.contains("MAX("), "{pg}");
            assert!(
                !lite.contains("LEAST(") && !lite.contains("GREATEST("),
                "{lite}"
            );
            assert_eq!(
                pg.replace("LEAST(", "MIN(").replace("GREATEST(", "MAX("),
                lite,
                "the two texts differ only in the function names"
            );
        }
    }
}
