//! Moving a deployment between backends (`gatehouse database export` / `database import`): one
//! description of the tables and their column kinds drives both directions on both backends.
//!
//! Rows keep their bytes (hashes, sealed secrets, `seq`), so every audit chain verifies after
//! the move. Left out: `replicas` and `reload_report`, which running servers rewrite,
//! `audit_retention_lease`, held by a running server, and the admin API's `admin_tokens` and
//! `admin_idempotency`: a moved deployment gets new admin tokens (`gatehouse admin-tokens
//! create`), so none outlives the move unnoticed.

use base64::Engine;
use serde_json::{Map, Value as Json};

use super::Columns;
use super::backend::{SqlBackend, Value, query, query_built};
use super::records::SqlStore;
use crate::store::{StoreError, StoreResult};

/// How a column's values are kept and written in an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A JSON number.
    Int,
    /// A JSON string.
    Text,
    /// Base64 in a JSON string (`BLOB`/`BYTEA`).
    Bytes,
    /// A JSON boolean (an integer on SQLite, `BOOLEAN` on PostgreSQL).
    Flag,
}

/// One table: its name, its primary key (the export's row order) and its columns.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub order_by: &'static str,
    pub columns: &'static [(&'static str, Kind)],
}

use Kind::{Bytes, Flag, Int, Text};

/// Every exported table, referenced ones first.
pub const TABLES: &[Table] = &[
    Table {
        name: "meta",
        order_by: "key",
        columns: &[("key", Text), ("value", Int)],
    },
    Table {
        name: "servers",
        order_by: "name",
        columns: &[
            ("name", Text),
            ("url", Text),
            ("credential_header", Text),
            ("credential_sealed", Bytes),
            ("allow_anonymous", Flag),
            ("allow_unknown_methods", Flag),
            ("created_at", Int),
            ("pin_action", Text),
            ("upstream_auth", Text),
            ("upstream_secret_sealed", Bytes),
            ("identity_header", Text),
            ("stdio", Text),
            ("stdio_env_sealed", Bytes),
            ("members", Text),
        ],
    },
    Table {
        name: "clients",
        order_by: "name",
        columns: &[
            ("name", Text),
            ("description", Text),
            ("disabled_at", Int),
            ("created_at", Int),
            ("oauth", Text),
        ],
    },
    Table {
        name: "api_keys",
        order_by: "id",
        columns: &[
            ("id", Text),
            ("client", Text),
            ("label", Text),
            ("secret_hash", Bytes),
            ("tools", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("revoked_at", Int),
            ("rotated_from", Text),
            ("last_used_at", Int),
        ],
    },
    Table {
        name: "connections",
        order_by: "client, server",
        columns: &[
            ("client", Text),
            ("server", Text),
            ("tools", Text),
            ("resources", Flag),
            ("prompts", Flag),
            ("created_at", Int),
        ],
    },
    Table {
        name: "policies",
        order_by: "id",
        columns: &[
            ("id", Text),
            ("kind", Text),
            ("client", Text),
            ("server", Text),
            ("tools", Text),
            ("spec", Text),
            ("created_at", Int),
        ],
    },
    Table {
        name: "quota_usage",
        order_by: "policy_id, subject",
        columns: &[
            ("policy_id", Text),
            ("subject", Text),
            ("window_start", Int),
            ("used", Int),
        ],
    },
    Table {
        name: "tool_pins",
        order_by: "server, tool",
        columns: &[
            ("server", Text),
            ("tool", Text),
            ("approved_hash", Text),
            ("pending_hash", Text),
            ("approved_definition", Text),
            ("pending_definition", Text),
            ("pending_reason", Text),
            ("first_seen", Int),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "client_secrets",
        order_by: "id",
        columns: &[
            ("id", Text),
            ("client", Text),
            ("secret_hash", Bytes),
            ("created_at", Int),
            ("expires_at", Int),
            ("revoked_at", Int),
        ],
    },
    Table {
        name: "signing_keys",
        order_by: "kid",
        columns: &[
            ("kid", Text),
            ("alg", Text),
            ("private_sealed", Bytes),
            ("public_jwk", Text),
            ("created_at", Int),
            ("active_at", Int),
            ("retired_at", Int),
        ],
    },
    Table {
        name: "revoked_tokens",
        order_by: "jti",
        columns: &[("jti", Text), ("expires_at", Int), ("revoked_at", Int)],
    },
    Table {
        name: "refresh_tokens",
        order_by: "id",
        columns: &[
            ("id", Text),
            ("family", Text),
            ("token_hash", Bytes),
            ("client", Text),
            ("subject", Text),
            ("scope", Text),
            ("resource", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("consumed_at", Int),
            ("replaced_by", Text),
            ("revoked_at", Int),
            ("revocation_hash", Bytes),
        ],
    },
    Table {
        name: "authorization_codes",
        order_by: "code_hash",
        columns: &[
            ("code_hash", Bytes),
            ("client", Text),
            ("subject", Text),
            ("redirect_uri", Text),
            ("code_challenge", Text),
            ("scope", Text),
            ("resource", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("consumed_at", Int),
            ("family", Text),
            ("access_jti", Text),
            ("access_expires_at", Int),
            ("dpop_jkt", Text),
        ],
    },
    Table {
        name: "users",
        order_by: "id",
        columns: &[
            ("id", Text),
            ("username", Text),
            ("display_name", Text),
            ("password_hash", Text),
            ("idp", Text),
            ("idp_subject", Text),
            ("groups", Text),
            ("created_at", Int),
            ("disabled_at", Int),
            ("last_login_at", Int),
        ],
    },
    Table {
        name: "upstream_grants",
        order_by: "user_id, server",
        columns: &[
            ("user_id", Text),
            ("server", Text),
            ("access_sealed", Bytes),
            ("refresh_sealed", Bytes),
            ("expires_at", Int),
            ("scope", Text),
            ("created_at", Int),
            ("refreshed_at", Int),
        ],
    },
    Table {
        name: "group_connections",
        order_by: "group_name, server",
        columns: &[
            ("group_name", Text),
            ("server", Text),
            ("tools", Text),
            ("resources", Flag),
            ("prompts", Flag),
            ("created_at", Int),
        ],
    },
    Table {
        name: "audit_chains",
        order_by: "chain_id",
        columns: &[
            ("chain_id", Int),
            ("prev", Text),
            ("started_ms", Int),
            ("writer", Text),
            ("hash", Text),
        ],
    },
    Table {
        name: "audit_chain_checkpoints",
        order_by: "chain_id",
        columns: &[
            ("chain_id", Int),
            ("seq", Int),
            ("hash", Text),
            ("ts_ms", Int),
            ("mac", Text),
        ],
    },
    Table {
        name: "audit_seals",
        order_by: "chain_id, seq",
        columns: &[
            ("chain_id", Int),
            ("seq", Int),
            ("hash", Text),
            ("upto_seq", Int),
            ("bundle", Text),
            ("bundle_digest", Text),
            ("sealed_ms", Int),
            ("signature", Text),
        ],
    },
    Table {
        name: "audit_events",
        order_by: "seq",
        columns: &[
            ("seq", Int),
            ("chain_id", Int),
            ("chain_seq", Int),
            ("ts_ms", Int),
            ("request_id", Text),
            ("client", Text),
            ("credential_id", Text),
            ("user_id", Text),
            ("ip", Text),
            ("country", Text),
            ("server", Text),
            ("http_method", Text),
            ("rpc_method", Text),
            ("tool", Text),
            ("decision", Text),
            ("reason", Text),
            ("status", Int),
            ("upstream_status", Int),
            ("latency_us", Int),
            ("outcome", Text),
            ("response_bytes", Int),
            ("batch", Text),
            ("rule", Text),
            ("hash_version", Int),
            ("prev_hash", Text),
            ("hash", Text),
        ],
    },
];

/// The table named `name`.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

fn column_list(table: &Table) -> String {
    table
        .columns
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn to_json(row: &impl Columns, table: &Table) -> StoreResult<Map<String, Json>> {
    let mut out = Map::with_capacity(table.columns.len());
    for &(name, kind) in table.columns {
        let value = match kind {
            Int => row.opt_int(name)?.map_or(Json::Null, Json::from),
            Text => row.opt_text(name)?.map_or(Json::Null, Json::from),
            Bytes => row.opt_bytes(name)?.map_or(Json::Null, |bytes| {
                Json::from(base64::engine::general_purpose::STANDARD.encode(bytes))
            }),
            Flag => Json::from(row.flag(name)?),
        };
        out.insert(name.to_owned(), value);
    }
    Ok(out)
}

fn from_json(table: &Table, row: &Map<String, Json>) -> StoreResult<Vec<Value>> {
    let bad =
        |column: &str, why: &str| StoreError::Import(format!("{}.{column}: {why}", table.name));
    if row.len() != table.columns.len() {
        return Err(StoreError::Import(format!(
            "a {} row has {} columns, not {}",
            table.name,
            row.len(),
            table.columns.len()
        )));
    }
    table
        .columns
        .iter()
        .map(|&(name, kind)| {
            let json = row.get(name).ok_or_else(|| bad(name, "missing"))?;
            Ok(match (kind, json) {
                (Int, Json::Null) => Value::Int(None),
                (Text, Json::Null) => Value::Text(None),
                (Bytes, Json::Null) => Value::Bytes(None),
                (Int, Json::Number(n)) => {
                    Value::Int(Some(n.as_i64().ok_or_else(|| bad(name, "not an integer"))?))
                }
                (Text, Json::String(s)) => Value::Text(Some(s.clone())),
                (Bytes, Json::String(s)) => Value::Bytes(Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .map_err(|_| bad(name, "not base64"))?,
                )),
                (Flag, Json::Bool(b)) => Value::Flag(Some(*b)),
                _ => return Err(bad(name, "of the wrong type")),
            })
        })
        .collect()
}

/// One item of an import, in file order.
#[derive(Debug)]
pub enum ImportItem {
    Row(&'static Table, Map<String, Json>),
    /// The file's last line: how many rows of each table it holds.
    End(Map<String, Json>),
}

#[async_trait::async_trait]
impl<B: SqlBackend> crate::store::transfer::TransferStore for SqlStore<B> {
    async fn export_page(
        &self,
        table: &'static Table,
        offset: i64,
        limit: i64,
    ) -> StoreResult<Vec<Map<String, Json>>> {
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {} LIMIT $1 OFFSET $2",
            column_list(table),
            table.name,
            table.order_by
        );
        let rows = query_built(sql)
            .bind(limit)
            .bind(offset)
            .fetch_all(&mut *self.b.acquire().await?)
            .await?;
        rows.iter().map(|row| to_json(row, table)).collect()
    }

    async fn import(
        &self,
        items: &mut (dyn Iterator<Item = StoreResult<ImportItem>> + Send),
    ) -> StoreResult<Map<String, Json>> {
        let mut tx = self.b.begin_write().await?;
        for table in TABLES.iter().filter(|t| t.name != "meta") {
            let found = query_built(format!("SELECT 1 AS x FROM {} LIMIT 1", table.name))
                .fetch_optional(&mut *tx)
                .await?;
            if found.is_some() {
                return Err(StoreError::Import(format!(
                    "the destination already holds {}: import only into a new, empty database; \
                     nothing was imported",
                    table.name
                )));
            }
        }
        let mut counts = Map::new();
        let mut end = None;
        for item in items {
            match item? {
                ImportItem::Row(table, row) => {
                    let values = from_json(table, &row)?;
                    let placeholders: Vec<String> =
                        (1..=values.len()).map(|n| format!("${n}")).collect();
                    let upsert = if table.name == "meta" {
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                    } else {
                        ""
                    };
                    let mut stmt = query_built(format!(
                        "INSERT INTO {} ({}) VALUES ({}){upsert}",
                        table.name,
                        column_list(table),
                        placeholders.join(", ")
                    ));
                    stmt.args = values;
                    stmt.execute(&mut *tx).await?;
                    let count = counts.entry(table.name.to_owned()).or_insert(Json::from(0));
                    *count = Json::from(count.as_u64().unwrap_or(0) + 1);
                }
                ImportItem::End(expected) => {
                    end = Some(expected);
                    break;
                }
            }
        }
        let Some(expected) = end else {
            return Err(StoreError::Import(
                "the export has no end line (truncated?); nothing was imported".into(),
            ));
        };
        let mut expected = expected;
        expected.retain(|_, n| n.as_u64() != Some(0));
        if expected != counts {
            return Err(StoreError::Import(format!(
                "the export's end line counts {expected:?} but it holds {counts:?} \
                 (truncated?); nothing was imported"
            )));
        }
        // Above the source's, so a replica that read the source reloads from this store.
        query("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
            .execute(&mut *tx)
            .await?;
        query(B::DIALECT.audit_seq_after_import)
            .execute(&mut *tx)
            .await?;
        B::commit(tx).await?;
        Ok(counts)
    }
}
