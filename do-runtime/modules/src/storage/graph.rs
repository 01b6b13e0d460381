//! The semantic layer: relationships `(from, verb, to, data, createdAt)` between an
//! object's Things, kept in its SQLite with an index each way, and queries over them:
//! `related` (one hop, paged) and `traverse` (several hops, compiled to one recursive
//! SQL query, bounded).
//!
//! A verb is kept in its past form ([`super::verbs::past`]), the form of its event:
//! `relate(c, "purchase", p)` stores `purchased` and records `Customer.purchased`.
//! Both Things must be live to relate them. Deleting a Thing for good deletes its
//! relationships with it (in the same transaction); soft-deleting it hides them (from
//! `related` and `traverse`) until it is restored.

use super::query::{filter_sql, parse_filter, Filter};
use super::things::{check_id, parse_data, Store, Thing};
use super::verbs;
use crate::host::{Sql, SqlValue};
use base64::Engine as _;
use rpc_core::{Code, RpcError};
use serde_json::{json, Map, Value};

/// The table and its reverse index (idempotent).
pub const MIGRATION: &str = "CREATE TABLE IF NOT EXISTS dotdo_relationships (
    from_id TEXT NOT NULL, verb TEXT NOT NULL, to_id TEXT NOT NULL, data TEXT NOT NULL,
    created_at INTEGER NOT NULL, PRIMARY KEY (from_id, verb, to_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dotdo_relationships_in ON dotdo_relationships (to_id, verb, from_id)";

/// Verbs (past forms) whose events the storage records for Things themselves; a
/// relationship by one would pass for such a change (`Customer.created`).
pub const RESERVED_VERBS: &[&str] = &["created", "updated", "deleted", "unrelated"];

/// Most steps in a traversal, and its deepest depth.
pub const MAX_DEPTH: usize = 8;
/// Most relationships one traversal may follow (its fan-out over every hop); past it
/// the traversal is LIMIT_EXCEEDED.
pub const MAX_VISITS: usize = 10_000;
/// Largest page of `related` and `traverse` (and the default: 100).
pub const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 100;

/// One relationship.
#[derive(Debug, Clone, PartialEq)]
pub struct Relationship {
    /// The Thing it goes from.
    pub from: String,
    /// Its verb, in the past form.
    pub verb: String,
    /// The Thing it goes to.
    pub to: String,
    /// Its data, a JSON object.
    pub data: Value,
    /// When it was first made, ms since the epoch.
    pub created_at: i64,
}

impl Relationship {
    /// Writes it as the wire's `Relationship`.
    pub fn write(&self, mut b: schema::object_capnp::relationship::Builder<'_>) {
        b.set_from(&self.from);
        b.set_verb(&self.verb);
        b.set_to(&self.to);
        b.set_data(self.data.to_string());
        b.set_created_at(self.created_at);
    }

    fn event_data(&self) -> String {
        json!({ "from": self.from, "verb": self.verb, "to": self.to, "data": self.data }).to_string()
    }
}

/// Which way a hop goes from a Thing: along its relationships (`out`), against them
/// (`in`: the Things related to it), or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// from -> to.
    Out,
    /// to -> from.
    In,
    /// Either.
    Both,
}

impl Direction {
    fn parse(v: Option<&Value>) -> Result<Direction, RpcError> {
        match v.and_then(Value::as_str) {
            None if v.is_none_or(Value::is_null) => Ok(Direction::Out),
            Some("out") => Ok(Direction::Out),
            Some("in") => Ok(Direction::In),
            Some("both") => Ok(Direction::Both),
            _ => Err(RpcError::invalid_argument("direction is \"out\", \"in\" or \"both\"")),
        }
    }

    /// (the column a hop starts from, the column it reaches) for each way it goes.
    fn ways(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Direction::Out => &[("from_id", "to_id")],
            Direction::In => &[("to_id", "from_id")],
            Direction::Both => &[("from_id", "to_id"), ("to_id", "from_id")],
        }
    }
}

fn object(text: &str, what: &str) -> Result<Map<String, Value>, RpcError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(RpcError::invalid_argument(format!("{what} is a JSON object"))),
        Err(e) => Err(RpcError::invalid_argument(format!("{what} is not valid JSON: {e}"))),
    }
}

fn only_keys(o: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), RpcError> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(RpcError::invalid_argument(format!("unknown {what} key {k:?} (known: {})", allowed.join(", ")))),
        None => Ok(()),
    }
}

fn string(o: &Map<String, Value>, key: &str) -> Result<Option<String>, RpcError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(RpcError::invalid_argument(format!("{key} is a string"))),
    }
}

fn count(o: &Map<String, Value>, key: &str, default: usize, max: usize) -> Result<usize, RpcError> {
    let n = match o.get(key) {
        None | Some(Value::Null) => return Ok(default),
        Some(v) => v.as_u64().ok_or_else(|| RpcError::invalid_argument(format!("{key} is a whole number")))?,
    };
    if n as usize > max {
        return Err(RpcError::new(Code::LimitExceeded, format!("{key} is at most {max}")));
    }
    Ok(n as usize)
}

/// What a hop may reach: live Things, of `type_` if given, matching `filter` if given.
#[derive(Debug, Clone, PartialEq)]
struct Reach {
    verb: Option<String>,
    direction: Direction,
    type_: Option<String>,
    filter: Option<Filter>,
}

impl Reach {
    fn parse(o: &Map<String, Value>) -> Result<Reach, RpcError> {
        let verb = string(o, "verb")?.map(|v| verbs::past(&v)).transpose()?;
        let type_ = string(o, "type")?;
        if let Some(t) = &type_ {
            rpc_core::ident::noun(t)?;
        }
        let filter = match o.get("where") {
            None | Some(Value::Null) => None,
            Some(w) => Some(parse_filter(w)?),
        };
        Ok(Reach { verb, direction: Direction::parse(o.get("direction"))?, type_, filter })
    }

    /// `EXISTS (SELECT 1 FROM things WHERE id = <column> ...)`: whether the Thing whose
    /// id `column` holds is one this hop may reach (a lookup by primary key per row).
    fn reaches_sql(&self, column: &str, params: &mut Vec<SqlValue>) -> String {
        let mut conds = vec![format!("things.id = {column}"), "deleted_at IS NULL".to_string()];
        if let Some(t) = &self.type_ {
            params.push(SqlValue::Text(t.clone()));
            conds.push("type = ?".into());
        }
        if let Some(f) = &self.filter {
            conds.push(filter_sql(f, params));
        }
        format!("EXISTS (SELECT 1 FROM things WHERE {})", conds.join(" AND "))
    }
}

fn row_to_relationship(r: &[SqlValue]) -> Result<Relationship, RpcError> {
    let text = |i: usize| {
        r.get(i)
            .and_then(SqlValue::as_text)
            .map(str::to_string)
            .ok_or_else(|| RpcError::new(Code::Internal, "bad relationship row"))
    };
    Ok(Relationship {
        from: text(0)?,
        verb: text(1)?,
        to: text(2)?,
        data: serde_json::from_str(&text(3)?).map_err(|_| RpcError::new(Code::Internal, "stored data is not JSON"))?,
        created_at: r.get(4).and_then(SqlValue::as_i64).unwrap_or(0),
    })
}

/// The type of Thing `id` (live or soft-deleted), for an event's noun.
fn type_of(sql: &dyn Sql, id: &str) -> Result<Option<String>, RpcError> {
    let rows = sql.query(
        "SELECT type FROM things WHERE id = ?1 UNION ALL SELECT type FROM dotdo_cold WHERE id = ?1",
        &[SqlValue::Text(id.into())],
    )?;
    Ok(rows.first().and_then(|r| r.first()).and_then(SqlValue::as_text).map(str::to_string))
}

/// Relates `from` to `to` by `verb` (any form) with `data` (a JSON object or empty), or
/// replaces the data of that relationship; records `<FromType>.<verb in the past>`.
/// Returns it and whether it is new. Both Things must be live (else NOT_FOUND).
pub fn relate(
    s: &Store<'_>,
    from: &str,
    verb: &str,
    to: &str,
    data: &str,
    event: &mut dyn FnMut(&str, &str, String) -> Result<(), RpcError>,
) -> Result<(Relationship, bool), RpcError> {
    check_id(from)?;
    check_id(to)?;
    let verb = verbs::past(verb)?;
    if RESERVED_VERBS.contains(&verb.as_str()) {
        return Err(RpcError::invalid_argument(format!(
            "verb {verb:?} is the event of a Thing's own change; a relationship needs another"
        )));
    }
    let data = parse_data(data)?;
    let from_thing = s.get(from)?;
    s.get(to)?;
    let key = [SqlValue::Text(from.into()), SqlValue::Text(verb.clone()), SqlValue::Text(to.into())];
    let existing = s.sql.query(
        "SELECT from_id, verb, to_id, data, created_at FROM dotdo_relationships WHERE from_id = ? AND verb = ? AND to_id = ?",
        &key,
    )?;
    let created_at = match existing.first() {
        Some(r) => row_to_relationship(r)?.created_at,
        None => s.env.now_ms(),
    };
    s.sql.execute(
        "INSERT INTO dotdo_relationships (from_id, verb, to_id, data, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (from_id, verb, to_id) DO UPDATE SET data = excluded.data",
        &[
            key[0].clone(),
            key[1].clone(),
            key[2].clone(),
            SqlValue::Text(data.to_string()),
            SqlValue::Integer(created_at),
        ],
    )?;
    let r = Relationship { from: from.into(), verb, to: to.into(), data, created_at };
    event(&from_thing.type_, &r.verb, r.event_data())?;
    Ok((r, existing.is_empty()))
}

/// Removes a relationship; records `<FromType>.unrelated` (the verb in its data) if
/// there was one.
pub fn unrelate(
    s: &Store<'_>,
    from: &str,
    verb: &str,
    to: &str,
    event: &mut dyn FnMut(&str, &str, String) -> Result<(), RpcError>,
) -> Result<bool, RpcError> {
    let verb = verbs::past(verb)?;
    let key = [SqlValue::Text(from.into()), SqlValue::Text(verb.clone()), SqlValue::Text(to.into())];
    let rows = s.sql.query(
        "SELECT from_id, verb, to_id, data, created_at FROM dotdo_relationships WHERE from_id = ? AND verb = ? AND to_id = ?",
        &key,
    )?;
    let Some(row) = rows.first() else { return Ok(false) };
    let r = row_to_relationship(row)?;
    s.sql.execute("DELETE FROM dotdo_relationships WHERE from_id = ? AND verb = ? AND to_id = ?", &key)?;
    let noun = type_of(s.sql, from)?.unwrap_or_else(|| "Thing".into());
    event(&noun, "unrelated", r.event_data())?;
    Ok(true)
}

/// Deletes every relationship of `id` (it is being deleted for good); how many.
pub fn forget_thing(sql: &dyn Sql, id: &str) -> Result<usize, RpcError> {
    sql.execute("DELETE FROM dotdo_relationships WHERE from_id = ?1 OR to_id = ?1", &[SqlValue::Text(id.into())])
}

/// A page of `related`: each relationship with the Thing at its other end, and the
/// cursor of the next page (`None` on the last).
pub type RelatedPage = (Vec<(Relationship, Thing)>, Option<String>);

/// A `related` query: `{"id": "c1", "verb": "purchase", "direction": "out"|"in"|"both",
/// "type": "Product", "where": {...}, "limit": 100, "cursor": "..."}`: the relationships
/// of Thing `id` (the verb, if given) whose other end is a live Thing (of the type, and
/// matching the filter, if given), ordered by that Thing's id.
#[derive(Debug, Clone, PartialEq)]
pub struct Related {
    id: String,
    reach: Reach,
    limit: usize,
    after: Option<(String, String, String)>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

impl Related {
    /// Parses the query.
    pub fn parse(text: &str) -> Result<Related, RpcError> {
        let o = object(text, "a related query")?;
        only_keys(&o, &["id", "verb", "direction", "type", "where", "limit", "cursor"], "related")?;
        let id = string(&o, "id")?.ok_or_else(|| RpcError::invalid_argument("a related query needs \"id\""))?;
        check_id(&id)?;
        let after = match string(&o, "cursor")?.filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => {
                let bad = || RpcError::invalid_argument("cursor is not one this query returned");
                let bytes = b64().decode(c).map_err(|_| bad())?;
                let v: (String, String, String) = serde_json::from_slice(&bytes).map_err(|_| bad())?;
                Some(v)
            }
        };
        Ok(Related { id, reach: Reach::parse(&o)?, limit: count(&o, "limit", DEFAULT_LIMIT, MAX_LIMIT)?, after })
    }

    /// Runs it: each relationship with the Thing at its other end, and the cursor of the
    /// next page (`None` on the last).
    pub fn run(&self, s: &Store<'_>) -> Result<RelatedPage, RpcError> {
        s.get(&self.id)?;
        let mut params = Vec::new();
        let mut arms = Vec::new();
        for (this, other) in self.reach.direction.ways() {
            params.push(SqlValue::Text(self.id.clone()));
            let mut arm = format!(
                "SELECT from_id, verb, to_id, data, created_at, {other} AS other FROM dotdo_relationships WHERE {this} = ?"
            );
            if let Some(v) = &self.reach.verb {
                params.push(SqlValue::Text(v.clone()));
                arm.push_str(" AND verb = ?");
            }
            arms.push(arm);
        }
        let mut conds = vec![self.reach.reaches_sql("rel.other", &mut params)];
        if let Some((other, verb, from)) = &self.after {
            conds.push("(other, verb, from_id) > (?, ?, ?)".into());
            params.extend([SqlValue::Text(other.clone()), SqlValue::Text(verb.clone()), SqlValue::Text(from.clone())]);
        }
        params.push(SqlValue::Integer(self.limit as i64 + 1));
        let sql = format!(
            "SELECT from_id, verb, to_id, data, created_at, other FROM ({}) AS rel WHERE {} ORDER BY other, verb, from_id LIMIT ?",
            arms.join(" UNION ALL "),
            conds.join(" AND ")
        );
        let rows = s.sql.query(&sql, &params)?;
        let mut out = Vec::new();
        for r in rows.iter().take(self.limit) {
            let rel = row_to_relationship(r)?;
            let other = r.get(5).and_then(SqlValue::as_text).unwrap_or_default();
            out.push((rel.clone(), s.get(other)?));
        }
        let cursor = match (rows.len() > self.limit, out.last()) {
            (true, Some((r, t))) => {
                let key = json!([t.id, r.verb, r.from]).to_string();
                Some(b64().encode(key))
            }
            _ => None,
        };
        Ok((out, cursor))
    }
}

/// A traversal: `{"start": "a", "steps": [{"verb": "follow", "direction": "out",
/// "type": "Person", "where": {...}}], "maxDepth": 3, "minDepth": 1, "limit": 100}`.
/// Hop k follows step `(k - 1) % steps` (one step repeats; several make a path, which
/// may repeat too). No Thing appears twice on a path (cycles end there). Returns each
/// live Thing reached at a depth from `minDepth` (default: 1 for one step, the number
/// of steps otherwise) to `maxDepth` (default: the number of steps; at most 8), once,
/// with its shortest path, nearest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Traverse {
    start: String,
    steps: Vec<Reach>,
    min_depth: usize,
    max_depth: usize,
    limit: usize,
}

/// One Thing a traversal reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Reached {
    /// The Thing.
    pub thing: Thing,
    /// Hops from the start.
    pub depth: usize,
    /// The ids from the start to it.
    pub path: Vec<String>,
}

impl Traverse {
    /// Parses the query.
    pub fn parse(text: &str) -> Result<Traverse, RpcError> {
        let o = object(text, "a traversal")?;
        only_keys(&o, &["start", "steps", "maxDepth", "minDepth", "limit"], "traversal")?;
        let start = string(&o, "start")?.ok_or_else(|| RpcError::invalid_argument("a traversal needs \"start\""))?;
        check_id(&start)?;
        let steps = match o.get("steps") {
            Some(Value::Array(a)) if !a.is_empty() => a,
            _ => {
                return Err(RpcError::invalid_argument(
                    "a traversal needs \"steps\": [{\"verb\": .., \"direction\": ..}]",
                ))
            }
        };
        if steps.len() > MAX_DEPTH {
            return Err(RpcError::new(Code::LimitExceeded, format!("a traversal has at most {MAX_DEPTH} steps")));
        }
        let steps = steps
            .iter()
            .map(|s| {
                let o = s.as_object().ok_or_else(|| RpcError::invalid_argument("a step is an object"))?;
                only_keys(o, &["verb", "direction", "type", "where"], "step")?;
                Reach::parse(o)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let max_depth = count(&o, "maxDepth", steps.len(), MAX_DEPTH)?;
        let default_min = if steps.len() == 1 { 1 } else { steps.len().min(max_depth) };
        let min_depth = count(&o, "minDepth", default_min, MAX_DEPTH)?;
        if max_depth == 0 || min_depth == 0 || min_depth > max_depth {
            return Err(RpcError::invalid_argument("1 <= minDepth <= maxDepth"));
        }
        Ok(Traverse { start, steps, min_depth, max_depth, limit: count(&o, "limit", DEFAULT_LIMIT, MAX_LIMIT)? })
    }

    /// The recursive query: every path from the start, as (id, depth, path JSON).
    fn sql(&self) -> (String, Vec<SqlValue>) {
        let mut params = vec![SqlValue::Text(self.start.clone()), SqlValue::Text(self.start.clone())];
        let mut arms = vec!["SELECT ?, 0, json_array(?)".to_string()];
        let n = self.steps.len();
        for (i, step) in self.steps.iter().enumerate() {
            for (this, next) in step.direction.ways() {
                let mut on = format!("r.{this} = w.id");
                if let Some(v) = &step.verb {
                    params.push(SqlValue::Text(v.clone()));
                    on.push_str(" AND r.verb = ?");
                }
                params.extend([
                    SqlValue::Integer(self.max_depth as i64),
                    SqlValue::Integer(n as i64),
                    SqlValue::Integer(i as i64),
                ]);
                let reach = step.reaches_sql(&format!("r.{next}"), &mut params);
                arms.push(format!(
                    "SELECT r.{next}, w.depth + 1, json_insert(w.path, '$[#]', r.{next}) \
                     FROM walk AS w JOIN dotdo_relationships AS r ON {on} \
                     WHERE w.depth < ? AND w.depth % ? = ? \
                     AND NOT EXISTS (SELECT 1 FROM json_each(w.path) AS seen WHERE seen.value = r.{next}) \
                     AND {reach}"
                ));
            }
        }
        // The start's row, then one more than may be followed: seeing that one means too many.
        params.push(SqlValue::Integer(MAX_VISITS as i64 + 2));
        let sql = format!(
            "WITH RECURSIVE walk(id, depth, path) AS ({} LIMIT ?) SELECT id, depth, path FROM walk WHERE depth > 0",
            arms.join(" UNION ALL ")
        );
        (sql, params)
    }

    /// Runs it.
    pub fn run(&self, s: &Store<'_>) -> Result<Vec<Reached>, RpcError> {
        s.get(&self.start)?;
        let (sql, params) = self.sql();
        let rows = s.sql.query(&sql, &params)?;
        if rows.len() > MAX_VISITS {
            return Err(RpcError::new(
                Code::LimitExceeded,
                format!(
                    "the traversal followed more than {MAX_VISITS} relationships: narrow its steps (verb, type, where) or lower maxDepth"
                ),
            ));
        }
        let mut best: std::collections::HashMap<String, (usize, String)> = std::collections::HashMap::new();
        for r in &rows {
            let (Some(id), Some(depth), Some(path)) = (
                r.first().and_then(SqlValue::as_text),
                r.get(1).and_then(SqlValue::as_i64),
                r.get(2).and_then(SqlValue::as_text),
            ) else {
                return Err(RpcError::new(Code::Internal, "bad traversal row"));
            };
            let depth = depth as usize;
            match best.get(id) {
                Some((d, _)) if *d <= depth => {}
                _ => {
                    best.insert(id.to_string(), (depth, path.to_string()));
                }
            }
        }
        let mut found: Vec<(String, usize, String)> = best
            .into_iter()
            .filter(|(id, (d, _))| *d >= self.min_depth && *id != self.start)
            .map(|(id, (d, p))| (id, d, p))
            .collect();
        found.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        found
            .into_iter()
            .take(self.limit)
            .map(|(id, depth, path)| {
                let path: Vec<String> =
                    serde_json::from_str(&path).map_err(|_| RpcError::new(Code::Internal, "bad path"))?;
                Ok(Reached { thing: s.get(&id)?, depth, path })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_and_bad_ones_are_refused() {
        let r = Related::parse(r#"{"id": "c1", "verb": "purchase", "direction": "both"}"#).unwrap();
        assert_eq!((r.reach.verb.as_deref(), r.reach.direction), (Some("purchased"), Direction::Both));
        let t = Traverse::parse(r#"{"start": "a", "steps": [{"verb": "follows"}], "maxDepth": 3}"#).unwrap();
        assert_eq!((t.min_depth, t.max_depth, t.steps[0].verb.as_deref()), (1, 3, Some("followed")));
        let t = Traverse::parse(r#"{"start": "a", "steps": [{"verb": "buy"}, {"verb": "buy", "direction": "in"}]}"#)
            .unwrap();
        assert_eq!((t.min_depth, t.max_depth), (2, 2));
        let (sql, params) = t.sql();
        assert_eq!(sql.matches('?').count(), params.len(), "{sql}");
        for bad in [
            r#"{"verb": "x"}"#,
            r#"{"id": "a", "direction": "up"}"#,
            r#"{"id": "a", "verb": "a b"}"#,
            r#"{"id": "a", "cursor": "nope!"}"#,
            r#"{"id": "a", "bogus": 1}"#,
        ] {
            assert_eq!(Related::parse(bad).unwrap_err().code, Code::InvalidArgument, "{bad}");
        }
        for bad in [
            r#"{"start": "a", "steps": []}"#,
            r#"{"start": "a", "steps": [{"verb": "x"}], "minDepth": 2, "maxDepth": 1}"#,
        ] {
            assert_eq!(Traverse::parse(bad).unwrap_err().code, Code::InvalidArgument, "{bad}");
        }
        let deep = r#"{"start": "a", "steps": [{"verb": "x"}], "maxDepth": 9}"#;
        assert_eq!(Traverse::parse(deep).unwrap_err().code, Code::LimitExceeded);
        assert_eq!(Related::parse(r#"{"id": "a", "limit": 5000}"#).unwrap_err().code, Code::LimitExceeded);
    }
}
