//! The embedded SQLite migrations, in order (files in `migrations/sqlite`).

use sqlx::{
    SqlSafeStr,
    migrate::{Migration, MigrationType, Migrator},
};

pub(super) fn migrator() -> Migrator {
    let migration = |version, name: &'static str, sql: &'static str| {
        Migration::new(
            version,
            name.into(),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )
    };
    Migrator::with_migrations(vec![
        migration(
            1,
            "initial",
            include_str!("../../../../../migrations/sqlite/0001_initial.sql"),
        ),
        migration(
            2,
            "policies",
            include_str!("../../../../../migrations/sqlite/0002_policies.sql"),
        ),
        migration(
            3,
            "tool_pins",
            include_str!("../../../../../migrations/sqlite/0003_tool_pins.sql"),
        ),
        migration(
            4,
            "oauth",
            include_str!("../../../../../migrations/sqlite/0004_oauth.sql"),
        ),
        migration(
            5,
            "users",
            include_str!("../../../../../migrations/sqlite/0005_users.sql"),
        ),
        migration(
            6,
            "audit_evidence",
            include_str!("../../../../../migrations/sqlite/0006_audit_evidence.sql"),
        ),
        migration(
            7,
            "reload_report",
            include_str!("../../../../../migrations/sqlite/0007_reload_report.sql"),
        ),
        migration(
            8,
            "replicas",
            include_str!("../../../../../migrations/sqlite/0008_replicas.sql"),
        ),
        migration(
            9,
            "audit_chains",
            include_str!("../../../../../migrations/sqlite/0009_audit_chains.sql"),
        ),
        migration(
            10,
            "audit_chain_index",
            include_str!("../../../../../migrations/sqlite/0010_audit_chain_index.sql"),
        ),
    ])
}
