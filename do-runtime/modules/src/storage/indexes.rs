//! Indexes on Things' fields: declared by a class (`Class::INDEXES`) or created at run
//! time (`storage.index`), kept in `dotdo_indexes`, and made SQLite expression indexes
//! of exactly the expressions the query compiler emits ([`Field::index_expr`]), so the
//! planner uses them for filters and sorts.
//!
//! A spec is JSON: a field name (`"age"`) or
//! `{"name": "byEmail", "fields": ["email"], "unique": true}`; a field may start with
//! `-` for a descending key. Every index covers live Things only (`WHERE deleted_at IS
//! NULL`, the condition every query has unless it asks for deleted ones): a unique index
//! lets a soft-deleted Thing's value be taken again, and restoring it then is CONFLICT.
//! A non-unique index ends with `id`, the tie-break of every sort.

use super::query::Field;
use crate::host::{Sql, SqlValue};
use rpc_core::{Code, RpcError};
use serde_json::{json, Value};

/// Most indexes one object keeps.
pub const MAX_INDEXES: usize = 32;
/// Most fields in one index.
pub const MAX_INDEX_FIELDS: usize = 4;
/// The prefix of the SQLite name of an index (`dotdo_ix_<name>`).
pub const SQL_PREFIX: &str = "dotdo_ix_";

/// The table of declared indexes (idempotent).
pub const MIGRATION: &str =
    "CREATE TABLE IF NOT EXISTS dotdo_indexes (name TEXT PRIMARY KEY, spec TEXT NOT NULL, created_at INTEGER NOT NULL)";

/// One index.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSpec {
    /// Its name (an identifier).
    pub name: String,
    /// Its keys: the field as given, and whether it is descending.
    pub fields: Vec<(String, bool)>,
    /// Whether two live Things may not share its values.
    pub unique: bool,
}

impl IndexSpec {
    /// Parses a spec (see the module docs).
    pub fn parse(text: &str) -> Result<IndexSpec, RpcError> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| RpcError::invalid_argument(format!("an index spec is JSON: {e}")))?;
        let (name, fields, unique) = match &v {
            Value::String(f) => (None, vec![f.clone()], false),
            Value::Object(o) => {
                if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "name" | "fields" | "unique")) {
                    return Err(RpcError::invalid_argument(format!("unknown index option {k:?}")));
                }
                let name = match o.get("name") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(n)) => Some(n.clone()),
                    Some(_) => return Err(RpcError::invalid_argument("an index's name is a string")),
                };
                let fields = match o.get("fields") {
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|f| f.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| RpcError::invalid_argument("an index's fields are strings"))?,
                    Some(Value::String(f)) => vec![f.clone()],
                    _ => return Err(RpcError::invalid_argument("an index needs \"fields\": [\"a\", \"-b\"]")),
                };
                let unique = match o.get("unique") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => return Err(RpcError::invalid_argument("\"unique\" is true or false")),
                };
                (name, fields, unique)
            }
            _ => return Err(RpcError::invalid_argument("an index spec is a field name or an object")),
        };
        if fields.is_empty() {
            return Err(RpcError::invalid_argument("an index needs at least one field"));
        }
        if fields.len() > MAX_INDEX_FIELDS {
            return Err(RpcError::new(Code::LimitExceeded, format!("an index has at most {MAX_INDEX_FIELDS} fields")));
        }
        let mut keys = Vec::new();
        for f in fields {
            let (desc, field) = match f.strip_prefix('-') {
                Some(rest) => (true, rest.to_string()),
                None => (false, f),
            };
            Field::parse(&field)?;
            keys.push((field, desc));
        }
        let name = match name {
            Some(n) => n,
            None => keys
                .iter()
                .map(|(f, _)| f.strip_prefix("data.").unwrap_or(f).replace('.', "_"))
                .collect::<Vec<_>>()
                .join("__"),
        };
        if !rpc_core::ident::is_identifier(&name) || name.len() > 64 {
            return Err(RpcError::invalid_argument(format!(
                "index name {name:?} is not an identifier of at most 64 characters"
            )));
        }
        Ok(IndexSpec { name, fields: keys, unique })
    }

    /// The spec as JSON (what `indexes` lists and `dotdo_indexes` keeps).
    pub fn to_json(&self) -> Value {
        let fields: Vec<String> =
            self.fields.iter().map(|(f, desc)| if *desc { format!("-{f}") } else { f.clone() }).collect();
        json!({ "name": self.name, "fields": fields, "unique": self.unique })
    }

    /// The SQLite name of the index.
    pub fn sql_name(&self) -> String {
        format!("{SQL_PREFIX}{}", self.name)
    }

    /// `CREATE INDEX` for it (names and paths are checked identifiers).
    pub fn ddl(&self) -> Result<String, RpcError> {
        let mut keys = Vec::new();
        for (f, desc) in &self.fields {
            let e = Field::parse(f)?.index_expr();
            keys.push(if *desc { format!("{e} DESC") } else { e });
        }
        if !self.unique && !self.fields.iter().any(|(f, _)| f == "id") {
            keys.push("id".into());
        }
        Ok(format!(
            "CREATE {}INDEX {} ON things ({}) WHERE deleted_at IS NULL",
            if self.unique { "UNIQUE " } else { "" },
            self.sql_name(),
            keys.join(", ")
        ))
    }
}

fn stored(sql: &dyn Sql) -> Result<Vec<IndexSpec>, RpcError> {
    let rows = sql.query("SELECT spec FROM dotdo_indexes ORDER BY name", &[])?;
    rows.iter()
        .map(|r| {
            let text = r.first().and_then(SqlValue::as_text).unwrap_or("");
            IndexSpec::parse(text)
        })
        .collect()
}

/// The object's indexes, by name.
pub fn list(sql: &dyn Sql) -> Result<Vec<IndexSpec>, RpcError> {
    stored(sql)
}

/// Creates `spec` (building it over the Things there are) and keeps it. The same spec
/// again is a no-op; another spec under an existing name is CONFLICT, as is a unique
/// index over values two live Things share. Runs in the caller's transaction, if any.
/// Returns whether the index is new.
pub fn create(sql: &dyn Sql, spec: &IndexSpec, now_ms: i64) -> Result<bool, RpcError> {
    let existing = stored(sql)?;
    // SQLite's index names ignore case, so these do too.
    if let Some(e) = existing.iter().find(|e| e.name.eq_ignore_ascii_case(&spec.name)) {
        if e == spec {
            return Ok(false);
        }
        return Err(RpcError::new(
            Code::Conflict,
            format!("an index named {:?} exists with other fields; drop it first", spec.name),
        ));
    }
    if existing.len() >= MAX_INDEXES {
        return Err(RpcError::new(Code::LimitExceeded, format!("an object has at most {MAX_INDEXES} indexes")));
    }
    let ddl = spec.ddl()?;
    sql.transaction(&mut || {
        sql.execute(&ddl, &[]).map_err(|e| unique_error(e, spec))?;
        sql.execute(
            "INSERT INTO dotdo_indexes (name, spec, created_at) VALUES (?, ?, ?)",
            &[SqlValue::Text(spec.name.clone()), SqlValue::Text(spec.to_json().to_string()), SqlValue::Integer(now_ms)],
        )?;
        Ok(())
    })?;
    Ok(true)
}

fn unique_error(e: RpcError, spec: &IndexSpec) -> RpcError {
    if e.message.contains("UNIQUE constraint failed") || e.code == Code::Conflict {
        return RpcError::new(
            Code::Conflict,
            format!("live things already share values of unique index {:?}'s fields", spec.name),
        );
    }
    e
}

/// Drops the index `name`; whether there was one.
pub fn drop(sql: &dyn Sql, name: &str) -> Result<bool, RpcError> {
    let Some(spec) = stored(sql)?.into_iter().find(|s| s.name.eq_ignore_ascii_case(name)) else {
        return Ok(false);
    };
    sql.transaction(&mut || {
        sql.execute(&format!("DROP INDEX IF EXISTS {}", spec.sql_name()), &[])?;
        sql.execute("DELETE FROM dotdo_indexes WHERE name = ?", &[SqlValue::Text(spec.name.clone())])?;
        Ok(())
    })?;
    Ok(true)
}

/// Makes the object's indexes those a class declares in `specs` (each JSON): creates
/// the missing, rebuilds one whose fields changed (the old one stays if the new one
/// cannot be built). Indexes created at run time under other names are kept. A spec
/// that does not parse is an error (the class's code is wrong); one that cannot be
/// built over the Things there are (a unique index over shared values) is logged and
/// skipped, so the object still loads and its data can be fixed.
pub fn declare(sql: &dyn Sql, specs: &[&str], now_ms: i64) -> Result<(), RpcError> {
    for text in specs {
        let spec = IndexSpec::parse(text)?;
        let existing = stored(sql)?.into_iter().find(|e| e.name.eq_ignore_ascii_case(&spec.name));
        if existing.as_ref() == Some(&spec) {
            continue;
        }
        let built = sql.transaction(&mut || {
            if let Some(e) = &existing {
                drop(sql, &e.name)?;
            }
            create(sql, &spec, now_ms).map(|_| ())
        });
        if let Err(e) = built {
            tracing::error!(index = %spec.name, code = e.code.as_str(), error = %e.message, "a declared index cannot be built: skipped");
        }
    }
    Ok(())
}

/// SQLite's plan for a page of `q`: the detail of each step.
pub fn explain(sql: &dyn Sql, q: &super::query::Query) -> Result<Vec<String>, RpcError> {
    let (page, params) = q.page_sql();
    let rows = sql.query(&format!("EXPLAIN QUERY PLAN {page}"), &params)?;
    Ok(rows.iter().filter_map(|r| r.last().and_then(SqlValue::as_text).map(str::to_string)).collect())
}

/// A message for a write that broke a unique index: which index, not SQLite's words.
pub fn explain_conflict(e: RpcError) -> RpcError {
    if e.code != Code::Conflict && !e.message.contains("UNIQUE constraint failed") {
        return e;
    }
    match e.message.find(SQL_PREFIX) {
        Some(at) => {
            let name: String = e.message[at + SQL_PREFIX.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            RpcError::new(Code::Conflict, format!("another live thing has the same values of unique index {name:?}"))
        }
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_to_indexes_on_the_query_expressions() {
        let s = IndexSpec::parse(r#""age""#).unwrap();
        assert_eq!((s.name.as_str(), s.unique), ("age", false));
        assert_eq!(
            s.ddl().unwrap(),
            "CREATE INDEX dotdo_ix_age ON things (json_extract(data, '$.age'), id) WHERE deleted_at IS NULL"
        );
        let s = IndexSpec::parse(r#"{"fields": ["type", "data.address.city", "-createdAt"]}"#).unwrap();
        assert_eq!(s.name, "type__address_city__createdAt");
        assert!(s.ddl().unwrap().contains("(type, json_extract(data, '$.address.city'), created_at DESC, id)"));
        let s = IndexSpec::parse(r#"{"name": "byEmail", "fields": ["email"], "unique": true}"#).unwrap();
        assert_eq!(
            s.ddl().unwrap(),
            "CREATE UNIQUE INDEX dotdo_ix_byEmail ON things (json_extract(data, '$.email')) WHERE deleted_at IS NULL"
        );
        assert_eq!(IndexSpec::parse(&s.to_json().to_string()).unwrap(), s);
    }

    #[test]
    fn bad_specs_are_refused() {
        for bad in [
            r#""a'b""#,
            r#"{"fields": []}"#,
            r#"{"fields": ["a"], "name": "x y"}"#,
            r#"{"fields": ["a"], "unique": "yes"}"#,
            r#"{"fields": ["a"], "where": {}}"#,
            r#"{"fields": [1]}"#,
            "[]",
            "not json",
        ] {
            assert_eq!(IndexSpec::parse(bad).unwrap_err().code, Code::InvalidArgument, "{bad}");
        }
        let many = r#"{"fields": ["a", "b", "c", "d", "e"]}"#;
        assert_eq!(IndexSpec::parse(many).unwrap_err().code, Code::LimitExceeded);
    }
}
