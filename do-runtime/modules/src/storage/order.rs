//! A query's order applied in memory, the same order its SQL gives: for merging pages
//! of things that came from several objects (the broker's fan-out).

use super::query::{Field, Query};
use super::things::Thing;
use serde_json::Value;
use std::cmp::Ordering;

impl Field {
    /// This field's value in `thing`: a column, or the value at a data path (null when
    /// missing). `deletedAt` is 0 on live things, as a thing reports it.
    pub fn value_in(&self, thing: &Thing) -> Value {
        match self {
            Field::Column("id") => Value::from(thing.id.clone()),
            Field::Column("type") => Value::from(thing.type_.clone()),
            Field::Column("created_at") => Value::from(thing.created_at),
            Field::Column("updated_at") => Value::from(thing.updated_at),
            Field::Column("deleted_at") => Value::from(thing.deleted_at.unwrap_or(0)),
            Field::Column("version") => Value::from(thing.version),
            Field::Column(_) => Value::Null,
            Field::Data(path) => {
                let mut v = &thing.data;
                for segment in path.trim_start_matches("$.").split('.') {
                    match v.get(segment) {
                        Some(next) => v = next,
                        None => return Value::Null,
                    }
                }
                v.clone()
            }
        }
    }
}

/// SQLite's order of the values `json_extract` gives: null, then numbers (booleans as
/// 0 and 1), then text; objects and arrays compare as their JSON text, after text.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) | Value::Number(_) => 1,
            Value::String(_) => 2,
            _ => 3,
        }
    }
    let num = |v: &Value| match v {
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        _ => 0.0,
    };
    rank(a).cmp(&rank(b)).then_with(|| match (a, b) {
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ if rank(a) == 1 => num(a).total_cmp(&num(b)),
        _ => a.to_string().cmp(&b.to_string()),
    })
}

impl Query {
    /// The order of two things under this query: its sort keys, then the id (as the
    /// SQL breaks ties).
    pub fn order(&self, a: &Thing, b: &Thing) -> Ordering {
        for key in &self.sort {
            let o = compare_values(&key.field.value_in(a), &key.field.value_in(b));
            let o = if key.desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.id.cmp(&b.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn thing(id: &str, data: Value) -> Thing {
        Thing { id: id.into(), type_: "T".into(), data, created_at: 0, updated_at: 0, deleted_at: None, version: 1 }
    }

    #[test]
    fn things_sort_as_the_query_says() {
        let q = Query::parse(r#"{"sort": ["-data.n", "id"]}"#).expect("a valid query");
        let mut things = [
            thing("a", json!({"n": 1})),
            thing("b", json!({"n": 5})),
            thing("c", json!({})),
            thing("d", json!({"n": 5})),
        ];
        things.sort_by(|a, b| q.order(a, b));
        let ids: Vec<&str> = things.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["b", "d", "a", "c"]);
    }

    #[test]
    fn values_compare_in_sqlite_order() {
        let ordered = [json!(null), json!(false), json!(1), json!(2.5), json!("a"), json!("b"), json!({"x": 1})];
        for w in ordered.windows(2) {
            assert_eq!(compare_values(&w[0], &w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn columns_and_paths_are_read_from_the_thing() {
        let mut t = thing("a", json!({"address": {"city": "Oslo"}}));
        t.version = 3;
        assert_eq!(Field::parse("address.city").expect("path").value_in(&t), json!("Oslo"));
        assert_eq!(Field::parse("data.address.zip").expect("path").value_in(&t), Value::Null);
        assert_eq!(Field::parse("version").expect("column").value_in(&t), json!(3));
        assert_eq!(Field::parse("deletedAt").expect("column").value_in(&t), json!(0));
    }
}
