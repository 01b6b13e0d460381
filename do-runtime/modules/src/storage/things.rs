//! The Thing store over [`Sql`]: plain functions, one transaction per write, so a
//! write is acknowledged only after it has committed.
//!
//! Memory stays bounded by the page, not by what matches: a query first reads the
//! rowids and sizes of its page, then loads one row at a time until the next would pass
//! [`MAX_PAGE_BYTES`]; a bulk update or delete walks its matches in pages of
//! [`BULK_PAGE`] rowids, loading one thing at a time, inside one transaction (all or
//! none), however many match.

use super::patch;
use super::query::Query;
use crate::host::{Env, Sql, SqlValue};
use rpc_core::{Code, RpcError};
use serde_json::Value;

/// Largest `data` document, in bytes of JSON.
pub const MAX_DOC_BYTES: usize = 1 << 20;
/// Most things in one bulk create.
pub const MAX_BULK: usize = 1000;
/// A page of query results stops before the row that would take it past this many
/// bytes of data (it always holds at least one thing); the cursor continues there. Rows
/// past the budget are never read into memory.
pub const MAX_PAGE_BYTES: usize = 4 << 20;
/// Rowids a bulk update or delete reads at a time while it walks its matches.
pub const BULK_PAGE: i64 = 1000;

/// The tables the store needs (idempotent).
pub const MIGRATION: &str = "CREATE TABLE IF NOT EXISTS things (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, data TEXT NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, deleted_at INTEGER, version INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS things_by_type ON things (type, created_at)";

/// A Thing's columns, in the order [`thing_from_row`] reads them.
pub const THING_COLUMNS_SQL: &str = "id, type, data, created_at, updated_at, deleted_at, version";

/// A thing by id (the primary key).
pub const LOAD_BY_ID: &str =
    "SELECT id, type, data, created_at, updated_at, deleted_at, version FROM things WHERE id = ?";
/// A thing by rowid (how a bulk operation loads its matches one at a time).
pub const LOAD_BY_ROWID: &str =
    "SELECT id, type, data, created_at, updated_at, deleted_at, version FROM things WHERE rowid = ?";
/// The lookups a write runs (besides its inserts), for a test to check with
/// `EXPLAIN QUERY PLAN` that none scans the table.
pub const WRITE_PATH_STATEMENTS: &[&str] = &[
    LOAD_BY_ID,
    LOAD_BY_ROWID,
    "UPDATE things SET data = ?, updated_at = ?, version = version + 1 WHERE id = ? AND version = ?",
    "UPDATE things SET deleted_at = ?, updated_at = ?, version = version + 1 WHERE id = ?",
    "UPDATE things SET deleted_at = NULL, updated_at = ?, version = version + 1 WHERE id = ?",
    "DELETE FROM things WHERE id = ?",
];

/// One stored thing.
#[derive(Debug, Clone, PartialEq)]
pub struct Thing {
    /// Its id.
    pub id: String,
    /// Its type (noun).
    pub type_: String,
    /// Its data, a JSON object.
    pub data: Value,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Last write, ms since the epoch.
    pub updated_at: i64,
    /// Soft-deletion time, if soft-deleted.
    pub deleted_at: Option<i64>,
    /// 1 on create, +1 on every write.
    pub version: i64,
}

/// What a write did, for the events it emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A thing was created.
    Created,
    /// A thing was changed.
    Updated,
    /// A thing was deleted (soft or hard).
    Deleted,
}

impl Change {
    /// The event verb.
    pub fn verb(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Deleted => "deleted",
        }
    }
}

fn internal(msg: &str) -> RpcError {
    RpcError::new(Code::Internal, msg.to_string())
}

/// Checks a Thing's id: 1 to 128 characters, none of them control characters.
pub(crate) fn check_id(id: &str) -> Result<(), RpcError> {
    if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
        return Err(RpcError::invalid_argument("an id is 1 to 128 printable characters"));
    }
    Ok(())
}

/// Parses and checks a data document: a JSON object within the size limit.
pub fn parse_data(text: &str) -> Result<Value, RpcError> {
    if text.len() > MAX_DOC_BYTES {
        return Err(RpcError::new(
            Code::LimitExceeded,
            format!("document of {} bytes is over the limit of {MAX_DOC_BYTES}", text.len()),
        ));
    }
    let text = if text.trim().is_empty() { "{}" } else { text };
    let v: Value =
        serde_json::from_str(text).map_err(|e| RpcError::invalid_argument(format!("data is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(RpcError::invalid_argument("data must be a JSON object"));
    }
    Ok(v)
}

fn encode(data: &Value) -> Result<String, RpcError> {
    let s = data.to_string();
    if s.len() > MAX_DOC_BYTES {
        return Err(RpcError::new(
            Code::LimitExceeded,
            format!("document of {} bytes is over the limit of {MAX_DOC_BYTES}", s.len()),
        ));
    }
    Ok(s)
}

/// A Thing from a row of [`THING_COLUMNS_SQL`].
pub fn thing_from_row(row: &[SqlValue]) -> Result<Thing, RpcError> {
    row_to_thing(row)
}

fn row_to_thing(row: &[SqlValue]) -> Result<Thing, RpcError> {
    let text =
        |i: usize| row.get(i).and_then(SqlValue::as_text).map(str::to_string).ok_or_else(|| internal("bad thing row"));
    let int = |i: usize| row.get(i).and_then(SqlValue::as_i64).ok_or_else(|| internal("bad thing row"));
    Ok(Thing {
        id: text(0)?,
        type_: text(1)?,
        data: serde_json::from_str(&text(2)?).map_err(|_| internal("stored data is not JSON"))?,
        created_at: int(3)?,
        updated_at: int(4)?,
        deleted_at: row.get(5).and_then(SqlValue::as_i64),
        version: int(6)?,
    })
}

/// The Thing store of one object.
pub struct Store<'a> {
    /// The object's database.
    pub sql: &'a dyn Sql,
    /// Time and randomness.
    pub env: &'a dyn Env,
}

impl Store<'_> {
    /// Creates the tables if needed.
    pub fn migrate(&self) -> Result<(), RpcError> {
        for stmt in MIGRATION.split(';') {
            self.sql.execute(stmt, &[])?;
        }
        self.sql.execute(super::indexes::MIGRATION, &[])?;
        self.sql.execute(super::archive::MIGRATION, &[])?;
        for stmt in super::graph::MIGRATION.split(';') {
            self.sql.execute(stmt, &[])?;
        }
        Ok(())
    }

    fn new_id(&self) -> String {
        format!("{:011x}{:08x}", self.env.now_ms(), self.env.random_u64() as u32)
    }

    fn load(&self, id: &str) -> Result<Option<Thing>, RpcError> {
        let rows = self.sql.query(LOAD_BY_ID, &[SqlValue::Text(id.into())])?;
        rows.first().map(|r| row_to_thing(r)).transpose()
    }

    fn load_rowid(&self, rowid: i64) -> Result<Option<Thing>, RpcError> {
        let rows = self.sql.query(LOAD_BY_ROWID, &[SqlValue::Integer(rowid)])?;
        rows.first().map(|r| row_to_thing(r)).transpose()
    }

    fn live(&self, id: &str) -> Result<Thing, RpcError> {
        match self.load(id)? {
            Some(t) if t.deleted_at.is_none() => Ok(t),
            _ => Err(RpcError::new(Code::NotFound, format!("no thing {id:?}"))),
        }
    }

    fn insert(&self, type_: &str, id: Option<&str>, data: Value) -> Result<Thing, RpcError> {
        rpc_core::ident::noun(type_)?;
        let id = match id.filter(|i| !i.is_empty()) {
            Some(i) => {
                check_id(i)?;
                i.to_string()
            }
            None => self.new_id(),
        };
        if self.load(&id)?.is_some() {
            return Err(RpcError::new(Code::Conflict, format!("a thing with id {id:?} already exists")));
        }
        if super::archive::segment_of(self.sql, &id)?.is_some() {
            return Err(RpcError::new(Code::Conflict, format!("a thing with id {id:?} already exists (archived)")));
        }
        let now = self.env.now_ms();
        let text = encode(&data)?;
        self.sql.execute(
            "INSERT INTO things (id, type, data, created_at, updated_at, deleted_at, version) VALUES (?, ?, ?, ?, ?, NULL, 1)",
            &[SqlValue::Text(id.clone()), SqlValue::Text(type_.into()), SqlValue::Text(text), SqlValue::Integer(now), SqlValue::Integer(now)],
        )?;
        Ok(Thing { id, type_: type_.into(), data, created_at: now, updated_at: now, deleted_at: None, version: 1 })
    }

    fn write(&self, mut t: Thing, data: Value, expected: u64) -> Result<Thing, RpcError> {
        if expected != 0 && expected != t.version as u64 {
            return Err(RpcError::new(Code::Conflict, format!("{} is at version {}, not {expected}", t.id, t.version)));
        }
        let now = self.env.now_ms();
        let text = encode(&data)?;
        let n = self.sql.execute(
            "UPDATE things SET data = ?, updated_at = ?, version = version + 1 WHERE id = ? AND version = ?",
            &[SqlValue::Text(text), SqlValue::Integer(now), SqlValue::Text(t.id.clone()), SqlValue::Integer(t.version)],
        )?;
        if n != 1 {
            return Err(RpcError::new(Code::Conflict, format!("{} changed during the update", t.id)));
        }
        t.data = data;
        t.updated_at = now;
        t.version += 1;
        Ok(t)
    }

    /// Runs `f` in a transaction and returns its value.
    pub fn atomically<R>(&self, mut f: impl FnMut(&Self) -> Result<R, RpcError>) -> Result<R, RpcError> {
        let mut out = None;
        self.sql.transaction(&mut || {
            out = Some(f(self)?);
            Ok(())
        })?;
        out.ok_or_else(|| internal("transaction produced nothing"))
    }

    /// Creates a thing; an existing id is CONFLICT.
    pub fn create(&self, type_: &str, id: &str, data: &str) -> Result<Thing, RpcError> {
        let data = parse_data(data)?;
        self.atomically(|s| s.insert(type_, Some(id), data.clone()))
    }

    /// The live (not soft-deleted) thing `id`, or NOT_FOUND.
    pub fn get(&self, id: &str) -> Result<Thing, RpcError> {
        self.live(id)
    }

    /// [`Store::get`], with the length of the thing's data as stored JSON text.
    pub fn get_sized(&self, id: &str) -> Result<(Thing, usize), RpcError> {
        let rows = self.sql.query(LOAD_BY_ID, &[SqlValue::Text(id.into())])?;
        match rows.first() {
            Some(r) => {
                let bytes = r.get(2).and_then(SqlValue::as_text).map_or(0, str::len);
                let t = row_to_thing(r)?;
                if t.deleted_at.is_none() {
                    return Ok((t, bytes));
                }
                Err(RpcError::new(Code::NotFound, format!("no thing {id:?}")))
            }
            None => Err(RpcError::new(Code::NotFound, format!("no thing {id:?}"))),
        }
    }

    /// Applies a merge patch (with operators); `expected` 0 skips the version check.
    pub fn update(&self, id: &str, patch_text: &str, expected: u64) -> Result<Thing, RpcError> {
        let p: Value = serde_json::from_str(patch_text)
            .map_err(|e| RpcError::invalid_argument(format!("patch is not valid JSON: {e}")))?;
        self.atomically(|s| {
            let t = s.live(id)?;
            let mut data = t.data.clone();
            patch::apply(&mut data, &p)?;
            s.write(t, data, expected)
        })
    }

    /// Replaces the data; `expected` 0 skips the version check.
    pub fn replace(&self, id: &str, data: &str, expected: u64) -> Result<Thing, RpcError> {
        let data = parse_data(data)?;
        self.atomically(|s| {
            let t = s.live(id)?;
            s.write(t, data.clone(), expected)
        })
    }

    /// Deletes (softly: marks it) a thing; returns it, or None when there was none.
    pub fn delete(&self, id: &str, soft: bool) -> Result<Option<Thing>, RpcError> {
        self.atomically(|s| s.delete_in_tx(id, soft))
    }

    /// Undoes a soft delete.
    pub fn restore(&self, id: &str) -> Result<Thing, RpcError> {
        self.atomically(|s| {
            let t = s.load(id)?.ok_or_else(|| RpcError::new(Code::NotFound, format!("no thing {id:?}")))?;
            if t.deleted_at.is_some() {
                let now = s.env.now_ms();
                s.sql.execute(
                    "UPDATE things SET deleted_at = NULL, updated_at = ?, version = version + 1 WHERE id = ?",
                    &[SqlValue::Integer(now), SqlValue::Text(id.into())],
                )?;
            }
            s.live(id)
        })
    }

    /// One page of a query and the cursor of the next page (None on the last). Reads
    /// the page's rowids and sizes, then its rows one at a time, and stops before the
    /// row that would take the page past [`MAX_PAGE_BYTES`].
    pub fn query(&self, q: &Query) -> Result<(Vec<Thing>, Option<String>), RpcError> {
        let (sql, params) = q.page_sql();
        let rows = self.sql.query(&sql, &params)?;
        let (row_sql, row_params) = q.row_sql();
        let mut things = Vec::new();
        let mut last_keys = Vec::new();
        let mut bytes = 0usize;
        for r in rows.iter().take(q.limit as usize) {
            let int = |i: usize| r.get(i).and_then(SqlValue::as_i64).ok_or_else(|| internal("bad page row"));
            let (rowid, size) = (int(0)?, usize::try_from(int(1)?).unwrap_or(usize::MAX));
            if !things.is_empty() && bytes.saturating_add(size) > MAX_PAGE_BYTES {
                break;
            }
            let mut params = row_params.clone();
            params.push(SqlValue::Integer(rowid));
            let row = self.sql.query(&row_sql, &params)?.pop().ok_or_else(|| internal("a page row vanished"))?;
            bytes += size;
            things.push(row_to_thing(&row)?);
            last_keys = row.get(7..).unwrap_or_default().to_vec();
        }
        let cursor = match (things.len() < rows.len(), things.last()) {
            (true, Some(t)) => Some(q.cursor_after(&last_keys, &t.id)),
            _ => None,
        };
        Ok((things, cursor))
    }

    /// How many things match (ignoring paging).
    pub fn count(&self, q: &Query) -> Result<u64, RpcError> {
        let (sql, params) = q.count_sql();
        let rows = self.sql.query(&sql, &params)?;
        rows.first()
            .and_then(|r| r.first())
            .and_then(SqlValue::as_i64)
            .map(|n| n as u64)
            .ok_or_else(|| internal("count returned nothing"))
    }

    /// Creates many things in one transaction (all or none).
    pub fn bulk_create(&self, items: &[(String, String, String)]) -> Result<Vec<Thing>, RpcError> {
        if items.len() > MAX_BULK {
            return Err(RpcError::new(
                Code::LimitExceeded,
                format!("{} things in one bulk create; the limit is {MAX_BULK}", items.len()),
            ));
        }
        let parsed =
            items.iter().map(|(t, id, d)| Ok((t, id, parse_data(d)?))).collect::<Result<Vec<_>, RpcError>>()?;
        self.atomically(|s| parsed.iter().map(|(t, id, d)| s.insert(t, Some(id), d.clone())).collect())
    }

    /// Calls `f` with the rowid of every thing matching `q` (its filter and cursor),
    /// reading [`BULK_PAGE`] rowids at a time (see [`Query::ids_after_sql`]); run it
    /// inside a transaction.
    fn each_match(&self, q: &Query, mut f: impl FnMut(i64) -> Result<(), RpcError>) -> Result<(), RpcError> {
        let mut after = (i64::MIN, i64::MIN);
        loop {
            let (sql, params) = q.ids_after_sql(after, BULK_PAGE);
            let rows = self.sql.query(&sql, &params)?;
            for r in &rows {
                let int = |i: usize| r.get(i).and_then(SqlValue::as_i64).ok_or_else(|| internal("bad match row"));
                after = (int(1)?, int(0)?);
                f(after.1)?;
            }
            if rows.len() < BULK_PAGE as usize {
                return Ok(());
            }
        }
    }

    /// Patches every matching thing in one transaction (all or none), loading one at a
    /// time; `changed` sees each patched thing (inside the transaction, e.g. to record
    /// its event). Returns how many were patched.
    pub fn bulk_update(
        &self,
        q: &Query,
        patch_text: &str,
        changed: &mut dyn FnMut(&Thing) -> Result<(), RpcError>,
    ) -> Result<u64, RpcError> {
        let p: Value = serde_json::from_str(patch_text)
            .map_err(|e| RpcError::invalid_argument(format!("patch is not valid JSON: {e}")))?;
        self.atomically(|s| {
            let mut n = 0;
            s.each_match(q, |rowid| {
                let Some(t) = s.load_rowid(rowid)? else { return Ok(()) };
                let mut data = t.data.clone();
                patch::apply(&mut data, &p)?;
                changed(&s.write(t, data, 0)?)?;
                n += 1;
                Ok(())
            })?;
            Ok(n)
        })
    }

    /// Deletes every matching thing in one transaction (all or none), loading one at a
    /// time; `changed` sees each deleted thing (inside the transaction). Returns how
    /// many were deleted.
    pub fn bulk_delete(
        &self,
        q: &Query,
        soft: bool,
        changed: &mut dyn FnMut(&Thing) -> Result<(), RpcError>,
    ) -> Result<u64, RpcError> {
        self.atomically(|s| {
            let mut n = 0;
            s.each_match(q, |rowid| {
                let Some(t) = s.load_rowid(rowid)? else { return Ok(()) };
                if let Some(gone) = s.delete_loaded(t, soft)? {
                    changed(&gone)?;
                    n += 1;
                }
                Ok(())
            })?;
            Ok(n)
        })
    }

    /// Deletes inside the caller's transaction; None when there was nothing to delete
    /// (no such thing, or soft-deleting one already soft-deleted).
    fn delete_in_tx(&self, id: &str, soft: bool) -> Result<Option<Thing>, RpcError> {
        match self.load(id)? {
            Some(t) => self.delete_loaded(t, soft),
            None => Ok(None),
        }
    }

    /// Deletes a thing just loaded, inside the caller's transaction; None when soft-
    /// deleting one already soft-deleted.
    fn delete_loaded(&self, t: Thing, soft: bool) -> Result<Option<Thing>, RpcError> {
        let id = t.id.as_str();
        if soft {
            if t.deleted_at.is_some() {
                return Ok(None);
            }
            let now = self.env.now_ms();
            self.sql.execute(
                "UPDATE things SET deleted_at = ?, updated_at = ?, version = version + 1 WHERE id = ?",
                &[SqlValue::Integer(now), SqlValue::Integer(now), SqlValue::Text(id.into())],
            )?;
        } else {
            self.sql.execute("DELETE FROM things WHERE id = ?", &[SqlValue::Text(id.into())])?;
            // Gone for good: so are its relationships, in the same transaction.
            super::graph::forget_thing(self.sql, id)?;
        }
        Ok(Some(t))
    }

    /// Replaces the data of `id`, or creates it; returns the thing and whether it was created.
    pub fn upsert(&self, type_: &str, id: &str, data: &str) -> Result<(Thing, bool), RpcError> {
        check_id(id)?;
        let data = parse_data(data)?;
        self.atomically(|s| match s.load(id)? {
            Some(t) if t.type_ != type_ => {
                Err(RpcError::new(Code::Conflict, format!("{id} is a {}, not a {type_}", t.type_)))
            }
            Some(mut t) => {
                if t.deleted_at.is_some() {
                    s.sql.execute("UPDATE things SET deleted_at = NULL WHERE id = ?", &[SqlValue::Text(id.into())])?;
                    t.deleted_at = None;
                }
                Ok((s.write(t, data.clone(), 0)?, false))
            }
            None => Ok((s.insert(type_, Some(id), data.clone())?, true)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_by_id_reads_the_thing_columns() {
        let expected = format!("SELECT {} FROM things WHERE id = ?", super::super::query::THING_COLUMNS);
        assert_eq!(LOAD_BY_ID, expected);
    }
}
