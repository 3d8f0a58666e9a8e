//! The database commands: `gatehouse migrate [--check]` on both backends, and `gatehouse
//! database export | gatehouse database import` moving a deployment from SQLite to PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_testkit::postgres::Postgres;
use serde_json::Value;
use std::process::{Command, Output};

fn gatehouse(dir: &std::path::Path, database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--data-dir")
        .arg(dir)
        .args(["--output", "json"])
        .args(args)
        .env("GATEHOUSE_DATABASE_URL", database_url)
        .env_remove("GATEHOUSE_MASTER_KEY")
        .output()
        .unwrap()
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
        panic!(
            "{err}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn versions(report: &Value, field: &str) -> usize {
    report[field].as_array().unwrap().len()
}

/// The migrations this build ships for `backend` (the files in `migrations/<backend>`): how
/// many, and the newest version.
fn shipped(backend: &str) -> (usize, u64) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../migrations")
        .join(backend);
    let versions: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            name.split('_').next().unwrap().parse().unwrap()
        })
        .collect();
    (versions.len(), versions.into_iter().max().unwrap())
}

/// A new database: `--check` lists every migration as pending, fails, and creates nothing;
/// `migrate` applies them; then `--check` passes.
fn check_then_migrate(database_url: &str, backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let checked = gatehouse(dir.path(), database_url, &["migrate", "--check"]);
    assert_eq!(
        checked.status.code(),
        Some(1),
        "pending migrations fail the check"
    );
    let checked = report(&checked);
    assert_eq!(checked["backend"], backend);
    let (count, latest) = shipped(backend);
    assert!(count >= 10, "the folder lists the migrations");
    assert_eq!(versions(&checked, "pending"), count, "{checked}");
    assert_eq!(versions(&checked, "applied"), 0);

    let again = report(&gatehouse(
        dir.path(),
        database_url,
        &["migrate", "--check"],
    ));
    assert_eq!(
        versions(&again, "pending"),
        count,
        "the check changed nothing"
    );

    let migrated = gatehouse(dir.path(), database_url, &["migrate"]);
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    assert_eq!(versions(&report(&migrated), "pending"), count);

    let done = gatehouse(dir.path(), database_url, &["migrate", "--check"]);
    assert!(done.status.success());
    let done = report(&done);
    assert_eq!(versions(&done, "pending"), 0, "{done}");
    assert_eq!(versions(&done, "applied"), count);
    assert_eq!(done["schema"], latest);
}

#[test]
fn migrate_checks_and_applies_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    check_then_migrate(&url, "sqlite");
}

#[test]
fn migrate_checks_and_applies_on_postgres() {
    let url = Postgres::shared().empty_database();
    check_then_migrate(&url, "postgres");
}

/// Records made with the CLI on SQLite (their operator events in the audit trail) move to
/// PostgreSQL; the import verifies the trail, and the moved store lists the same records.
#[test]
fn export_then_import_moves_a_deployment_to_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
    for args in [
        &["servers", "add", "demo", "--url", "http://127.0.0.1:9/mcp"][..],
        &["clients", "create", "agent"],
        &["keys", "create", "--client", "agent"],
    ] {
        let out = gatehouse(dir.path(), &sqlite, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let exported = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["database", "export"])
        .env("GATEHOUSE_DATABASE_URL", &sqlite)
        .env_remove("GATEHOUSE_MASTER_KEY")
        .output()
        .unwrap();
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &exported.stdout).unwrap();

    let postgres = Postgres::shared().empty_database();
    let imported = gatehouse(
        dir.path(),
        &postgres,
        &["database", "import", file.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&imported.stderr);
    assert!(imported.status.success(), "{stderr}");
    assert!(stderr.contains("audit verify: 3 chain(s)"), "{stderr}");

    let listed = |url: &str| report(&gatehouse(dir.path(), url, &["keys", "list"]));
    assert_eq!(listed(&postgres), listed(&sqlite));
    let again = gatehouse(
        dir.path(),
        &postgres,
        &["database", "import", file.to_str().unwrap()],
    );
    assert_eq!(
        again.status.code(),
        Some(1),
        "a second import into a used store is refused"
    );
}

/// A write with the database down fails at once with what was unreachable, says nothing
/// changed, exits 1, and never prints the URL's password.
#[test]
fn a_write_with_postgres_down_fails_and_says_nothing_was_changed() {
    let pg = Postgres::private().unwrap();
    let database = pg.empty_database();
    let with_password = database.replacen("gatehouse@", "gatehouse:not-shown-pw@", 1);
    let dir = tempfile::tempdir().unwrap();
    let migrated = gatehouse(dir.path(), &with_password, &["migrate"]);
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let created = gatehouse(dir.path(), &with_password, &["clients", "create", "agent"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );

    pg.stop().unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["keys", "create", "--client", "agent"])
        .env("GATEHOUSE_DATABASE_URL", &with_password)
        .env_remove("GATEHOUSE_MASTER_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    // 5: unreachable, nothing changed (docs/cli.md), as through the admin API.
    assert_eq!(refused.status.code(), Some(5), "{stderr}");
    let shown = database.trim_start_matches("postgres://");
    assert!(
        stderr.starts_with(&format!(
            "error: database unreachable (postgres://{shown}): "
        )),
        "{stderr}"
    );
    assert!(
        stderr.trim_end().ends_with("; nothing was changed"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not-shown-pw"),
        "the password was printed: {stderr}"
    );
    assert!(refused.stdout.is_empty(), "no key was printed");

    pg.restart().unwrap();
    let keys = gatehouse(dir.path(), &with_password, &["keys", "list"]);
    assert_eq!(report(&keys), serde_json::json!([]), "nothing was changed");
}
