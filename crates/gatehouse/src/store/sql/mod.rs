//! What every SQL backend shares: the [`Store`](crate::store::Store) itself
//! ([`SqlStore`]), reading records out of rows, JSON columns, and turning a statement's
//! result into the backend-neutral [`StoreError`]s. A backend keeps only its connections,
//! transactions, the few statements whose text differs and its audit appender
//! ([`SqlBackend`]).

mod admin_api;
pub(crate) mod audit_chains;
pub(crate) mod audit_details;
mod audit_read;
mod audit_retention;
mod backend;
mod meta;
pub(crate) mod migrations;
mod oauth;
mod pins;
mod records;
mod replicas;
mod rows;
pub(crate) mod transfer;
mod users;

pub(crate) use backend::{Dialect, SqlBackend, SqlConn, Stmt, Value, dialect, sql_conn};
pub use records::SqlStore;
pub(crate) use rows::*;

use serde::Serialize;
use sqlx::{ColumnIndex, Decode, Row, Type, error::ErrorKind};

use super::{StoreError, StoreResult};

/// The column types the records use, read by name from any backend's row.
pub trait Columns {
    fn text(&self, column: &str) -> sqlx::Result<String>;
    fn opt_text(&self, column: &str) -> sqlx::Result<Option<String>>;
    fn int(&self, column: &str) -> sqlx::Result<i64>;
    fn opt_int(&self, column: &str) -> sqlx::Result<Option<i64>>;
    fn flag(&self, column: &str) -> sqlx::Result<bool>;
    fn bytes(&self, column: &str) -> sqlx::Result<Vec<u8>>;
    fn opt_bytes(&self, column: &str) -> sqlx::Result<Option<Vec<u8>>>;
}

impl<R> Columns for R
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    bool: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, column: &str) -> sqlx::Result<String> {
        self.try_get(column)
    }
    fn opt_text(&self, column: &str) -> sqlx::Result<Option<String>> {
        self.try_get(column)
    }
    fn int(&self, column: &str) -> sqlx::Result<i64> {
        self.try_get(column)
    }
    fn opt_int(&self, column: &str) -> sqlx::Result<Option<i64>> {
        self.try_get(column)
    }
    fn flag(&self, column: &str) -> sqlx::Result<bool> {
        self.try_get(column)
    }
    fn bytes(&self, column: &str) -> sqlx::Result<Vec<u8>> {
        self.try_get(column)
    }
    fn opt_bytes(&self, column: &str) -> sqlx::Result<Option<Vec<u8>>> {
        self.try_get(column)
    }
}

/// The one place a failed write becomes a store error. A unique-key violation (a primary key,
/// a unique column or index) means the record exists: `Conflict`, the same for every backend,
/// since sqlx classifies each backend's codes into one [`ErrorKind`]. Anything else stays a
/// backend error.
pub(crate) fn write_error(err: sqlx::Error, kind: &'static str, name: &str) -> StoreError {
    match err.as_database_error().map(|db| db.kind()) {
        Some(ErrorKind::UniqueViolation) => StoreError::Conflict {
            kind,
            name: name.to_owned(),
        },
        _ => StoreError::Backend(err),
    }
}

/// [`write_error`] on a statement's result.
pub(crate) trait OrConflict<T> {
    fn or_conflict(self, kind: &'static str, name: &str) -> StoreResult<T>;
}

impl<T> OrConflict<T> for sqlx::Result<T> {
    fn or_conflict(self, kind: &'static str, name: &str) -> StoreResult<T> {
        self.map_err(|err| write_error(err, kind, name))
    }
}

/// A statement that must have touched a row: none means the record does not exist.
pub(crate) fn touched(
    rows_affected: u64,
    kind: &'static str,
    name: impl Into<String>,
) -> StoreResult<()> {
    if rows_affected == 0 {
        Err(StoreError::not_found(kind, name))
    } else {
        Ok(())
    }
}

/// The record of a lookup by key, or `NotFound`.
pub(crate) fn found<R, T>(
    row: Option<R>,
    kind: &'static str,
    name: &str,
    read: fn(&R) -> StoreResult<T>,
) -> StoreResult<T> {
    row.as_ref()
        .map(read)
        .unwrap_or_else(|| Err(StoreError::not_found(kind, name)))
}

/// Every row read into a record, or the first row that cannot be.
pub(crate) fn all<R, T>(rows: &[R], read: fn(&R) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(read).collect()
}

/// A JSON column's text.
pub(crate) fn to_json(value: &(impl Serialize + ?Sized)) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_error_without_a_database_cause_stays_a_backend_error() {
        let err = write_error(sqlx::Error::RowNotFound, "server", "demo");
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    }
}
