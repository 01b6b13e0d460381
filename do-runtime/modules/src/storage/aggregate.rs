//! Aggregates over an object's Things: `count`, `sum`, `avg`, `min`, `max`, optionally
//! per group (`groupBy`), over the things a query's filter matches; one parameterised
//! `SELECT ... GROUP BY`.
//!
//! ```json
//! {"type": "Order", "where": {"status": "paid"}, "groupBy": ["data.country"],
//!  "aggregate": {"n": {"count": "*"}, "total": {"sum": "data.amount"}}, "limit": 100}
//! ```
//! answers `[{"group": {"data.country": "FR"}, "n": 3, "total": 12.5}, ...]`, groups in
//! ascending order (without `groupBy`, one row with `"group": {}`).

use super::query::{Field, Query};
use crate::host::{Sql, SqlValue};
use rpc_core::{Code, RpcError};
use serde_json::{Map, Value};

/// Most aggregates in one query.
pub const MAX_AGGREGATES: usize = 16;
/// Most `groupBy` fields.
pub const MAX_GROUP_BY: usize = 4;
/// Most groups returned (and the default `limit`).
pub const MAX_GROUPS: u64 = 1000;

/// One aggregate: its name in the answer, the function and its field (`None`: `*`).
#[derive(Debug, Clone, PartialEq)]
struct Measure {
    name: String,
    function: &'static str,
    field: Option<Field>,
}

/// A parsed aggregate query.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    query: Query,
    group_by: Vec<(String, Field)>,
    measures: Vec<Measure>,
    limit: u64,
}

impl Aggregate {
    /// Parses the query: the keys of a query's filter (`type`, `where`,
    /// `includeDeleted`) plus `aggregate`, `groupBy` and `limit` (groups).
    pub fn parse(text: &str) -> Result<Aggregate, RpcError> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| RpcError::invalid_argument(format!("query is not valid JSON: {e}")))?;
        let Value::Object(mut obj) = v else { return Err(RpcError::invalid_argument("a query must be a JSON object")) };
        for k in obj.keys() {
            if !["type", "where", "includeDeleted", "aggregate", "groupBy", "limit"].contains(&k.as_str()) {
                return Err(RpcError::invalid_argument(format!("unknown key {k:?} in an aggregate query")));
            }
        }
        let limit = match obj.remove("limit") {
            None | Some(Value::Null) => MAX_GROUPS,
            Some(v) => match v.as_u64() {
                Some(n) if n > MAX_GROUPS => {
                    return Err(RpcError::new(Code::LimitExceeded, format!("at most {MAX_GROUPS} groups")))
                }
                Some(n) if n >= 1 => n,
                _ => return Err(RpcError::invalid_argument(format!("limit is 1 to {MAX_GROUPS} groups"))),
            },
        };
        let measures =
            match obj.remove("aggregate") {
                Some(Value::Object(m)) => parse_measures(&m)?,
                _ => return Err(RpcError::invalid_argument(
                    "aggregate takes an object like {\"n\": {\"count\": \"*\"}, \"total\": {\"sum\": \"data.amount\"}}",
                )),
            };
        let group_by = match obj.remove("groupBy") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.len() > MAX_GROUP_BY => {
                return Err(RpcError::new(Code::LimitExceeded, format!("groupBy names at most {MAX_GROUP_BY} fields")))
            }
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    let name = i.as_str().ok_or_else(|| RpcError::invalid_argument("groupBy fields are strings"))?;
                    Ok((name.to_string(), Field::parse(name)?))
                })
                .collect::<Result<Vec<_>, RpcError>>()?,
            Some(_) => return Err(RpcError::invalid_argument("groupBy takes an array of fields")),
        };
        let query = Query::parse(&Value::Object(obj).to_string())?;
        Ok(Aggregate { query, group_by, measures, limit })
    }

    /// The statement and its parameters.
    fn sql(&self) -> (String, Vec<SqlValue>) {
        let mut params = Vec::new();
        let mut columns = Vec::new();
        let mut groups = Vec::new();
        for (_, f) in &self.group_by {
            let e = f.sql(&mut params);
            columns.push(e.clone());
            groups.push(e);
        }
        for m in &self.measures {
            columns.push(match &m.field {
                None => "COUNT(*)".to_string(),
                Some(f) => format!("{}({})", m.function, f.sql(&mut params)),
            });
        }
        let cond = self.query.where_sql(&mut params);
        let mut sql = format!("SELECT {} FROM things WHERE {cond}", columns.join(", "));
        if !groups.is_empty() {
            // The group expressions again (parameters are positional).
            let mut again = Vec::new();
            for (_, f) in &self.group_by {
                again.push(f.sql(&mut params));
            }
            sql.push_str(&format!(
                " GROUP BY {} ORDER BY {}",
                again.join(", "),
                (1..=groups.len()).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
            ));
        }
        params.push(SqlValue::Integer(i64::try_from(self.limit).unwrap_or(i64::MAX)));
        sql.push_str(" LIMIT ?");
        (sql, params)
    }

    /// Runs it on `sql`; the rows as JSON.
    pub fn run(&self, sql: &dyn Sql) -> Result<Value, RpcError> {
        let (text, params) = self.sql();
        let rows = sql.query(&text, &params)?;
        let json = |v: &SqlValue| match v {
            SqlValue::Null => Value::Null,
            SqlValue::Integer(i) => Value::from(*i),
            SqlValue::Real(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            SqlValue::Text(t) => Value::from(t.clone()),
        };
        let out = rows
            .iter()
            .map(|r| {
                let mut row = Map::new();
                let group: Map<String, Value> =
                    self.group_by.iter().zip(r.iter()).map(|((name, _), v)| (name.clone(), json(v))).collect();
                row.insert("group".into(), Value::Object(group));
                for (m, v) in self.measures.iter().zip(r.iter().skip(self.group_by.len())) {
                    row.insert(m.name.clone(), json(v));
                }
                Value::Object(row)
            })
            .collect();
        Ok(Value::Array(out))
    }
}

fn parse_measures(m: &Map<String, Value>) -> Result<Vec<Measure>, RpcError> {
    if m.is_empty() {
        return Err(RpcError::invalid_argument("aggregate names at least one result"));
    }
    if m.len() > MAX_AGGREGATES {
        return Err(RpcError::new(Code::LimitExceeded, format!("aggregate names at most {MAX_AGGREGATES} results")));
    }
    m.iter()
        .map(|(name, spec)| {
            if !rpc_core::ident::is_identifier(name) || name == "group" {
                return Err(RpcError::invalid_argument(format!("{name:?} cannot name an aggregate (an identifier, not \"group\")")));
            }
            let Some((function, Value::String(field))) = spec.as_object().filter(|o| o.len() == 1).and_then(|o| o.iter().next())
            else {
                return Err(RpcError::invalid_argument(format!(
                    "aggregate {name:?} is one of {{\"count\": \"*\"}}, {{\"sum\" | \"avg\" | \"min\" | \"max\": \"field\"}}"
                )));
            };
            let function = match function.as_str() {
                "count" => "COUNT",
                "sum" => "SUM",
                "avg" => "AVG",
                "min" => "MIN",
                "max" => "MAX",
                other => return Err(RpcError::invalid_argument(format!("unknown aggregate function {other:?}"))),
            };
            let field = match (function, field.as_str()) {
                ("COUNT", "*") => None,
                (_, "*") => return Err(RpcError::invalid_argument(format!("{function}(*) is not an aggregate: name a field"))),
                (_, f) => Some(Field::parse(f)?),
            };
            Ok(Measure { name: name.clone(), function, field })
        })
        .collect()
}
