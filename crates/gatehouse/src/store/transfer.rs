//! Moving a deployment between stores: `gatehouse database export` writes every table as JSON
//! lines, `gatehouse database import` writes them into an empty store (see `sql/transfer.rs`).

use async_trait::async_trait;
use serde_json::{Map, Value};
use std::io::BufRead;

use super::StoreResult;
pub use super::sql::transfer::{ImportItem, Kind, TABLES, Table, table};

#[async_trait]
pub trait TransferStore: Send + Sync + 'static {
    /// A page of `table`'s rows in primary-key order, each column as stored (integers as
    /// numbers, bytes as base64, flags as booleans, NULL as null).
    async fn export_page(
        &self,
        table: &'static Table,
        offset: i64,
        limit: i64,
    ) -> StoreResult<Vec<Map<String, Value>>>;

    /// Writes every item into this store, which must hold no record and no audit row, in one
    /// transaction: the counts of the final `End` item must match what came before it. Then
    /// moves the generation above the source's and the audit numbering past the highest
    /// `seq`. Anything wrong writes nothing. Returns the rows written per table.
    async fn import(
        &self,
        items: &mut (dyn Iterator<Item = StoreResult<ImportItem>> + Send),
    ) -> StoreResult<Map<String, Value>>;
}

/// What the first line names, so a file of another kind is refused at once.
const FORMAT: u64 = 1;
/// Rows read from the store per page: memory stays bounded whatever the trail's length.
const PAGE: i64 = 1_000;

/// Writes `store` as an export: a header line, one line per row (tables in [`TABLES`]
/// order, rows by primary key), and an end line with each table's count.
pub async fn export(
    store: &dyn super::Store,
    source: super::Backend,
    out: &mut (dyn std::io::Write + Send),
) -> StoreResult<Map<String, Value>> {
    let io = |err: std::io::Error| super::StoreError::Unsupported(format!("writing: {err}"));
    let header = serde_json::json!({
        "gatehouse_export": FORMAT,
        "schema": super::schema_version(),
        "source": source.name(),
        "exported_ms": crate::now_ms(),
    });
    writeln!(out, "{header}").map_err(io)?;
    let mut counts = Map::new();
    for table in TABLES {
        let mut written: i64 = 0;
        loop {
            let rows = store.export_page(table, written, PAGE).await?;
            for row in &rows {
                let line = serde_json::json!({ "t": table.name, "r": row });
                writeln!(out, "{line}").map_err(io)?;
            }
            let page = i64::try_from(rows.len()).unwrap_or(i64::MAX);
            written += page;
            if page < PAGE {
                break;
            }
        }
        counts.insert(table.name.to_owned(), Value::from(written));
    }
    let end = serde_json::json!({ "end": counts });
    writeln!(out, "{end}").map_err(io)?;
    out.flush().map_err(io)?;
    Ok(counts)
}

/// Reads an export into `store` (see [`TransferStore::import`]): refuses another format, a
/// schema version other than this build's, a line that is not a row of a known table, and a
/// file whose end line is missing or counts otherwise, writing nothing then.
pub async fn import(
    store: &dyn super::Store,
    reader: Box<dyn BufRead + Send>,
) -> StoreResult<Map<String, Value>> {
    use super::StoreError::Import as Corrupt;
    let mut lines = reader.lines();
    let header: Value = match lines.next() {
        Some(line) => serde_json::from_str(&line.map_err(|e| Corrupt(e.to_string()))?)
            .map_err(|_| Corrupt("the first line is not JSON".into()))?,
        None => return Err(Corrupt("the export is empty".into())),
    };
    if header["gatehouse_export"] != FORMAT {
        return Err(Corrupt(format!(
            "not a gatehouse database export (its first line names no format {FORMAT})"
        )));
    }
    let schema = super::schema_version();
    if header["schema"] != schema {
        return Err(Corrupt(format!(
            "the export is of schema version {}, this build's is {schema}: import with the \
             build that wrote it, or export again after upgrading the source",
            header["schema"]
        )));
    }
    let mut items = lines.map(|line| {
        let line = line.map_err(|err| Corrupt(format!("reading the export: {err}")))?;
        let mut value: Value = serde_json::from_str(&line)
            .map_err(|err| Corrupt(format!("a line is not JSON: {err}")))?;
        if let Some(Value::Object(end)) = value.get_mut("end").map(Value::take) {
            return Ok(ImportItem::End(end));
        }
        let name = value["t"].as_str().unwrap_or_default().to_owned();
        let table = table(&name).ok_or_else(|| Corrupt(format!("an unknown table {name:?}")))?;
        match value.get_mut("r").map(Value::take) {
            Some(Value::Object(row)) => Ok(ImportItem::Row(table, row)),
            _ => Err(Corrupt(format!("a {name} line without its row"))),
        }
    });
    store.import(&mut items).await
}
