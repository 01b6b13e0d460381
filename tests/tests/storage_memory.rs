//! Storage memory stays bounded by the page, not by what matches: a query reads rows one
//! at a time up to its byte budget and continues by cursor; bulk update and delete walk
//! any number of matches (documents of 1 MiB, or more than 10,000 things) in one
//! transaction, all or none.

mod common;

use common::*;
use do_modules::host::{Env, Sql, SqlValue, Task};
use do_modules::storage::query::Query;
use do_modules::storage::things::{Store, MAX_PAGE_BYTES};
use do_runtime::host::sqlite::SqliteDb;
use rpc_core::{Code, RpcError};
use schema::object_capnp::{events, handler, storage};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::time::Duration;

/// A real SQLite database that measures how many bytes of text its queries return.
struct Measured {
    db: SqliteDb,
    /// The most text one `query` call returned.
    largest: Cell<usize>,
}

impl Sql for Measured {
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<usize, RpcError> {
        self.db.execute(sql, params)
    }
    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>, RpcError> {
        let rows = self.db.query(sql, params)?;
        let bytes = rows.iter().flatten().filter_map(SqlValue::as_text).map(str::len).sum();
        self.largest.set(self.largest.get().max(bytes));
        Ok(rows)
    }
    fn transaction(&self, f: &mut dyn FnMut() -> Result<(), RpcError>) -> Result<(), RpcError> {
        self.db.transaction(f)
    }
}

struct TestEnv(Cell<u64>);

impl Env for TestEnv {
    fn now_ms(&self) -> i64 {
        1_000
    }
    fn random_u64(&self) -> u64 {
        self.0.set(self.0.get() + 1);
        self.0.get()
    }
    fn spawn(&self, _: Task) {
        panic!("nothing is delivered here");
    }
}

/// A document of about `bytes` bytes of JSON.
fn doc(i: usize, bytes: usize) -> String {
    json!({ "i": i, "pad": "x".repeat(bytes - 40) }).to_string()
}

#[test]
fn a_query_reads_no_row_past_its_page_budget() {
    let dir = data_dir("page-budget");
    let db = Measured { db: SqliteDb::open(&dir.join("o.sqlite")).expect("open"), largest: Cell::new(0) };
    let env = TestEnv(Cell::new(0));
    let store = Store { sql: &db, env: &env };
    store.migrate().expect("migrate");
    let n = 12;
    for i in 0..n {
        store.create("Big", &format!("b{i:02}"), &doc(i, 900_000)).expect("create");
    }
    let mut seen = Vec::new();
    let mut q = json!({ "type": "Big", "limit": 1000, "sort": ["-data.i"] });
    let mut pages = 0;
    loop {
        db.largest.set(0);
        let (things, cursor) = store.query(&Query::parse(&q.to_string()).expect("query")).expect("a page");
        let bytes: usize = things.iter().map(|t| t.data.to_string().len()).sum();
        assert!(bytes <= MAX_PAGE_BYTES, "a page of {bytes} bytes");
        assert!(
            db.largest.get() <= 1 << 20,
            "one read returned {} bytes: rows are read one at a time",
            db.largest.get()
        );
        seen.extend(things.iter().map(|t| t.data["i"].as_u64().expect("i")));
        pages += 1;
        match cursor {
            Some(c) => q["cursor"] = json!(c),
            None => break,
        }
    }
    let want: Vec<u64> = (0..n as u64).rev().collect();
    assert_eq!(seen, want, "every document once, in order");
    assert_eq!(pages, 3, "four documents of 900 KB fit a page of 4 MiB");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_bulk_walk_continues_each_page_without_a_sort_or_a_rescan() {
    let dir = data_dir("bulk-plan");
    let db = SqliteDb::open(&dir.join("o.sqlite")).expect("open");
    let env = TestEnv(Cell::new(0));
    Store { sql: &db, env: &env }.migrate().expect("migrate");
    for (q, index) in [
        (json!({ "type": "T", "where": { "a": 1 } }), "things_by_type"),
        (json!({ "where": { "a": 1 } }), "INTEGER PRIMARY KEY"),
    ] {
        let (sql, params) = Query::parse(&q.to_string()).expect("query").ids_after_sql((1, 1), 1000);
        let plan: Vec<String> = db
            .query(&format!("EXPLAIN QUERY PLAN {sql}"), &params)
            .expect("plan")
            .iter()
            .filter_map(|r| r.get(3).and_then(SqlValue::as_text).map(str::to_string))
            .collect();
        let plan = plan.join("; ");
        assert!(plan.contains(index) && !plan.contains("TEMP B-TREE") && !plan.contains("SCAN"), "{q}: {plan}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn storage_of(g: &schema::session_capnp::gateway::Client, name: &str) -> (storage::Client, events::Client) {
    let mut req = g.object_request();
    req.get().set_class("Shop");
    req.get().set_name(name);
    let obj = req.send().pipeline.get_object();
    (obj.storage_request().send().pipeline.get_storage(), obj.events_request().send().pipeline.get_events())
}

async fn create(s: &storage::Client, type_: &str, id: &str, data: &str) {
    let mut req = s.create_request();
    req.get().set_type(type_);
    req.get().set_id(id);
    req.get().set_data(data);
    req.send().promise.await.expect("create");
}

async fn page(s: &storage::Client, q: &Value) -> (Vec<Value>, String) {
    let mut req = s.query_request();
    req.get().set_query(q.to_string());
    let r = req.send().promise.await.expect("query");
    let r = r.get().unwrap();
    let things = r
        .get_things()
        .unwrap()
        .iter()
        .map(|t| serde_json::from_str(t.get_data().unwrap().to_str().unwrap()).unwrap())
        .collect();
    (things, r.get_cursor().unwrap().to_string().unwrap())
}

async fn count(s: &storage::Client, q: Value) -> u64 {
    let mut req = s.count_request();
    req.get().set_query(q.to_string());
    req.send().promise.await.expect("count").get().unwrap().get_count()
}

async fn bulk_update(s: &storage::Client, q: Value, patch: Value) -> Result<u64, RpcError> {
    let mut req = s.bulk_update_request();
    req.get().set_query(q.to_string());
    req.get().set_patch(patch.to_string());
    Ok(req.send().promise.await?.get()?.get_count())
}

async fn bulk_delete(s: &storage::Client, q: Value, soft: bool) -> Result<u64, RpcError> {
    let mut req = s.bulk_delete_request();
    req.get().set_query(q.to_string());
    req.get().set_soft(soft);
    Ok(req.send().promise.await?.get()?.get_count())
}

#[test]
fn a_query_over_large_documents_pages_by_bytes_to_the_end() {
    let dir = data_dir("big-pages");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let (st, _) = storage_of(&session.bootstrap, "big");
        let n = 10;
        for i in 0..n {
            create(&st, "Big", &format!("b{i:02}"), &doc(i, 1_000_000)).await;
        }
        let mut q = json!({ "type": "Big", "limit": 1000 });
        let mut seen = HashSet::new();
        loop {
            let (things, cursor) = page(&st, &q).await;
            let bytes: usize = things.iter().map(|t| t.to_string().len()).sum();
            assert!(!things.is_empty() && bytes <= MAX_PAGE_BYTES, "{} things, {bytes} bytes", things.len());
            for t in things {
                assert!(seen.insert(t["i"].as_u64().expect("i")), "seen once: {}", t["i"]);
            }
            if cursor.is_empty() {
                break;
            }
            q["cursor"] = json!(cursor);
        }
        assert_eq!(seen.len(), n, "every document");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

type Versions = std::rc::Rc<RefCell<Vec<u64>>>;

/// Records the version in every event it is handed.
struct Recorder(Versions);

impl handler::Server for Recorder {
    async fn handle(
        self: capnp::capability::Rc<Self>,
        params: handler::HandleParams,
        _: handler::HandleResults,
    ) -> capnp::Result<()> {
        let data =
            params.get()?.get_event()?.get_data()?.to_string().map_err(|e| capnp::Error::failed(e.to_string()))?;
        let v: Value = serde_json::from_str(&data).map_err(|e| capnp::Error::failed(e.to_string()))?;
        self.0.borrow_mut().push(v["version"].as_u64().unwrap_or(0));
        Ok(())
    }
}

#[test]
fn bulk_update_and_delete_take_five_documents_of_a_mebibyte() {
    let dir = data_dir("bulk-big");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let (st, ev) = storage_of(&session.bootstrap, "bulk-big");
        for i in 0..5 {
            create(&st, "Big", &format!("b{i}"), &doc(i, 1_000_000)).await;
        }
        create(&st, "Small", "s", "{}").await;
        // A subscriber: the five events (5 MB) are held for delivery partly by position.
        let versions = Versions::default();
        let mut req = ev.subscribe_request();
        req.get().set_pattern("Big.updated");
        req.get().set_handler(capnp_rpc::new_client(Recorder(versions.clone())));
        let sub = req.send().promise.await.expect("subscribe").get().unwrap().get_subscription().unwrap();

        let n = bulk_update(&st, json!({ "type": "Big" }), json!({ "$set": { "flag": true } })).await;
        assert_eq!(n.expect("five documents of 1 MB are not too many"), 5);
        assert_eq!(count(&st, json!({ "where": { "flag": true } })).await, 5);
        within("an update event", async {
            while versions.borrow().is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        let dropped = sub.dropped_request().send().promise.await.expect("dropped").get().unwrap().get_count();
        // Each event is about 1 MB; a subscriber queues 1 MiB, keeping the newest.
        assert_eq!(versions.borrow().len() as u64 + dropped, 5, "delivered {:?}, dropped {dropped}", versions.borrow());
        assert_eq!(versions.borrow().last(), Some(&2));

        assert_eq!(bulk_delete(&st, json!({ "type": "Big" }), true).await.expect("soft delete"), 5);
        assert_eq!(count(&st, json!({ "type": "Big" })).await, 0);
        assert_eq!(count(&st, json!({ "type": "Big", "includeDeleted": true })).await, 5);
        let all = json!({ "type": "Big", "includeDeleted": true });
        assert_eq!(bulk_delete(&st, all.clone(), false).await.expect("hard delete"), 5);
        assert_eq!(count(&st, all).await, 0);
        assert_eq!(count(&st, json!({})).await, 1, "the other type is untouched");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

async fn bulk_create(st: &storage::Client, type_: &str, from: usize, n: usize) {
    let mut req = st.bulk_create_request();
    let mut list = req.get().init_things(n as u32);
    for i in 0..n {
        let mut t = list.reborrow().get(i as u32);
        t.set_type(type_);
        t.set_id(format!("{type_}{:06}", from + i));
        t.set_data(json!({ "n": 0, "i": from + i }).to_string());
    }
    req.send().promise.await.expect("bulk create");
}

#[test]
fn bulk_operations_take_more_than_ten_thousand_things_all_or_none() {
    let dir = data_dir("bulk-many");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let (st, _) = storage_of(&session.bootstrap, "bulk-many");
        let n = 10_050;
        for from in (0..n).step_by(1000) {
            bulk_create(&st, "Small", from, 1000.min(n - from)).await;
        }
        // The last match cannot take the patch: the whole update is rolled back.
        let mut req = st.update_request();
        req.get().set_id(format!("Small{:06}", n - 1));
        req.get().set_patch(json!({ "n": "text" }).to_string());
        req.send().promise.await.expect("update");
        let inc = json!({ "$inc": { "n": 1 } });
        let e = bulk_update(&st, json!({ "type": "Small" }), inc.clone())
            .await
            .expect_err("a string cannot be incremented");
        assert_eq!(e.code, Code::InvalidArgument, "{}", e.message);
        assert_eq!(count(&st, json!({ "where": { "n": 1 } })).await, 0, "all or none");

        let numbers = json!({ "type": "Small", "where": { "n": 0 } });
        assert_eq!(bulk_update(&st, numbers, inc).await.expect("bulk update"), n as u64 - 1);
        assert_eq!(count(&st, json!({ "where": { "n": 1 } })).await, n as u64 - 1);
        let deleted = bulk_delete(&st, json!({ "type": "Small" }), false).await.expect("more than 10,000 things");
        assert_eq!(deleted, n as u64);
        assert_eq!(count(&st, json!({ "includeDeleted": true })).await, 0);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}
