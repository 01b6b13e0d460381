//! The storage query language: JSON in, parameterised SQL out. Values always travel as
//! parameters. A data field's path is written into the statement as a literal
//! (`json_extract(data, '$.a.b')`), so SQLite can match it to an expression index
//! ([`super::indexes`]); a path is checked by [`rpc_core::ident::field_path`] first,
//! which lets through only ASCII identifiers and dots, nothing that could end a literal.
//!
//! ```json
//! {"type": "Customer",
//!  "where": {"data.age": {"$gte": 18}, "$or": [{"data.tier": "gold"}, {"data.tags": {"$contains": "vip"}}]},
//!  "sort": ["-data.age", "createdAt"], "limit": 20, "cursor": "..."}
//! ```
//!
//! Operators: `$eq $ne $gt $gte $lt $lte $in $nin $exists $regex $contains`, combined with
//! `$and $or $not`. Fields are the built-ins (`id type createdAt updatedAt deletedAt
//! version`) or data paths (`data.a.b`, or `a.b` for short).

use crate::host::SqlValue;
use base64::Engine as _;
use rpc_core::{Code, RpcError};
use serde_json::{Map, Value};

/// Limits on one query.
pub mod limits {
    /// Deepest nesting of `$and`/`$or`/`$not`.
    pub const MAX_DEPTH: usize = 8;
    /// Most conditions in one filter.
    pub const MAX_CONDITIONS: usize = 64;
    /// Longest `$in`/`$nin` list.
    pub const MAX_IN: usize = 256;
    /// Longest `$regex` pattern.
    pub const MAX_REGEX: usize = 256;
    /// Largest page (and the default when none is given: 100).
    pub const MAX_LIMIT: u32 = 1000;
    /// Most sort keys.
    pub const MAX_SORT: usize = 4;
    /// Most segments in a field path.
    pub const MAX_PATH_SEGMENTS: usize = rpc_core::ident::MAX_FIELD_SEGMENTS;
}

fn too_much(msg: impl Into<String>) -> RpcError {
    RpcError::new(Code::LimitExceeded, msg)
}

/// A field a query can name.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// A built-in column.
    Column(&'static str),
    /// A JSON path into `data`, e.g. `$.address.city`.
    Data(String),
}

impl Field {
    /// Parses `createdAt`, `data.a.b` or `a.b`; the path follows [`rpc_core::ident::field_path`].
    pub fn parse(name: &str) -> Result<Field, RpcError> {
        let column = match name {
            "id" => Some("id"),
            "type" => Some("type"),
            "createdAt" => Some("created_at"),
            "updatedAt" => Some("updated_at"),
            "deletedAt" => Some("deleted_at"),
            "version" => Some("version"),
            _ => None,
        };
        if let Some(c) = column {
            return Ok(Field::Column(c));
        }
        let path = name.strip_prefix("data.").unwrap_or(name);
        rpc_core::ident::field_path(path)?;
        Ok(Field::Data(format!("$.{path}")))
    }

    /// The SQL expression for this field and its parameters (none: a data path is a
    /// literal, the same text an index on the field was created with).
    fn expr(&self) -> (String, Vec<SqlValue>) {
        (self.index_expr(), Vec::new())
    }

    /// The SQL expression for this field, with no parameters: what a query compiles
    /// the field to, and so what an index on it must be made of.
    pub fn index_expr(&self) -> String {
        match self {
            // deletedAt is 0 on live things, as a Thing reports it.
            Field::Column("deleted_at") => "COALESCE(deleted_at, 0)".to_string(),
            Field::Column(c) => (*c).to_string(),
            // The path passed `field_path` (identifiers and dots): no quote can be in it.
            Field::Data(path) => format!("json_extract(data, '{path}')"),
        }
    }

    /// The SQL expression for this field, pushing its parameters.
    pub fn sql(&self, params: &mut Vec<SqlValue>) -> String {
        let (e, p) = self.expr();
        params.extend(p);
        e
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `$eq`
    Eq,
    /// `$ne`
    Ne,
    /// `$gt`
    Gt,
    /// `$gte`
    Gte,
    /// `$lt`
    Lt,
    /// `$lte`
    Lte,
    /// `$in`
    In,
    /// `$nin`
    Nin,
    /// `$exists`
    Exists,
    /// `$regex`
    Regex,
    /// `$contains`
    Contains,
}

impl Op {
    fn parse(s: &str) -> Result<Op, RpcError> {
        Ok(match s {
            "$eq" => Op::Eq,
            "$ne" => Op::Ne,
            "$gt" => Op::Gt,
            "$gte" => Op::Gte,
            "$lt" => Op::Lt,
            "$lte" => Op::Lte,
            "$in" => Op::In,
            "$nin" => Op::Nin,
            "$exists" => Op::Exists,
            "$regex" => Op::Regex,
            "$contains" => Op::Contains,
            other => return Err(RpcError::invalid_argument(format!("unknown operator {other:?}"))),
        })
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// All must hold.
    And(Vec<Filter>),
    /// At least one must hold.
    Or(Vec<Filter>),
    /// Must not hold.
    Not(Box<Filter>),
    /// One comparison.
    Cond(Field, Op, Value),
}

struct Budget {
    conditions: usize,
}

/// Parses a `where` object.
pub fn parse_filter(v: &Value) -> Result<Filter, RpcError> {
    parse_object(v, 0, &mut Budget { conditions: 0 })
}

fn parse_object(v: &Value, depth: usize, budget: &mut Budget) -> Result<Filter, RpcError> {
    if depth > limits::MAX_DEPTH {
        return Err(too_much(format!("filter nested deeper than {}", limits::MAX_DEPTH)));
    }
    let obj = v.as_object().ok_or_else(|| RpcError::invalid_argument("a filter must be a JSON object"))?;
    let mut parts = Vec::new();
    for (k, val) in obj {
        match k.as_str() {
            "$and" | "$or" => {
                let items = val
                    .as_array()
                    .ok_or_else(|| RpcError::invalid_argument(format!("{k} takes an array of filters")))?;
                let subs = items.iter().map(|i| parse_object(i, depth + 1, budget)).collect::<Result<Vec<_>, _>>()?;
                parts.push(if k == "$and" { Filter::And(subs) } else { Filter::Or(subs) });
            }
            "$not" => parts.push(Filter::Not(Box::new(parse_object(val, depth + 1, budget)?))),
            op if op.starts_with('$') => {
                return Err(RpcError::invalid_argument(format!(
                    "operator {op} needs a field: {{\"field\": {{\"{op}\": ...}}}}"
                )))
            }
            field => {
                let field = Field::parse(field)?;
                match val.as_object().filter(|m| m.keys().all(|k| k.starts_with('$'))).filter(|m| !m.is_empty()) {
                    Some(ops) => {
                        for (op, arg) in ops {
                            parts.push(condition(field.clone(), Op::parse(op)?, arg, budget)?);
                        }
                    }
                    None => parts.push(condition(field, Op::Eq, val, budget)?),
                }
            }
        }
    }
    Ok(if parts.len() == 1 { parts.remove(0) } else { Filter::And(parts) })
}

fn condition(field: Field, op: Op, arg: &Value, budget: &mut Budget) -> Result<Filter, RpcError> {
    budget.conditions += 1;
    if budget.conditions > limits::MAX_CONDITIONS {
        return Err(too_much(format!("more than {} conditions in one filter", limits::MAX_CONDITIONS)));
    }
    let scalar = |v: &Value| !v.is_array() && !v.is_object();
    match op {
        Op::In | Op::Nin => {
            let items = arg.as_array().ok_or_else(|| RpcError::invalid_argument("$in and $nin take an array"))?;
            if items.len() > limits::MAX_IN {
                return Err(too_much(format!(
                    "$in list of {} items is over the limit of {}",
                    items.len(),
                    limits::MAX_IN
                )));
            }
            if !items.iter().all(scalar) {
                return Err(RpcError::invalid_argument("$in and $nin take an array of scalars"));
            }
        }
        Op::Exists if !arg.is_boolean() => return Err(RpcError::invalid_argument("$exists takes true or false")),
        Op::Regex => {
            let p = arg.as_str().ok_or_else(|| RpcError::invalid_argument("$regex takes a string"))?;
            if p.len() > limits::MAX_REGEX {
                return Err(too_much(format!(
                    "$regex of {} chars is over the limit of {}",
                    p.len(),
                    limits::MAX_REGEX
                )));
            }
            compile_regex(p)?;
        }
        Op::Contains if !scalar(arg) || arg.is_null() => {
            return Err(RpcError::invalid_argument("$contains takes a string, number or boolean"))
        }
        Op::Eq | Op::Ne | Op::Gt | Op::Gte | Op::Lt | Op::Lte if !scalar(arg) => {
            return Err(RpcError::invalid_argument("comparison operators take a string, number, boolean or null"))
        }
        _ => {}
    }
    Ok(Filter::Cond(field, op, arg.clone()))
}

/// Compiles a `$regex` pattern with Rust's linear-time engine and a size cap.
pub fn compile_regex(p: &str) -> Result<regex::Regex, RpcError> {
    regex::RegexBuilder::new(p)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| RpcError::invalid_argument(format!("bad $regex {p:?}: {e}")))
}

/// The SQL parameter for a JSON scalar (booleans as SQLite's json_extract gives them).
pub fn sql_value(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

/// Compiles a filter to a SQL condition, pushing its parameters.
pub fn filter_sql(f: &Filter, params: &mut Vec<SqlValue>) -> String {
    match f {
        Filter::And(v) if v.is_empty() => "1".into(),
        Filter::Or(v) if v.is_empty() => "0".into(),
        Filter::And(v) => format!("({})", v.iter().map(|x| filter_sql(x, params)).collect::<Vec<_>>().join(" AND ")),
        Filter::Or(v) => format!("({})", v.iter().map(|x| filter_sql(x, params)).collect::<Vec<_>>().join(" OR ")),
        // A comparison with a missing field is unknown (NULL); `$not` counts it as false,
        // so `{"$not": {"city": "Oslo"}}` includes things without a city.
        Filter::Not(x) => format!("(NOT COALESCE({}, 0))", filter_sql(x, params)),
        Filter::Cond(field, op, arg) => cond_sql(field, *op, arg, params),
    }
}

fn cond_sql(field: &Field, op: Op, arg: &Value, params: &mut Vec<SqlValue>) -> String {
    let (e, ep) = field.expr();
    let v = sql_value(arg);
    // Pushes the parameters in the order their `?`s appear in the returned text.
    let mut emit = |parts: Vec<SqlValue>, sql: String| {
        params.extend(parts);
        sql
    };
    let with = |extra: Vec<SqlValue>| {
        let mut p = ep.clone();
        p.extend(extra);
        p
    };
    match op {
        Op::Eq if arg.is_null() => emit(with(vec![]), format!("({e} IS NULL)")),
        Op::Ne if arg.is_null() => emit(with(vec![]), format!("({e} IS NOT NULL)")),
        Op::Eq => emit(with(vec![v]), format!("({e} = ?)")),
        // As in MongoDB, a missing field is "not equal".
        Op::Ne => emit(with(vec![v]), format!("({e} IS NOT ?)")),
        Op::Gt => emit(with(vec![v]), format!("({e} > ?)")),
        Op::Gte => emit(with(vec![v]), format!("({e} >= ?)")),
        Op::Lt => emit(with(vec![v]), format!("({e} < ?)")),
        Op::Lte => emit(with(vec![v]), format!("({e} <= ?)")),
        Op::In | Op::Nin => {
            let items = arg.as_array().map(Vec::as_slice).unwrap_or(&[]);
            if items.is_empty() {
                return if op == Op::In { "0".into() } else { "1".into() };
            }
            let marks = vec!["?"; items.len()].join(", ");
            let not = if op == Op::Nin { "NOT " } else { "" };
            emit(with(items.iter().map(sql_value).collect()), format!("({e} {not}IN ({marks}))"))
        }
        Op::Exists => {
            let not = if arg.as_bool().unwrap_or(true) { "NOT " } else { "" };
            match field {
                Field::Column(_) => emit(vec![], format!("({e} IS {not}NULL)")),
                // json_type tells a stored JSON null apart from a missing key.
                Field::Data(path) => {
                    emit(vec![SqlValue::Text(path.clone())], format!("(json_type(data, ?) IS {not}NULL)"))
                }
            }
        }
        Op::Regex => {
            let mut p = vec![v];
            p.extend(ep.clone());
            emit(p, format!("dotdo_regexp(?, {e})"))
        }
        Op::Contains => match field {
            Field::Column(_) => emit(vec![v], format!("(instr({e}, ?) > 0)")),
            Field::Data(path) => {
                // Arrays contain an element equal to the value; text contains it as a substring.
                let p = SqlValue::Text(path.clone());
                emit(
                    vec![p.clone(), p.clone(), v.clone(), p, v],
                    "(CASE json_type(data, ?) WHEN 'array' THEN EXISTS (SELECT 1 FROM json_each(things.data, ?) AS j \
                     WHERE j.value = ?) ELSE instr(json_extract(data, ?), ?) > 0 END)"
                        .to_string(),
                )
            }
        },
    }
}

/// One sort key.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// What to sort by.
    pub field: Field,
    /// Descending?
    pub desc: bool,
}

/// Where a page starts: the sort values and id of the last row of the page before.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    keys: Vec<Value>,
    id: String,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Only things of this type.
    pub type_: Option<String>,
    /// The `where` filter.
    pub filter: Option<Filter>,
    /// Sort keys (the id is always the last tie-breaker).
    pub sort: Vec<SortKey>,
    /// The sort as written, to check a cursor belongs to this query.
    signature: String,
    /// Page size.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u32,
    /// Where the page starts.
    pub cursor: Option<Cursor>,
    /// Include soft-deleted things.
    pub include_deleted: bool,
    /// Bring back the archived Things it matches first ([`super::archive`]).
    pub include_cold: bool,
    /// What of each thing's data to return.
    pub projection: Projection,
    /// Filters or sorts on an indexed field: keep the planner off the type's index.
    pub prefer_indexed: bool,
}

/// The part of a thing's data a query returns (`select` / `exclude`; id, type, version
/// and the timestamps always come).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Projection {
    /// All of it.
    #[default]
    All,
    /// Only these JSON paths (`$.a.b`); a path the thing lacks is left out.
    Select(Vec<String>),
    /// All but these JSON paths.
    Exclude(Vec<String>),
}

/// Most fields a `select` or `exclude` names.
pub const MAX_PROJECTED: usize = 32;

fn parse_projection(obj: &Map<String, Value>) -> Result<Projection, RpcError> {
    let paths = |key: &str| -> Result<Option<Vec<String>>, RpcError> {
        let Some(v) = obj.get(key).filter(|v| !v.is_null()) else { return Ok(None) };
        let items = v.as_array().ok_or_else(|| {
            RpcError::invalid_argument(format!("{key} takes an array of data fields like [\"name\", \"address.city\"]"))
        })?;
        if items.is_empty() {
            return Err(RpcError::invalid_argument(format!("{key} names at least one field")));
        }
        if items.len() > MAX_PROJECTED {
            return Err(too_much(format!("{key} names at most {MAX_PROJECTED} fields")));
        }
        items
            .iter()
            .map(|i| {
                let name = i.as_str().ok_or_else(|| RpcError::invalid_argument(format!("{key} fields are strings")))?;
                match Field::parse(name)? {
                    Field::Data(path) => Ok(path),
                    Field::Column(_) => Err(RpcError::invalid_argument(format!(
                        "{key} names data fields; {name:?} always comes with a thing"
                    ))),
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    };
    match (paths("select")?, paths("exclude")?) {
        (Some(_), Some(_)) => Err(RpcError::invalid_argument("a query has select or exclude, not both")),
        (Some(s), None) => Ok(Projection::Select(s)),
        (None, Some(e)) => Ok(Projection::Exclude(e)),
        (None, None) => Ok(Projection::All),
    }
}

impl Projection {
    /// The SQL expression of the projected data, pushing its parameters.
    pub fn data_sql(&self, params: &mut Vec<SqlValue>) -> String {
        match self {
            Projection::All => "data".to_string(),
            Projection::Exclude(paths) => {
                params.extend(paths.iter().map(|p| SqlValue::Text(p.clone())));
                format!("json_remove(data{})", ", ?".repeat(paths.len()))
            }
            // Each selected path is set into an empty object (json_set makes the objects
            // on the way), then the ones the thing lacks are removed again (a path that
            // exists is swapped for one that cannot, which removes nothing).
            Projection::Select(paths) => {
                let mut sets = String::new();
                for p in paths {
                    params.extend([SqlValue::Text(p.clone()), SqlValue::Text(p.clone())]);
                    sets.push_str(", ?, data -> ?");
                }
                let mut absent = String::new();
                for p in paths {
                    params.extend([SqlValue::Text(p.clone()), SqlValue::Text(p.clone())]);
                    absent.push_str(", CASE WHEN json_type(data, ?) IS NULL THEN ? ELSE '$.\"\u{1}\"' END");
                }
                format!("json_remove(json_set('{{}}'{sets}){absent})")
            }
        }
    }
}

/// The columns every thing query selects, in order.
pub const THING_COLUMNS: &str = "id, type, data, created_at, updated_at, deleted_at, version";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

impl Query {
    /// Parses a query; the empty string is the query of everything.
    pub fn parse(text: &str) -> Result<Query, RpcError> {
        let v: Value = if text.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_str(text)
                .map_err(|e| RpcError::invalid_argument(format!("query is not valid JSON: {e}")))?
        };
        let obj = v.as_object().ok_or_else(|| RpcError::invalid_argument("a query must be a JSON object"))?;
        for k in obj.keys() {
            if ![
                "type",
                "where",
                "sort",
                "limit",
                "offset",
                "cursor",
                "includeDeleted",
                "includeCold",
                "select",
                "exclude",
            ]
            .contains(&k.as_str())
            {
                return Err(RpcError::invalid_argument(format!("unknown query key {k:?}")));
            }
        }
        let type_ = match obj.get("type") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(RpcError::invalid_argument("type must be a string")),
        };
        let filter = obj.get("where").map(parse_filter).transpose()?;
        let mut sort = Vec::new();
        let mut names = Vec::new();
        if let Some(s) = obj.get("sort") {
            let items = s.as_array().ok_or_else(|| {
                RpcError::invalid_argument("sort takes an array like [\"-createdAt\", \"data.name\"]")
            })?;
            if items.len() > limits::MAX_SORT {
                return Err(too_much(format!("more than {} sort keys", limits::MAX_SORT)));
            }
            for item in items {
                let name = item.as_str().ok_or_else(|| RpcError::invalid_argument("sort keys are strings"))?;
                let (desc, field) = match name.strip_prefix('-') {
                    Some(f) => (true, f),
                    None => (false, name.strip_prefix('+').unwrap_or(name)),
                };
                sort.push(SortKey { field: Field::parse(field)?, desc });
                names.push(name.to_string());
            }
        }
        let number = |key: &str, default: u64| -> Result<u64, RpcError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_u64()
                    .ok_or_else(|| RpcError::invalid_argument(format!("{key} must be a non-negative integer"))),
            }
        };
        let limit = number("limit", 100)?;
        if limit > u64::from(limits::MAX_LIMIT) {
            return Err(too_much(format!("limit {limit} is over the page size limit of {}", limits::MAX_LIMIT)));
        }
        let offset =
            u32::try_from(number("offset", 0)?).map_err(|_| RpcError::invalid_argument("offset is too large"))?;
        let include_deleted = match obj.get("includeDeleted") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(RpcError::invalid_argument("includeDeleted must be true or false")),
        };
        let include_cold = match obj.get("includeCold") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(RpcError::invalid_argument("includeCold must be true or false")),
        };
        let signature = names.join(",");
        let cursor = match obj.get("cursor") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(decode_cursor(s, &signature, sort.len())?),
            Some(_) => return Err(RpcError::invalid_argument("cursor must be a string")),
        };
        let projection = parse_projection(obj)?;
        Ok(Query {
            type_,
            filter,
            sort,
            signature,
            limit: limit as u32,
            offset,
            cursor,
            include_deleted,
            include_cold,
            projection,
            prefer_indexed: false,
        })
    }

    /// Notes whether the query filters (at its top level) or first sorts on a field
    /// that leads an index (`leading`: the fields' SQL expressions). SQLite, without
    /// statistics, would rather take the type's index for `type = ?` than an index on a
    /// range; such a query then writes `+type = ?`, which no index serves, so the
    /// planner takes the one its author declared.
    pub fn use_indexes(&mut self, leading: &[String]) {
        let indexed = |f: &Field| {
            let e = f.index_expr();
            e != "type" && leading.contains(&e)
        };
        let served = |f: &Filter| match f {
            Filter::Cond(field, op, arg) => {
                matches!(op, Op::Eq | Op::Gt | Op::Gte | Op::Lt | Op::Lte | Op::In) && !arg.is_null() && indexed(field)
            }
            _ => false,
        };
        let filtered = match &self.filter {
            Some(Filter::And(terms)) => terms.iter().any(served),
            Some(f) => served(f),
            None => false,
        };
        self.prefer_indexed = filtered || self.sort.first().is_some_and(|k| indexed(&k.field));
    }

    /// The conditions of the query (type, deletion, filter), pushing parameters.
    pub fn where_sql(&self, params: &mut Vec<SqlValue>) -> String {
        self.conditions(params, self.prefer_indexed)
    }

    fn conditions(&self, params: &mut Vec<SqlValue>, prefer_indexed: bool) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.type_ {
            params.push(SqlValue::Text(t.clone()));
            parts.push(if prefer_indexed { "+type = ?" } else { "type = ?" }.to_string());
        }
        if !self.include_deleted {
            parts.push("deleted_at IS NULL".to_string());
        }
        if let Some(f) = &self.filter {
            parts.push(filter_sql(f, params));
        }
        if parts.is_empty() {
            "1".to_string()
        } else {
            parts.join(" AND ")
        }
    }

    /// `SELECT` of one page's rows, as `(rowid, bytes of data)` in the query's order: no
    /// document is read into memory (the store loads the rows that fit the page's byte
    /// budget one at a time with [`Query::row_sql`]). Fetches one row more than the
    /// page, so the caller knows whether another page follows.
    pub fn page_sql(&self) -> (String, Vec<SqlValue>) {
        let mut params = Vec::new();
        let mut conds = vec![self.where_sql(&mut params)];
        if let Some(c) = &self.cursor {
            conds.push(self.after_cursor(c, &mut params));
        }
        let mut order: Vec<String> = Vec::new();
        for k in &self.sort {
            let e = k.field.sql(&mut params);
            order.push(format!("{e} {}", if k.desc { "DESC" } else { "ASC" }));
        }
        order.push("id ASC".to_string());
        params.push(SqlValue::Integer(i64::from(self.limit) + 1));
        params.push(SqlValue::Integer(i64::from(self.offset)));
        let sql = format!(
            "SELECT rowid, octet_length(data) FROM things WHERE {} ORDER BY {} LIMIT ? OFFSET ?",
            conds.join(" AND "),
            order.join(", ")
        );
        (sql, params)
    }

    /// `SELECT` of one row of a page by its rowid (the last parameter, for the caller to
    /// push): the thing columns, then the sort values (for the cursor).
    pub fn row_sql(&self) -> (String, Vec<SqlValue>) {
        let mut params = Vec::new();
        let data = self.projection.data_sql(&mut params);
        let extra: String = self.sort.iter().map(|k| format!(", {}", k.field.sql(&mut params))).collect();
        (
            format!("SELECT id, type, {data}, created_at, updated_at, deleted_at, version{extra} FROM things WHERE rowid = ?"),
            params,
        )
    }

    /// `SELECT` of the next `page` matches of the query (its filter and cursor; sort,
    /// limit and offset do not apply) after `after`, as `(rowid, created_at)`: how a bulk
    /// update or delete walks its matches in pages inside one transaction. A query of
    /// one type walks the type's index in `(created_at, rowid)` order, any other query
    /// the table in rowid order; either way each page continues where the last ended (no
    /// sort, no rescan), and no row is visited twice (writes change neither key).
    /// `after` is the `(created_at, rowid)` of the last row of the page before, or
    /// `(i64::MIN, i64::MIN)` to start.
    pub fn ids_after_sql(&self, after: (i64, i64), page: i64) -> (String, Vec<SqlValue>) {
        let mut params = Vec::new();
        let (position, order) = if self.type_.is_some() {
            params.extend([SqlValue::Integer(after.0), SqlValue::Integer(after.1)]);
            ("(created_at, rowid) > (?, ?)", "created_at, rowid")
        } else {
            params.push(SqlValue::Integer(after.1));
            ("rowid > ?", "rowid")
        };
        // This walk relies on the type's index, whatever other index the query could use.
        let mut conds = vec![position.to_string(), self.conditions(&mut params, false)];
        if let Some(c) = &self.cursor {
            conds.push(self.after_cursor(c, &mut params));
        }
        params.push(SqlValue::Integer(page));
        let sql =
            format!("SELECT rowid, created_at FROM things WHERE {} ORDER BY {order} LIMIT ?", conds.join(" AND "));
        (sql, params)
    }

    /// `SELECT COUNT(*)` of the query (ignoring paging).
    pub fn count_sql(&self) -> (String, Vec<SqlValue>) {
        let mut params = Vec::new();
        let w = self.where_sql(&mut params);
        (format!("SELECT COUNT(*) FROM things WHERE {w}"), params)
    }

    fn after_cursor(&self, c: &Cursor, params: &mut Vec<SqlValue>) -> String {
        let mut alternatives = Vec::new();
        for i in 0..=self.sort.len() {
            let mut clause = Vec::new();
            for (k, v) in self.sort.iter().zip(&c.keys).take(i) {
                let e = k.field.sql(params);
                params.push(sql_value(v));
                clause.push(format!("{e} IS ?"));
            }
            if i < self.sort.len() {
                let (k, v) = (&self.sort[i], &c.keys[i]);
                let e = k.field.sql(params);
                clause.push(match (k.desc, v.is_null()) {
                    (false, true) => format!("{e} IS NOT NULL"),
                    (true, true) => "0".to_string(),
                    (false, false) => {
                        params.push(sql_value(v));
                        format!("{e} > ?")
                    }
                    (true, false) => {
                        params.push(sql_value(v));
                        let again = k.field.sql(params);
                        format!("({e} < ? OR {again} IS NULL)")
                    }
                });
            } else {
                params.push(SqlValue::Text(c.id.clone()));
                clause.push("id > ?".to_string());
            }
            alternatives.push(format!("({})", clause.join(" AND ")));
        }
        format!("({})", alternatives.join(" OR "))
    }

    /// The cursor that continues after a row with these sort values and id.
    pub fn cursor_after(&self, sort_values: &[SqlValue], id: &str) -> String {
        let keys: Vec<Value> = sort_values
            .iter()
            .map(|v| match v {
                SqlValue::Null => Value::Null,
                SqlValue::Integer(i) => Value::from(*i),
                SqlValue::Real(f) => Value::from(*f),
                SqlValue::Text(s) => Value::from(s.clone()),
            })
            .collect();
        let body = serde_json::json!({ "s": self.signature, "k": keys, "id": id });
        b64().encode(body.to_string())
    }
}

fn decode_cursor(s: &str, signature: &str, keys: usize) -> Result<Cursor, RpcError> {
    let invalid =
        || RpcError::invalid_argument("invalid cursor: pass back the cursor a query returned, with the same sort");
    let raw = b64().decode(s).map_err(|_| invalid())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| invalid())?;
    if v.get("s").and_then(Value::as_str) != Some(signature) {
        return Err(invalid());
    }
    let k = v.get("k").and_then(Value::as_array).filter(|k| k.len() == keys).ok_or_else(invalid)?;
    let id = v.get("id").and_then(Value::as_str).ok_or_else(invalid)?;
    Ok(Cursor { keys: k.clone(), id: id.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(v: Value) -> Result<Query, RpcError> {
        Query::parse(&v.to_string())
    }

    #[test]
    fn values_become_parameters_and_checked_paths_literals() {
        let query =
            q(json!({"type": "Customer", "where": {"data.age": {"$gte": 18}, "name": "ann", "n": "o'x"}})).unwrap();
        let (sql, params) = query.page_sql();
        assert!(sql.contains("json_extract(data, '$.age') >= ?"), "{sql}");
        assert!(params.contains(&SqlValue::Text("ann".into())));
        assert!(params.contains(&SqlValue::Text("o'x".into())));
        assert!(!sql.contains("ann") && !sql.contains("Customer") && !sql.contains("o'x"), "values stay out: {sql}");
        // The only literals in the text are the checked paths.
        let quoted: Vec<&str> = sql.split('\'').skip(1).step_by(2).collect();
        assert!(quoted.iter().all(|p| p.starts_with("$.") && rpc_core::ident::field_path(&p[2..]).is_ok()), "{sql}");
    }

    #[test]
    fn hostile_field_names_and_operators_are_refused() {
        for bad_field in ["a'; DROP TABLE things; --", "a..b", "1abc", "a b", "$where", "a.b-c"] {
            let e = q(json!({"where": {bad_field: 1}})).unwrap_err();
            assert_eq!(e.code, Code::InvalidArgument, "{bad_field}");
        }
        assert_eq!(q(json!({"where": {"a": {"$where": "1"}}})).unwrap_err().code, Code::InvalidArgument);
        assert_eq!(q(json!({"where": {"a": {"$regex": "(unclosed"}}})).unwrap_err().code, Code::InvalidArgument);
        assert_eq!(q(json!({"bogus": 1})).unwrap_err().code, Code::InvalidArgument);
    }

    #[test]
    fn limits_give_limit_exceeded() {
        let mut deep = json!({"a": 1});
        for _ in 0..12 {
            deep = json!({ "$not": deep });
        }
        assert_eq!(q(json!({ "where": deep })).unwrap_err().code, Code::LimitExceeded);
        let many: Map<String, Value> = (0..80).map(|i| (format!("f{i}"), json!(i))).collect();
        assert_eq!(q(json!({ "where": many })).unwrap_err().code, Code::LimitExceeded);
        let big: Vec<i32> = (0..300).collect();
        assert_eq!(q(json!({"where": {"a": {"$in": big}}})).unwrap_err().code, Code::LimitExceeded);
        assert_eq!(q(json!({"where": {"a": {"$regex": "a".repeat(300)}}})).unwrap_err().code, Code::LimitExceeded);
        assert_eq!(q(json!({"limit": 5000})).unwrap_err().code, Code::LimitExceeded);
    }

    #[test]
    fn placeholders_match_parameters() {
        let query = q(json!({
            "where": {"$or": [{"a.b": {"$in": [1, 2]}}, {"tags": {"$contains": "x"}}, {"n": {"$regex": "^a"}}],
                      "$not": {"c": {"$exists": false}}, "version": {"$ne": 3}},
            "sort": ["-a.b", "createdAt"]
        }))
        .unwrap();
        let (sql, params) = query.page_sql();
        assert_eq!(sql.matches('?').count(), params.len(), "{sql}");
        let (sql, params) = query.row_sql();
        assert_eq!(sql.matches('?').count(), params.len() + 1, "{sql}: the rowid is pushed by the caller");
        let c = query.cursor_after(&[SqlValue::Integer(4), SqlValue::Null], "id9");
        let mut next = query.clone();
        next.cursor = Some(decode_cursor(&c, "-a.b,createdAt", 2).unwrap());
        let (sql, params) = next.page_sql();
        assert_eq!(sql.matches('?').count(), params.len(), "{sql}");
        let (sql, params) = next.ids_after_sql((5, 7), 100);
        assert_eq!(sql.matches('?').count(), params.len(), "{sql}");
        assert_eq!((params.first(), params.last()), (Some(&SqlValue::Integer(7)), Some(&SqlValue::Integer(100))));
        let typed = q(json!({"type": "T", "where": {"a": 1}})).unwrap();
        let (sql, params) = typed.ids_after_sql((5, 7), 100);
        assert_eq!(sql.matches('?').count(), params.len(), "{sql}");
        assert_eq!(params[..2], [SqlValue::Integer(5), SqlValue::Integer(7)]);
        assert_eq!(
            Query::parse(&json!({"sort": ["id"], "cursor": c}).to_string()).unwrap_err().code,
            Code::InvalidArgument
        );
    }
}
