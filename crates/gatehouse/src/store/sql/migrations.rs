//! The embedded migrations of each backend, in order (files in `migrations/<backend>`). The
//! two folders hold the same versions under the same names, so "schema version N" means the
//! same tables on both (a unit test compares the folders).

use sqlx::{
    SqlSafeStr,
    migrate::{Migration, MigrationType, Migrator},
};

/// One version's file of `$backend`, as a [`Migration`].
macro_rules! migration {
    ($backend:literal, $version:literal, $name:literal, $file:literal) => {
        Migration::new(
            $version,
            $name.into(),
            MigrationType::Simple,
            include_str!(concat!("../../../../../migrations/", $backend, "/", $file))
                .into_sql_str(),
            false,
        )
    };
}

/// Every version of `$backend`: the one list both backends follow.
macro_rules! migrations {
    ($backend:literal) => {
        vec![
            migration!($backend, 1, "initial", "0001_initial.sql"),
            migration!($backend, 2, "policies", "0002_policies.sql"),
            migration!($backend, 3, "tool_pins", "0003_tool_pins.sql"),
            migration!($backend, 4, "oauth", "0004_oauth.sql"),
            migration!($backend, 5, "users", "0005_users.sql"),
            migration!($backend, 6, "audit_evidence", "0006_audit_evidence.sql"),
            migration!($backend, 7, "reload_report", "0007_reload_report.sql"),
            migration!($backend, 8, "replicas", "0008_replicas.sql"),
            migration!($backend, 9, "audit_chains", "0009_audit_chains.sql"),
            migration!(
                $backend,
                10,
                "audit_chain_index",
                "0010_audit_chain_index.sql"
            ),
            migration!($backend, 11, "admin_api", "0011_admin_api.sql"),
            migration!($backend, 12, "audit_retention", "0012_audit_retention.sql"),
            migration!($backend, 13, "dpop_bindings", "0013_dpop_bindings.sql"),
            migration!($backend, 14, "stdio_servers", "0014_stdio_servers.sql"),
            migration!($backend, 15, "upstream_auth", "0015_upstream_auth.sql"),
            migration!($backend, 16, "audit_rule", "0016_audit_rule.sql"),
            migration!(
                $backend,
                17,
                "tool_pin_definitions",
                "0017_tool_pin_definitions.sql"
            ),
            migration!($backend, 18, "virtual_servers", "0018_virtual_servers.sql"),
        ]
    };
}

pub(crate) fn sqlite() -> Migrator {
    Migrator::with_migrations(migrations!("sqlite"))
}

pub(crate) fn postgres() -> Migrator {
    Migrator::with_migrations(migrations!("postgres"))
}

/// The schema version this build migrates to (export and import check it).
pub(crate) fn latest_version() -> i64 {
    sqlite().iter().map(|m| m.version).max().unwrap_or(0)
}

/// Where a database stands against this build's migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Versions recorded as applied, in order.
    pub applied: Vec<i64>,
    /// Versions this build would apply, with their names.
    pub pending: Vec<(i64, String)>,
}

/// Reads which migrations `url`'s database has applied and, unless `check_only`, applies
/// the pending ones; the status is as it was before applying. The connections are closed
/// when it returns.
pub(crate) async fn migrate(
    url: &str,
    check_only: bool,
) -> crate::store::StoreResult<MigrationStatus> {
    use crate::store::Backend;
    match Backend::of(url)? {
        Backend::Sqlite => {
            let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url)?
                .create_if_missing(!check_only);
            if check_only && !options.get_filename().exists() {
                // No file yet: everything is pending, and a check creates nothing.
                return Ok(MigrationStatus {
                    applied: Vec::new(),
                    pending: sqlite()
                        .iter()
                        .map(|m| (m.version, m.description.to_string()))
                        .collect(),
                });
            }
            let pool = sqlx::SqlitePool::connect_with(options).await?;
            let result = status_and_run(&pool, sqlite(), check_only).await;
            pool.close().await;
            result
        }
        Backend::Postgres => {
            let options = crate::store::postgres::connect_options(url)?;
            let pool = sqlx::PgPool::connect_with(options).await?;
            let result = status_and_run(&pool, postgres(), check_only).await;
            pool.close().await;
            result
        }
    }
}

async fn status_and_run<DB>(
    pool: &sqlx::Pool<DB>,
    migrator: Migrator,
    check_only: bool,
) -> crate::store::StoreResult<MigrationStatus>
where
    DB: sqlx::Database,
    <DB as sqlx::Database>::Connection: sqlx::migrate::Migrate,
    for<'c> &'c mut <DB as sqlx::Database>::Connection: sqlx::Executor<'c, Database = DB>,
    i64: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    bool: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'c> &'c str: sqlx::ColumnIndex<<DB as sqlx::Database>::Row>,
    <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
{
    use sqlx::Row;
    // No table yet (a new database) reads as nothing applied; `--check` creates nothing.
    let applied: Vec<i64> =
        match sqlx::query("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(pool)
            .await
        {
            Ok(rows) => rows
                .iter()
                .filter(|row| row.try_get::<bool, _>("success").unwrap_or(false))
                .map(|row| row.try_get::<i64, _>("version"))
                .collect::<sqlx::Result<_>>()?,
            Err(sqlx::Error::Database(_)) => Vec::new(),
            Err(other) => return Err(other.into()),
        };
    let pending = migrator
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .map(|m| (m.version, m.description.to_string()))
        .collect();
    if !check_only {
        migrator.run(pool).await?;
    }
    Ok(MigrationStatus { applied, pending })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn folder(backend: &str) -> Vec<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../migrations")
            .join(backend);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn listed(migrator: &Migrator) -> Vec<String> {
        migrator
            .iter()
            .map(|m| format!("{:04}_{}.sql", m.version, m.description))
            .collect()
    }

    /// A migration added to one backend only (or under another name) fails here: the two
    /// folders and the embedded lists must name the same versions.
    #[test]
    fn both_backends_list_the_same_versions_under_the_same_names() {
        assert_eq!(folder("sqlite"), folder("postgres"));
        assert_eq!(folder("sqlite"), listed(&sqlite()));
        assert_eq!(folder("postgres"), listed(&postgres()));
        assert_eq!(latest_version(), 18);
    }
}
