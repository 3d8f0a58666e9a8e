//! The two backends' schemas side by side: every table has the same columns with the same
//! nullability and kind, and names list in byte order whatever the database's locale.

use super::*;
use sqlx::Row;
use std::collections::BTreeMap;

/// (table, column) → (not null, kind), kind one of `int`, `text`, `bytes`; a PostgreSQL
/// BOOLEAN counts as `int` (SQLite keeps flags as integers).
type Columns = BTreeMap<(String, String), (bool, &'static str)>;

fn kind(declared: &str) -> &'static str {
    match declared.to_ascii_lowercase().as_str() {
        "integer" | "bigint" | "boolean" => "int",
        "text" => "text",
        "blob" | "bytea" => "bytes",
        other => panic!("a column type neither backend should use: {other}"),
    }
}

async fn sqlite_columns(url: &str) -> Columns {
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let rows = sqlx::query(
        "SELECT m.name AS tbl, p.name AS col, p.type AS declared, p.\"notnull\" AS nn, p.pk AS pk \
         FROM sqlite_master m, pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let columns = rows
        .iter()
        .map(|r| {
            // A primary-key column holds no NULL on either backend.
            let not_null = r.get::<i64, _>("nn") == 1 || r.get::<i64, _>("pk") > 0;
            let key = (r.get::<String, _>("tbl"), r.get::<String, _>("col"));
            (key, (not_null, kind(&r.get::<String, _>("declared"))))
        })
        .collect();
    pool.close().await;
    columns
}

async fn postgres_columns(url: &str) -> Columns {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let rows = sqlx::query(
        "SELECT table_name::text AS tbl, column_name::text AS col, data_type::text AS declared, \
         is_nullable::text AS nullable FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let columns = rows
        .iter()
        .map(|r| {
            let key = (r.get::<String, _>("tbl"), r.get::<String, _>("col"));
            let not_null = r.get::<String, _>("nullable") == "NO";
            (key, (not_null, kind(&r.get::<String, _>("declared"))))
        })
        .collect();
    pool.close().await;
    columns
}

#[tokio::test]
async fn both_schemas_have_the_same_tables_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("schema.db").display());
    gatehouse::store::migrate(&sqlite_url, false).await.unwrap();
    let sqlite = sqlite_columns(&sqlite_url).await;
    let postgres = postgres_columns(&crate::helpers::postgres_database()).await;
    assert!(sqlite.len() > 100, "read {} SQLite columns", sqlite.len());
    let differences: Vec<String> = sqlite
        .keys()
        .chain(postgres.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|key| sqlite.get(*key) != postgres.get(*key))
        .map(|key| {
            format!(
                "{}.{}: sqlite {:?}, postgres {:?}",
                key.0,
                key.1,
                sqlite.get(key),
                postgres.get(key)
            )
        })
        .collect();
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// The test server's default collation is ICU `en-US` (`a` before `B`); lists must still come
/// out in byte order, as on SQLite.
#[tokio::test]
async fn names_list_in_byte_order_whatever_the_locale() {
    each_backend(|store| async move {
        for name in ["a", "B", "_x"] {
            store.insert_server(&server(name)).await.unwrap();
            store.insert_client(&client(name)).await.unwrap();
        }
        let servers: Vec<String> = store
            .list_servers()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(servers, ["B", "_x", "a"]);
        let clients: Vec<String> = store
            .list_clients()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(clients, ["B", "_x", "a"]);
    })
    .await;
}
