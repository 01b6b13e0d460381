//! Storage preconditions (`ifMatch`), projections (`select`/`exclude`) and aggregates
//! (`count/sum/avg/min/max` with `groupBy`) through RPC, on real SQLite files.

mod common;

use common::{code, data_dir, object_server, urls};
use rpc_client::api::object::Storage;
use rpc_core::Code;
use serde_json::{json, Value};
use std::time::Duration;

fn data(t: &rpc_client::api::object::Thing) -> Value {
    serde_json::from_str(&t.data).expect("JSON data")
}

async fn storage(url: &str, name: &str) -> (rpc_client::Session, Storage) {
    let session = rpc_client::connect(url).await.expect("connect");
    let storage = session.bootstrap.object("Shop", name).object().storage();
    (session, storage.into())
}

#[test]
fn if_match_writes_only_when_the_thing_matches() {
    let dir = data_dir("if-match");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let (_session, st) = storage(&ws, "pre").await;
        let t = st.create("Ticket", r#"{"status": "open", "n": 1}"#, "t1").await.expect("create").thing;
        // A precondition that does not hold: CONFLICT, nothing written.
        let closed = r#"{"status": "closed"}"#;
        assert_eq!(code(st.update(&t.id, r#"{"n": 2}"#, 0, closed).await), Code::Conflict);
        assert_eq!(code(st.replace(&t.id, r#"{"x": 1}"#, 0, closed).await), Code::Conflict);
        assert_eq!(code(st.delete(&t.id, false, closed).await), Code::Conflict);
        let now = st.get(&t.id).await.expect("get").thing;
        assert_eq!((now.version, data(&now)), (1, json!({"status": "open", "n": 1})));
        // One that holds, with operators.
        let updated = st.update(&t.id, r#"{"n": 2}"#, 0, r#"{"status": "open", "n": {"$lt": 5}}"#).await;
        assert_eq!(updated.expect("update").thing.version, 2);
        assert!(st.delete(&t.id, false, r#"{"n": 2}"#).await.expect("delete").deleted);
        // Bad preconditions are refused; a missing thing is NOT_FOUND.
        assert_eq!(code(st.update("t1", "{}", 0, r#"{"n": 1}"#).await), Code::NotFound);
        let t2 = st.create("Ticket", r#"{"n": 1}"#, "t2").await.expect("create").thing;
        for bad in ["not json", "[1]", r#"{"a..b": 1}"#, r#"{"n": {"$nope": 1}}"#] {
            assert_eq!(code(st.update(&t2.id, "{}", 0, bad).await), Code::InvalidArgument, "{bad}");
        }
        assert_eq!(st.get(&t2.id).await.expect("get").thing.version, 1);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn select_and_exclude_shape_the_data() {
    let dir = data_dir("projection");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let (_session, st) = storage(&ws, "proj").await;
        for i in 0..5 {
            let d = json!({"name": format!("c{i}"), "age": 30 + i, "address": {"city": "Paris", "zip": "7500{i}"}, "note": null});
            st.create("Customer", &d.to_string(), &format!("c{i}")).await.expect("create");
        }
        let q = json!({"type": "Customer", "sort": ["-age"], "select": ["name", "address.city", "note", "missing"]});
        let page = st.query(&q.to_string()).await.expect("query");
        assert_eq!(page.things.len(), 5);
        assert_eq!(data(&page.things[0]), json!({"name": "c4", "address": {"city": "Paris"}, "note": null}));
        assert_eq!(page.things[0].id, "c4", "id, type and version always come");
        let q = json!({"type": "Customer", "where": {"age": 31}, "exclude": ["address", "note"]});
        let page = st.query(&q.to_string()).await.expect("query");
        assert_eq!(data(&page.things[0]), json!({"name": "c1", "age": 31}));
        // Paging with a projection: two pages of two, then one.
        let q = json!({"type": "Customer", "sort": ["age"], "limit": 2, "select": ["age"]});
        let first = st.query(&q.to_string()).await.expect("page 1");
        let mut q2 = q.clone();
        q2["cursor"] = json!(first.cursor);
        let second = st.query(&q2.to_string()).await.expect("page 2");
        let ages: Vec<Value> = first.things.iter().chain(&second.things).map(|t| data(t)["age"].clone()).collect();
        assert_eq!(ages, vec![json!(30), json!(31), json!(32), json!(33)]);
        for bad in [
            json!({"select": ["name"], "exclude": ["age"]}),
            json!({"select": ["createdAt"]}),
            json!({"select": []}),
            json!({"select": "name"}),
            json!({"exclude": ["a..b"]}),
        ] {
            assert_eq!(code(st.query(&bad.to_string()).await), Code::InvalidArgument, "{bad}");
        }
        let many = json!({"select": vec!["x"; 33]});
        assert_eq!(code(st.query(&many.to_string()).await), Code::LimitExceeded, "at most 32 fields");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn aggregates_count_sum_avg_min_max_by_group() {
    let dir = data_dir("aggregate");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let (_session, st) = storage(&ws, "agg").await;
        let orders =
            [("FR", 10.0, "paid"), ("FR", 2.5, "paid"), ("DE", 7.0, "paid"), ("DE", 1.0, "open"), ("US", 4.0, "paid")];
        for (country, amount, status) in orders {
            let d = json!({"country": country, "amount": amount, "status": status});
            st.create("Order", &d.to_string(), "").await.expect("create");
        }
        st.create("Refund", r#"{"country": "FR", "amount": 100}"#, "").await.expect("create");
        let q = json!({
            "type": "Order",
            "where": {"status": "paid"},
            "groupBy": ["data.country"],
            "aggregate": {"n": {"count": "*"}, "total": {"sum": "data.amount"}, "mean": {"avg": "amount"},
                          "low": {"min": "amount"}, "high": {"max": "amount"}}
        });
        let rows: Value =
            serde_json::from_str(&st.aggregate(&q.to_string()).await.expect("aggregate").rows).expect("JSON");
        assert_eq!(
            rows,
            json!([
                {"group": {"data.country": "DE"}, "n": 1, "total": 7.0, "mean": 7.0, "low": 7.0, "high": 7.0},
                {"group": {"data.country": "FR"}, "n": 2, "total": 12.5, "mean": 6.25, "low": 2.5, "high": 10.0},
                {"group": {"data.country": "US"}, "n": 1, "total": 4.0, "mean": 4.0, "low": 4.0, "high": 4.0},
            ])
        );
        let all: Value = serde_json::from_str(
            &st.aggregate(r#"{"type": "Order", "aggregate": {"n": {"count": "*"}}}"#).await.expect("aggregate").rows,
        )
        .expect("JSON");
        assert_eq!(all, json!([{"group": {}, "n": 5}]));
        let limited: Value = serde_json::from_str(
            &st.aggregate(r#"{"groupBy": ["type"], "aggregate": {"n": {"count": "*"}}, "limit": 1}"#)
                .await
                .expect("aggregate")
                .rows,
        )
        .expect("JSON");
        assert_eq!(limited, json!([{"group": {"type": "Order"}, "n": 5}]));
        for bad in [
            json!({"aggregate": {"n": {"median": "amount"}}}),
            json!({"aggregate": {"n": {"sum": "*"}}}),
            json!({"aggregate": {}}),
            json!({"aggregate": {"group": {"count": "*"}}}),
            json!({"aggregate": {"n": {"count": "*"}}, "groupBy": ["a..b"]}),
            json!({"aggregate": {"n": {"count": "*"}}, "sort": ["amount"]}),
            json!({"aggregate": {"n": {"count": "*"}}, "limit": 0}),
            json!({"type": "Order"}),
        ] {
            assert_eq!(code(st.aggregate(&bad.to_string()).await), Code::InvalidArgument, "{bad}");
        }
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}
