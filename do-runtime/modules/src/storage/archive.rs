//! Archiving: live Things not written for a while (or matching a filter) leave SQLite
//! for the cold tier, as Parquet segments of up to [`MAX_ARCHIVE`] Things under
//! `objects/<id>/archive/<seq>.parquet`, and stay readable.
//!
//! `dotdo_cold` remembers where each archived Thing is. `get` falls through to it (the
//! segment is read once and kept in a small cache); a write to an archived Thing first
//! brings it back into SQLite (revives it), and so does creating one with its id (which
//! is then CONFLICT, as for any existing id); a query with `"includeCold": true` first
//! revives the archived Things of its type that its filter matches, then runs over
//! SQLite (reading is touching: they count as recent again; at most [`MAX_ARCHIVE`] at
//! once). Other queries, `related` and `traverse` see SQLite only, and so do a class's
//! synchronous writes through `ctx.storage()` (NOT_FOUND for an archived Thing: call
//! `revive` first). Archiving records no event: the Things did not change.

use super::query::Query;
use super::things::{thing_from_row, Store, Thing, THING_COLUMNS_SQL};
use crate::host::{Cold, Sql, SqlValue, Table};
use rpc_core::{Code, RpcError};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// The index of archived Things (idempotent).
pub const MIGRATION: &str = "CREATE TABLE IF NOT EXISTS dotdo_cold (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, segment TEXT NOT NULL, version INTEGER NOT NULL,
    archived_at INTEGER NOT NULL) WITHOUT ROWID";

/// Most Things one `archive` call moves (one segment).
pub const MAX_ARCHIVE: usize = 10_000;
/// Segments kept decoded in memory per object.
const CACHED_SEGMENTS: usize = 4;

/// The columns of a segment, as [`THING_COLUMNS_SQL`] reads them.
const COLUMNS: [&str; 7] = ["id", "type", "data", "created_at", "updated_at", "deleted_at", "version"];

/// The prefix of an object's archive segments.
pub fn prefix(object_id: &str) -> String {
    format!("objects/{object_id}/archive/")
}

/// The error of a cold-tier call on a host without one.
pub fn no_cold_tier() -> RpcError {
    RpcError::new(Code::Unavailable, "this host has no cold tier (dotdo serve --cold DIR or s3://bucket/prefix)")
}

/// What `archive` is asked: `{"type": "Order", "where": {...}, "idleMs": 86400000,
/// "limit": 10000}` (each optional): live Things of the type, matching the filter, not
/// written for `idleMs`.
pub struct ArchiveRequest {
    query: Query,
    idle_ms: Option<i64>,
}

impl ArchiveRequest {
    /// Parses it.
    pub fn parse(text: &str) -> Result<ArchiveRequest, RpcError> {
        let mut v: serde_json::Value = serde_json::from_str(if text.trim().is_empty() { "{}" } else { text })
            .map_err(|e| RpcError::invalid_argument(format!("an archive request is JSON: {e}")))?;
        let obj = v.as_object_mut().ok_or_else(|| RpcError::invalid_argument("an archive request is an object"))?;
        let idle_ms = match obj.remove("idleMs") {
            None | Some(serde_json::Value::Null) => None,
            Some(n) => Some(
                n.as_i64()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| RpcError::invalid_argument("idleMs is a number of milliseconds"))?,
            ),
        };
        if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "type" | "where" | "limit")) {
            return Err(RpcError::invalid_argument(format!(
                "unknown archive key {k:?} (known: type, where, idleMs, limit)"
            )));
        }
        let limit = obj.get("limit").and_then(serde_json::Value::as_u64).unwrap_or(MAX_ARCHIVE as u64);
        if limit as usize > MAX_ARCHIVE {
            return Err(RpcError::new(
                Code::LimitExceeded,
                format!("one archive call moves at most {MAX_ARCHIVE} Things"),
            ));
        }
        obj.remove("limit");
        let mut query = Query::parse(&v.to_string())?;
        query.limit = limit as u32;
        Ok(ArchiveRequest { query, idle_ms })
    }
}

/// A segment's Things by id.
type Segment = Rc<HashMap<String, Thing>>;

/// One object's archive: where its segments go, and the last few read.
pub struct Archive {
    cold: Rc<dyn Cold>,
    object_id: Rc<str>,
    segments: RefCell<Vec<(String, Segment)>>,
}

fn thing_row(t: &Thing) -> Vec<SqlValue> {
    vec![
        SqlValue::Text(t.id.clone()),
        SqlValue::Text(t.type_.clone()),
        SqlValue::Text(t.data.to_string()),
        SqlValue::Integer(t.created_at),
        SqlValue::Integer(t.updated_at),
        t.deleted_at.map_or(SqlValue::Null, SqlValue::Integer),
        SqlValue::Integer(t.version),
    ]
}

/// Where an archived Thing is, if it is archived.
pub fn segment_of(sql: &dyn Sql, id: &str) -> Result<Option<String>, RpcError> {
    let rows = sql.query("SELECT segment FROM dotdo_cold WHERE id = ?", &[SqlValue::Text(id.into())])?;
    Ok(rows.first().and_then(|r| r.first()).and_then(SqlValue::as_text).map(str::to_string))
}

impl Archive {
    /// The archive of object `object_id` in `cold`.
    pub fn new(cold: Rc<dyn Cold>, object_id: &str) -> Archive {
        Archive { cold, object_id: Rc::from(object_id), segments: RefCell::default() }
    }

    /// The Things of segment `key`, by id (read once, then from memory).
    async fn segment(&self, key: &str) -> Result<Segment, RpcError> {
        if let Some((_, s)) = self.segments.borrow().iter().find(|(k, _)| k == key) {
            return Ok(s.clone());
        }
        let table = self.cold.get_table(key).await?.ok_or_else(|| {
            RpcError::new(Code::Internal, format!("archive segment {key} is missing from the cold tier"))
        })?;
        let things: HashMap<String, Thing> =
            table.rows.iter().map(|r| thing_from_row(r).map(|t| (t.id.clone(), t))).collect::<Result<_, _>>()?;
        let things = Rc::new(things);
        let mut cache = self.segments.borrow_mut();
        cache.push((key.to_string(), things.clone()));
        if cache.len() > CACHED_SEGMENTS {
            cache.remove(0);
        }
        Ok(things)
    }

    /// The archived Thing `id`, if it is archived.
    pub async fn get(&self, sql: &dyn Sql, id: &str) -> Result<Option<Thing>, RpcError> {
        let Some(key) = segment_of(sql, id)? else { return Ok(None) };
        Ok(self.segment(&key).await?.get(id).cloned())
    }

    /// Moves the Things `req` selects to a new segment; how many moved. A Thing written
    /// while its segment was being stored stays in SQLite (its copy there is newer).
    pub async fn archive(
        &self,
        store: &Store<'_>,
        req: &ArchiveRequest,
        forget: &dyn Fn(&str),
    ) -> Result<u64, RpcError> {
        let mut params = Vec::new();
        let mut conds = vec![req.query.where_sql(&mut params)];
        if let Some(idle) = req.idle_ms {
            conds.push("updated_at <= ?".into());
            params.push(SqlValue::Integer(store.env.now_ms().saturating_sub(idle)));
        }
        conds.push("deleted_at IS NULL".into());
        params.push(SqlValue::Integer(i64::from(req.query.limit)));
        let rows = store.sql.query(
            &format!("SELECT {THING_COLUMNS_SQL} FROM things WHERE {} ORDER BY rowid LIMIT ?", conds.join(" AND ")),
            &params,
        )?;
        if rows.is_empty() {
            return Ok(0);
        }
        let things: Vec<Thing> = rows.iter().map(|r| thing_from_row(r)).collect::<Result<_, _>>()?;
        let seq = format!("{:016}-{:08x}", store.env.now_ms(), store.env.random_u64() as u32);
        let key = format!("{}{seq}.parquet", prefix(&self.object_id));
        let table = Table {
            columns: COLUMNS.iter().map(|c| (*c).to_string()).collect(),
            rows: things.iter().map(thing_row).collect(),
        };
        self.cold.put_table(&key, table).await?;
        let now = store.env.now_ms();
        let mut moved = 0;
        store.atomically(|s| {
            moved = 0;
            for (t, row) in things.iter().zip(&rows) {
                let stored = row.get(2).cloned().unwrap_or(SqlValue::Null);
                // Exactly the row that was stored: a Thing written (or deleted and made
                // again) while the segment was being stored stays.
                let gone = s.sql.execute(
                    "DELETE FROM things WHERE id = ? AND version = ? AND created_at = ? AND updated_at = ? AND data = ? \
                     AND deleted_at IS NULL",
                    &[
                        SqlValue::Text(t.id.clone()),
                        SqlValue::Integer(t.version),
                        SqlValue::Integer(t.created_at),
                        SqlValue::Integer(t.updated_at),
                        stored,
                    ],
                )?;
                if gone == 1 {
                    s.sql.execute(
                        "INSERT INTO dotdo_cold (id, type, segment, version, archived_at) VALUES (?, ?, ?, ?, ?)",
                        &[
                            SqlValue::Text(t.id.clone()),
                            SqlValue::Text(t.type_.clone()),
                            SqlValue::Text(key.clone()),
                            SqlValue::Integer(t.version),
                            SqlValue::Integer(now),
                        ],
                    )?;
                    forget(&t.id);
                    moved += 1;
                }
            }
            Ok(())
        })?;
        Ok(moved)
    }

    /// Brings the archived Things among `ids` back into SQLite (those not archived are
    /// left alone); how many came back. Each comes back as it was archived.
    pub async fn revive(&self, store: &Store<'_>, ids: &[String]) -> Result<u64, RpcError> {
        let mut found = Vec::new();
        for id in ids {
            if let Some(key) = segment_of(store.sql, id)? {
                let segment = self.segment(&key).await?;
                if let Some(t) = segment.get(id) {
                    found.push((key, t.clone()));
                }
            }
        }
        if found.is_empty() {
            return Ok(0);
        }
        let mut back = 0;
        store.atomically(|s| {
            back = 0;
            for (key, t) in &found {
                // Still archived in that segment (no other call revived it meanwhile)?
                if segment_of(s.sql, &t.id)?.as_deref() != Some(key.as_str()) {
                    continue;
                }
                s.sql.execute("DELETE FROM dotdo_cold WHERE id = ?", &[SqlValue::Text(t.id.clone())])?;
                let live = s.sql.query("SELECT 1 FROM things WHERE id = ?", &[SqlValue::Text(t.id.clone())])?;
                if !live.is_empty() {
                    // Cannot happen through the storage API; if it does, SQLite's row wins.
                    continue;
                }
                s.sql.execute(
                    &format!("INSERT INTO things ({THING_COLUMNS_SQL}) VALUES (?, ?, ?, ?, ?, ?, ?)"),
                    &thing_row(t),
                )?;
                back += 1;
            }
            Ok(())
        })?;
        Ok(back)
    }

    /// Revives the archived Things a query's type and filter match (for `includeCold`):
    /// the segments holding Things of that type are read, their Things put in a
    /// temporary table, and the query's conditions run over it.
    pub async fn revive_matching(&self, store: &Store<'_>, q: &Query) -> Result<u64, RpcError> {
        let mut params = Vec::new();
        let mut sql = "SELECT DISTINCT segment FROM dotdo_cold".to_string();
        if let Some(t) = &q.type_ {
            sql.push_str(" WHERE type = ?");
            params.push(SqlValue::Text(t.clone()));
        }
        let keys: Vec<String> = store
            .sql
            .query(&sql, &params)?
            .iter()
            .filter_map(|r| r.first().and_then(SqlValue::as_text).map(str::to_string))
            .collect();
        let mut candidates = Vec::new();
        for key in &keys {
            let segment = self.segment(key).await?;
            for t in segment.values() {
                if segment_of(store.sql, &t.id)?.as_deref() == Some(key.as_str()) {
                    candidates.push(t.clone());
                }
            }
        }
        if candidates.is_empty() {
            return Ok(0);
        }
        // The query's conditions name `things`: a temporary table of that name (which
        // SQLite finds before the main one) holds the candidates while they run, with no
        // await in between, and is gone before anything else runs.
        let mut params = Vec::new();
        let cond = q.where_sql(&mut params);
        let mut matched = Vec::new();
        store.atomically(|s| {
            s.sql.execute(
                &format!("CREATE TEMP TABLE things AS SELECT {THING_COLUMNS_SQL} FROM main.things WHERE 0"),
                &[],
            )?;
            let run = (|| {
                for t in &candidates {
                    s.sql.execute(
                        &format!("INSERT INTO temp.things ({THING_COLUMNS_SQL}) VALUES (?, ?, ?, ?, ?, ?, ?)"),
                        &thing_row(t),
                    )?;
                }
                let rows = s.sql.query(&format!("SELECT id FROM temp.things WHERE {cond}"), &params)?;
                Ok::<_, RpcError>(
                    rows.iter()
                        .filter_map(|r| r.first().and_then(SqlValue::as_text).map(str::to_string))
                        .collect::<Vec<_>>(),
                )
            })();
            s.sql.execute("DROP TABLE temp.things", &[])?;
            matched = run?;
            Ok(())
        })?;
        if matched.len() > MAX_ARCHIVE {
            return Err(RpcError::new(
                Code::LimitExceeded,
                format!(
                    "includeCold would bring back {} archived Things (at most {MAX_ARCHIVE}): narrow the query",
                    matched.len()
                ),
            ));
        }
        self.revive(store, &matched).await
    }
}
