//! Fan-out queries: the same storage query on every shard, gathered and merged.
//! Merging is plain functions over JSON (sort, dedupe by id, limit); the scatter runs
//! at most `budget` subrequests at a time and reports failed shards instead of hiding
//! them.

use serde_json::Value;
use std::cmp::Ordering;

/// One thing as returned by a shard.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The thing's id.
    pub id: String,
    /// Its type.
    pub type_: String,
    /// Its data.
    pub data: Value,
    /// Creation time.
    pub created_at: i64,
    /// Last update.
    pub updated_at: i64,
    /// Soft-deletion time or 0.
    pub deleted_at: i64,
    /// Version.
    pub version: u64,
}

impl Row {
    fn field(&self, name: &str) -> Value {
        match name {
            "id" => Value::from(self.id.clone()),
            "type" => Value::from(self.type_.clone()),
            "createdAt" => Value::from(self.created_at),
            "updatedAt" => Value::from(self.updated_at),
            "deletedAt" => Value::from(self.deleted_at),
            "version" => Value::from(self.version),
            path => {
                let mut v = &self.data;
                for seg in path.strip_prefix("data.").unwrap_or(path).split('.') {
                    match v.get(seg) {
                        Some(next) => v = next,
                        None => return Value::Null,
                    }
                }
                v.clone()
            }
        }
    }
}

/// SQLite's order: null < numbers < text (others after, as text).
fn compare(a: &Value, b: &Value) -> Ordering {
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

/// Merges shard pages: dedupes by id (first wins), sorts by `sort` (`-field` for
/// descending; ties by id, as each shard does) and keeps `limit`.
pub fn merge(pages: Vec<Vec<Row>>, sort: &[String], limit: usize) -> Vec<Row> {
    let mut seen = std::collections::HashSet::new();
    let mut rows: Vec<Row> = pages.into_iter().flatten().filter(|r| seen.insert(r.id.clone())).collect();
    rows.sort_by(|a, b| {
        for key in sort {
            let (desc, name) = match key.strip_prefix('-') {
                Some(n) => (true, n),
                None => (false, key.strip_prefix('+').unwrap_or(key)),
            };
            let o = compare(&a.field(name), &b.field(name));
            let o = if desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.id.cmp(&b.id)
    });
    rows.truncate(limit);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(id: &str, n: i64) -> Row {
        Row {
            id: id.into(),
            type_: "T".into(),
            data: json!({ "n": n }),
            created_at: 0,
            updated_at: 0,
            deleted_at: 0,
            version: 1,
        }
    }

    #[test]
    fn merges_sorted_deduped_and_limited() {
        let pages = vec![vec![row("a", 5), row("b", 1)], vec![row("c", 9), row("a", 5)], vec![row("d", 3)]];
        let got: Vec<String> = merge(pages.clone(), &["-n".into()], 3).into_iter().map(|r| r.id).collect();
        assert_eq!(got, ["c", "a", "d"]);
        let got: Vec<String> = merge(pages, &["data.n".into()], 10).into_iter().map(|r| r.id).collect();
        assert_eq!(got, ["b", "d", "a", "c"]);
    }
}
