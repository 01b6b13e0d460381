//! Snapshots of an object's whole database in the cold tier, and restore from them.
//!
//! A snapshot is every table of the object's SQLite (Things, relationships, indexes'
//! declarations, key-value entries, the event log, schedules, workflows, the class's own
//! tables) read at one instant, after the writes before it are durable: one Parquet
//! file per table under `objects/<id>/snapshots/<seq>/`, then `manifest.json` naming
//! them with the schema (`CREATE` statements) and the last event's sequence number.
//! The manifest is written last, so a snapshot cut short has none and does not count.
//!
//! Recovery order (`dotdo restore`, [`restore`]): (1) the newest snapshot that has a
//! manifest; (2) its tables' `CREATE` statements; (3) their rows, in one transaction;
//! (4) its indexes and triggers; (5) the archive segments written after it
//! ([`crate::storage::archive`]), oldest first: a Thing in one whose version is newer
//! than the restored row (or that has none) comes back as it was archived. Everything
//! acknowledged before the snapshot began is in it, and so is every Thing archived
//! after it; other writes after it are not (take snapshots as often as that matters).

use crate::host::{Cold, Sql, SqlValue, Table};
use rpc_core::{Code, RpcError};
use serde::{Deserialize, Serialize};

/// One table of a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableEntry {
    /// The table's name.
    pub name: String,
    /// Where its rows are.
    pub key: String,
    /// How many.
    pub rows: u64,
    /// Bytes of Parquet.
    pub bytes: u64,
    /// Whether the first column is the row's rowid (every table but a `WITHOUT ROWID`
    /// one: positions such as an event's sequence number are rowids, and come back).
    pub rowid: bool,
}

/// One schema item (`CREATE TABLE`, `CREATE INDEX`, `CREATE TRIGGER`, `CREATE VIEW`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaItem {
    /// `table`, `index`, `trigger` or `view`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// The statement that makes it.
    pub sql: String,
}

/// What a snapshot holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The object's id.
    pub object: String,
    /// The snapshot's sequence (sortable: the time, then a random suffix).
    pub seq: String,
    /// When it was taken, ms since the epoch.
    pub at_ms: i64,
    /// The sequence number of the last event in it (0: none).
    pub events_up_to: i64,
    /// Its schema, tables first.
    pub schema: Vec<SchemaItem>,
    /// Its tables' rows.
    pub tables: Vec<TableEntry>,
    /// SQLite's `AUTOINCREMENT` counters (`sqlite_sequence`): table, last value, so a
    /// restored log never hands out a sequence number twice.
    #[serde(default)]
    pub sequences: Vec<(String, i64)>,
}

/// The prefix of an object's snapshots.
pub fn prefix(object_id: &str) -> String {
    format!("objects/{object_id}/snapshots/")
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn text(v: Option<&SqlValue>) -> String {
    v.and_then(SqlValue::as_text).unwrap_or_default().to_string()
}

/// A table read for a snapshot: its name, rows, and whether the first column is the rowid.
type Dumped = (String, Table, bool);

/// Reads the schema and every table's rows (no await between: one state).
fn read_all(sql: &dyn Sql) -> Result<(Vec<SchemaItem>, Vec<Dumped>), RpcError> {
    let rows = sql.query(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
         AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END, rowid",
        &[],
    )?;
    let schema: Vec<SchemaItem> =
        rows.iter().map(|r| SchemaItem { kind: text(r.first()), name: text(r.get(1)), sql: text(r.get(2)) }).collect();
    let mut tables = Vec::new();
    for item in schema.iter().filter(|i| i.kind == "table") {
        if item.sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL") {
            return Err(RpcError::new(
                Code::Unsupported,
                format!("table {:?} is virtual: snapshots keep ordinary tables only", item.name),
            ));
        }
        let mut columns: Vec<String> = sql
            .query(&format!("SELECT name FROM pragma_table_info({})", quote_literal(&item.name)), &[])?
            .iter()
            .map(|r| text(r.first()))
            .collect();
        let mut list = columns.iter().map(|c| quote(c)).collect::<Vec<_>>();
        let rowid = !item.sql.to_ascii_uppercase().contains("WITHOUT ROWID");
        if rowid {
            columns.insert(0, "rowid".into());
            list.insert(0, "rowid".into());
        }
        let rows = sql.query(&format!("SELECT {} FROM {}", list.join(", "), quote(&item.name)), &[])?;
        tables.push((item.name.clone(), Table { columns, rows }, rowid));
    }
    Ok((schema, tables))
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Takes a snapshot of the object `object_id` whose database is `sql` into `cold`;
/// `nonce` makes its sequence unique.
pub async fn snapshot(
    sql: &dyn Sql,
    cold: &dyn Cold,
    object_id: &str,
    now_ms: i64,
    nonce: u32,
) -> Result<Manifest, RpcError> {
    // What was acknowledged before this call is durable before it is read.
    sql.durable().await?;
    let (schema, tables) = read_all(sql)?;
    let events_up_to = tables
        .iter()
        .find(|(n, _, _)| n == "events")
        .and_then(|_| sql.query("SELECT COALESCE(MAX(rowid), 0) FROM events", &[]).ok())
        .and_then(|r| r.first().and_then(|r| r.first()).and_then(SqlValue::as_i64))
        .unwrap_or(0);
    let has_sequences = !sql.query("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'", &[])?.is_empty();
    let sequences = if has_sequences {
        sql.query("SELECT name, seq FROM sqlite_sequence", &[])?
            .iter()
            .map(|r| (text(r.first()), r.get(1).and_then(SqlValue::as_i64).unwrap_or(0)))
            .collect()
    } else {
        Vec::new()
    };
    let seq = format!("{now_ms:016}-{nonce:08x}");
    let dir = format!("{}{seq}/", prefix(object_id));
    let mut entries = Vec::new();
    for (i, (name, table, rowid)) in tables.into_iter().enumerate() {
        let key = format!("{dir}{i:04}.parquet");
        let rows = table.rows.len() as u64;
        let bytes = cold.put_table(&key, table).await?;
        entries.push(TableEntry { name, key, rows, bytes, rowid });
    }
    let manifest =
        Manifest { object: object_id.into(), seq, at_ms: now_ms, events_up_to, schema, tables: entries, sequences };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| RpcError::new(Code::Internal, e.to_string()))?;
    cold.put_bytes(&format!("{dir}manifest.json"), json).await?;
    Ok(manifest)
}

/// The newest complete snapshot of `object_id` (the newest manifest that parses).
pub async fn latest(cold: &dyn Cold, object_id: &str) -> Result<Option<Manifest>, RpcError> {
    let mut manifests: Vec<String> =
        cold.list(&prefix(object_id)).await?.into_iter().filter(|k| k.ends_with("/manifest.json")).collect();
    manifests.sort();
    while let Some(key) = manifests.pop() {
        let Some(bytes) = cold.get_bytes(&key).await? else { continue };
        match serde_json::from_slice::<Manifest>(&bytes) {
            Ok(m) if m.object == object_id => return Ok(Some(m)),
            _ => tracing::warn!(key, "a snapshot manifest that does not parse: skipped"),
        }
    }
    Ok(None)
}

/// Rebuilds the object's database from `manifest` into `sql`, which must be empty (a
/// new file), in the recovery order of the module docs.
pub async fn restore(sql: &dyn Sql, cold: &dyn Cold, manifest: &Manifest) -> Result<(), RpcError> {
    let existing = sql.query("SELECT COUNT(*) FROM sqlite_master", &[])?;
    if existing.first().and_then(|r| r.first()).and_then(SqlValue::as_i64) != Some(0) {
        return Err(RpcError::new(Code::Conflict, "restore needs an empty database"));
    }
    let mut tables = Vec::new();
    for entry in &manifest.tables {
        let table = cold.get_table(&entry.key).await?.ok_or_else(|| {
            RpcError::new(Code::NotFound, format!("snapshot {} lacks the file of table {:?}", manifest.seq, entry.name))
        })?;
        if table.rows.len() as u64 != entry.rows {
            return Err(RpcError::new(
                Code::Internal,
                format!("table {:?} of snapshot {} is damaged", entry.name, manifest.seq),
            ));
        }
        tables.push((entry.name.clone(), table, entry.rowid));
    }
    sql.transaction(&mut || {
        for item in manifest.schema.iter().filter(|i| i.kind == "table") {
            sql.execute(&item.sql, &[])?;
        }
        for (name, table, rowid) in &tables {
            let columns = table
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| if i == 0 && *rowid { "rowid".to_string() } else { quote(c) })
                .collect::<Vec<_>>()
                .join(", ");
            let marks = vec!["?"; table.columns.len()].join(", ");
            let insert = format!("INSERT INTO {} ({columns}) VALUES ({marks})", quote(name));
            for row in &table.rows {
                sql.execute(&insert, row)?;
            }
        }
        if !manifest.sequences.is_empty() {
            // Inserting the rows set the counters to their largest ids; a log pruned to
            // nothing had handed out more.
            sql.execute("DELETE FROM sqlite_sequence", &[])?;
            for (name, value) in &manifest.sequences {
                sql.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)",
                    &[SqlValue::Text(name.clone()), SqlValue::Integer(*value)],
                )?;
            }
        }
        for item in manifest.schema.iter().filter(|i| i.kind != "table") {
            sql.execute(&item.sql, &[])?;
        }
        Ok(())
    })?;
    newer_archives(sql, cold, manifest).await
}

/// Step 5: Things archived after the snapshot, newer than what it restored.
async fn newer_archives(sql: &dyn Sql, cold: &dyn Cold, manifest: &Manifest) -> Result<(), RpcError> {
    let prefix = crate::storage::archive::prefix(&manifest.object);
    let mut keys: Vec<String> = cold
        .list(&prefix)
        .await?
        .into_iter()
        .filter(|k| k.strip_prefix(&prefix).is_some_and(|seq| seq > manifest.seq.as_str()))
        .collect();
    keys.sort();
    for key in keys {
        let Some(table) = cold.get_table(&key).await? else { continue };
        sql.transaction(&mut || {
            for row in &table.rows {
                let t = crate::storage::things::thing_from_row(row)?;
                let id = SqlValue::Text(t.id.clone());
                let have = sql.query("SELECT version FROM things WHERE id = ?", std::slice::from_ref(&id))?;
                let have = have.first().and_then(|r| r.first()).and_then(SqlValue::as_i64);
                if have.is_some_and(|v| v >= t.version) {
                    continue;
                }
                sql.execute("DELETE FROM things WHERE id = ?", std::slice::from_ref(&id))?;
                sql.execute("DELETE FROM dotdo_cold WHERE id = ?", std::slice::from_ref(&id))?;
                sql.execute(
                    &format!(
                        "INSERT INTO things ({}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        crate::storage::things::THING_COLUMNS_SQL
                    ),
                    row,
                )?;
            }
            Ok(())
        })?;
    }
    Ok(())
}
