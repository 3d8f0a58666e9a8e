//! What a SQL backend gives the shared store: connections that run [`Stmt`]s, the two kinds
//! of transaction, the few statements whose text differs, and the audit appender.
//!
//! Values are bound through [`Value`], an owned list each backend hands to sqlx with its
//! concrete types. Generic code over sqlx's own traits would have to restate the executor,
//! argument and per-type `Encode`/`Type` bounds at every function (bounds on another type's
//! associated types are not implied); this way the shared code names no sqlx bound at all.

use std::{borrow::Cow, future::Future, ops::DerefMut, sync::Arc};

use super::Columns;
use crate::store::StoreResult;
use gatehouse_model::audit::{AuditRow, ChainStart, Checkpoint};

/// One bound parameter, typed even when NULL (PostgreSQL infers a parameter's type from it).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(Option<String>),
    Int(Option<i64>),
    Flag(Option<bool>),
    Bytes(Option<Vec<u8>>),
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(Some(v.to_owned()))
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(Some(v.clone()))
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(Some(v))
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        Value::Text(v.map(str::to_owned))
    }
}
impl From<Option<&String>> for Value {
    fn from(v: Option<&String>) -> Self {
        Value::Text(v.cloned())
    }
}
impl From<&Option<String>> for Value {
    fn from(v: &Option<String>) -> Self {
        Value::Text(v.clone())
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Value::Text(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Value::Int(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Flag(Some(v))
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(Some(v.to_vec()))
    }
}
impl From<&Vec<u8>> for Value {
    fn from(v: &Vec<u8>) -> Self {
        Value::Bytes(Some(v.clone()))
    }
}
impl From<&Option<Vec<u8>>> for Value {
    fn from(v: &Option<Vec<u8>>) -> Self {
        Value::Bytes(v.clone())
    }
}

/// A statement and its parameters (`$1`, `$2`, … in the order bound).
#[derive(Debug, Clone)]
pub struct Stmt {
    pub sql: Cow<'static, str>,
    pub args: Vec<Value>,
}

/// A statement with fixed text.
pub(crate) fn query(sql: &'static str) -> Stmt {
    Stmt {
        sql: Cow::Borrowed(sql),
        args: Vec::new(),
    }
}

/// A statement whose text was built at run time (only from Gatehouse's own fragments).
pub(crate) fn query_built(sql: String) -> Stmt {
    Stmt {
        sql: Cow::Owned(sql),
        args: Vec::new(),
    }
}

impl Stmt {
    pub fn bind(mut self, value: impl Into<Value>) -> Self {
        self.args.push(value.into());
        self
    }

    pub async fn execute<C: SqlConn + ?Sized>(self, conn: &mut C) -> sqlx::Result<u64> {
        conn.execute(self).await
    }

    pub async fn fetch_all<C: SqlConn + ?Sized>(self, conn: &mut C) -> sqlx::Result<Vec<C::Row>> {
        conn.fetch_all(self).await
    }

    pub async fn fetch_optional<C: SqlConn + ?Sized>(
        self,
        conn: &mut C,
    ) -> sqlx::Result<Option<C::Row>> {
        conn.fetch_optional(self).await
    }

    /// The one row the statement must return.
    pub async fn fetch_one<C: SqlConn + ?Sized>(self, conn: &mut C) -> sqlx::Result<C::Row> {
        conn.fetch_optional(self)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }
}

/// A connection of one backend (pooled or inside a transaction).
pub trait SqlConn: Send {
    type Row: Columns + Send + Sync + 'static;

    /// Rows touched.
    fn execute(&mut self, stmt: Stmt) -> impl Future<Output = sqlx::Result<u64>> + Send;
    fn fetch_all(
        &mut self,
        stmt: Stmt,
    ) -> impl Future<Output = sqlx::Result<Vec<Self::Row>>> + Send;
    fn fetch_optional(
        &mut self,
        stmt: Stmt,
    ) -> impl Future<Output = sqlx::Result<Option<Self::Row>>> + Send;
    /// Reads rows into records one at a time, never holding every row at once.
    fn fetch_records<T: Send>(
        &mut self,
        stmt: Stmt,
        capacity: usize,
        from: fn(&Self::Row) -> StoreResult<T>,
    ) -> impl Future<Output = StoreResult<Vec<T>>> + Send;
}

/// The statements whose text differs between backends, written once by [`dialect!`] with
/// the dialect's two-argument minimum and maximum.
#[derive(Debug)]
pub struct Dialect {
    /// Shortens an active key's validity (never lengthens it).
    pub shorten_key_expiry: &'static str,
    /// Shortens every other live secret of a client (never lengthens one).
    pub shorten_secret_expiry: &'static str,
    /// Moves a key's `last_used_at` forward only.
    pub record_key_usage: &'static str,
    /// Adds a delta to a quota window, never below zero; a stale window's delta is dropped.
    pub add_quota_usage: &'static str,
    /// After an import wrote explicit `seq`s: new rows are numbered after the highest.
    pub audit_seq_after_import: &'static str,
}

/// A [`Dialect`] from the names of the two-argument `MIN` and `MAX` (`LEAST`/`GREATEST` on
/// PostgreSQL, whose `MIN`/`MAX` are aggregates only) and how the audit numbering moves past
/// imported rows.
macro_rules! dialect {
    ($least:literal, $greatest:literal, $audit_seq_after_import:literal) => {
        $crate::store::sql::Dialect {
            shorten_key_expiry: concat!(
                "UPDATE api_keys SET expires_at = ",
                $least,
                "(COALESCE(expires_at, $2), $2) WHERE id = $1 AND revoked_at IS NULL"
            ),
            shorten_secret_expiry: concat!(
                "UPDATE client_secrets SET expires_at = ",
                $least,
                "(COALESCE(expires_at, $2), $2) WHERE client = $1 AND revoked_at IS NULL"
            ),
            record_key_usage: concat!(
                "UPDATE api_keys SET last_used_at = ",
                $greatest,
                "(COALESCE(last_used_at, 0), $2) WHERE id = $1"
            ),
            // The SET expressions read the row as it was, so `window_start` is compared
            // before it moves.
            add_quota_usage: concat!(
                "INSERT INTO quota_usage (policy_id, subject, window_start, used) \
                 VALUES ($1, $2, $3, ",
                $greatest,
                "($4, 0)) ON CONFLICT (policy_id, subject) DO UPDATE SET used = CASE \
                 WHEN excluded.window_start = quota_usage.window_start THEN ",
                $greatest,
                "(quota_usage.used + $4, 0) \
                 WHEN excluded.window_start > quota_usage.window_start THEN excluded.used \
                 ELSE quota_usage.used END, window_start = ",
                $greatest,
                "(quota_usage.window_start, excluded.window_start)"
            ),
            audit_seq_after_import: $audit_seq_after_import,
        }
    };
}
pub(crate) use dialect;

/// One SQL backend: everything [`super::SqlStore`] cannot write once.
pub trait SqlBackend: Send + Sync + 'static {
    type Connection: SqlConn + ?Sized;
    /// A connection taken from the pool for one or more statements.
    type Pooled: DerefMut<Target = Self::Connection> + Send;
    /// A transaction; dropped without [`SqlBackend::commit`], it rolls back.
    type Tx: DerefMut<Target = Self::Connection> + Send;

    const DIALECT: &'static Dialect;

    fn acquire(&self) -> impl Future<Output = StoreResult<Self::Pooled>> + Send;
    /// A write transaction that may read first: writers are serialised, so read-then-write
    /// code sees no concurrent change between its read and its write.
    fn begin_write(&self) -> impl Future<Output = StoreResult<Self::Tx>> + Send;
    /// A read-only transaction whose statements all see one snapshot.
    fn begin_snapshot(&self) -> impl Future<Output = StoreResult<Self::Tx>> + Send;
    fn commit(tx: Self::Tx) -> impl Future<Output = StoreResult<()>> + Send;

    /// See [`crate::store::Store::append_audit`].
    fn append_audit(
        &self,
        rows: Arc<Vec<AuditRow>>,
        checkpoint: Checkpoint,
        opens: Option<ChainStart>,
    ) -> impl Future<Output = StoreResult<Vec<i64>>> + Send;
}

/// Implements [`SqlConn`] for one backend's connection type: binds each [`Value`] with its
/// concrete sqlx type and runs the statement.
macro_rules! sql_conn {
    ($db:ty, $conn:ty, $row:ty) => {
        fn bound(
            stmt: $crate::store::sql::Stmt,
        ) -> sqlx::query::Query<'static, $db, <$db as sqlx::Database>::Arguments> {
            use $crate::store::sql::Value;
            let mut query = sqlx::query(sqlx::AssertSqlSafe(stmt.sql));
            for value in stmt.args {
                query = match value {
                    Value::Text(v) => query.bind(v),
                    Value::Int(v) => query.bind(v),
                    Value::Flag(v) => query.bind(v),
                    Value::Bytes(v) => query.bind(v),
                };
            }
            query
        }

        impl $crate::store::sql::SqlConn for $conn {
            type Row = $row;

            fn execute(
                &mut self,
                stmt: $crate::store::sql::Stmt,
            ) -> impl std::future::Future<Output = sqlx::Result<u64>> + Send {
                async move { Ok(bound(stmt).execute(self).await?.rows_affected()) }
            }

            fn fetch_all(
                &mut self,
                stmt: $crate::store::sql::Stmt,
            ) -> impl std::future::Future<Output = sqlx::Result<Vec<$row>>> + Send {
                bound(stmt).fetch_all(self)
            }

            fn fetch_optional(
                &mut self,
                stmt: $crate::store::sql::Stmt,
            ) -> impl std::future::Future<Output = sqlx::Result<Option<$row>>> + Send {
                bound(stmt).fetch_optional(self)
            }

            fn fetch_records<T: Send>(
                &mut self,
                stmt: $crate::store::sql::Stmt,
                capacity: usize,
                from: fn(&$row) -> $crate::store::StoreResult<T>,
            ) -> impl std::future::Future<Output = $crate::store::StoreResult<Vec<T>>> + Send {
                async move {
                    use futures_util::TryStreamExt;
                    let mut records = Vec::with_capacity(capacity);
                    let mut rows = bound(stmt).fetch(self);
                    while let Some(row) = rows.try_next().await? {
                        records.push(from(&row)?);
                    }
                    Ok(records)
                }
            }
        }
    };
}
pub(crate) use sql_conn;
