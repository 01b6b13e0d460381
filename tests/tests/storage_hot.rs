//! The hot tier never answers with stale data: a property test mixes every write path
//! of the storage capability (create, update, replace, soft and hard delete, restore,
//! upsert, bulk create/update/delete), failed writes, and class-style transactions
//! that roll back after a write and a read, with gets through the cache, and after each
//! step compares what every get answers with what SQLite alone holds. Real SQLite, the
//! real storage server, a cache small enough to evict.

use do_modules::events::EventHub;
use do_modules::host::{Env, Sql, Task};
use do_modules::storage::hot::{HotConfig, HotStats};
use do_modules::storage::rust_api::Things;
use do_modules::storage::server::StorageServer;
use do_modules::storage::things::Store;
use do_runtime::host::sqlite::SqliteDb;
use proptest::prelude::*;
use rpc_core::{Code, RpcError};
use schema::object_capnp::storage;
use serde_json::json;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

struct TestEnv(Cell<i64>);

impl Env for TestEnv {
    fn now_ms(&self) -> i64 {
        self.0.set(self.0.get() + 1);
        self.0.get()
    }
    fn random_u64(&self) -> u64 {
        self.0.get() as u64
    }
    fn spawn(&self, task: Task) {
        tokio::task::spawn_local(task);
    }
}

/// One step of the mix, on the keys `k0`..`k5`.
#[derive(Debug, Clone)]
enum Op {
    Get(u8),
    Create(u8, i64),
    Update(u8, i64),
    Replace(u8, i64),
    Delete(u8, bool),
    Restore(u8),
    Upsert(u8, i64),
    BulkCreate(u8, u8),
    BulkUpdate(i64),
    BulkDelete(i64, bool),
    /// An update whose expected version is wrong: CONFLICT, nothing written.
    StaleUpdate(u8),
    /// A class's transaction: update, read it back (into the cache), then fail.
    RolledBack(u8, i64),
    /// A class's transaction whose inner write fails and which goes on to commit.
    SwallowedFailure(u8, i64),
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0u8..6;
    let v = 0i64..20;
    prop_oneof![
        4 => k.clone().prop_map(Op::Get),
        2 => (k.clone(), v.clone()).prop_map(|(k, v)| Op::Create(k, v)),
        2 => (k.clone(), v.clone()).prop_map(|(k, v)| Op::Update(k, v)),
        1 => (k.clone(), v.clone()).prop_map(|(k, v)| Op::Replace(k, v)),
        1 => (k.clone(), any::<bool>()).prop_map(|(k, s)| Op::Delete(k, s)),
        1 => k.clone().prop_map(Op::Restore),
        1 => (k.clone(), v.clone()).prop_map(|(k, v)| Op::Upsert(k, v)),
        1 => (k.clone(), 1u8..4).prop_map(|(k, n)| Op::BulkCreate(k, n)),
        1 => v.clone().prop_map(Op::BulkUpdate),
        1 => (v.clone(), any::<bool>()).prop_map(|(v, s)| Op::BulkDelete(v, s)),
        1 => k.clone().prop_map(Op::StaleUpdate),
        2 => (k.clone(), v.clone()).prop_map(|(k, v)| Op::RolledBack(k, v)),
        1 => (k, v).prop_map(|(k, v)| Op::SwallowedFailure(k, v)),
    ]
}

fn key(k: u8) -> String {
    format!("k{k}")
}

struct Fixture {
    db: Rc<SqliteDb>,
    env: Rc<TestEnv>,
    things: Things,
    cap: storage::Client,
    stats: Arc<HotStats>,
    dir: std::path::PathBuf,
}

fn fixture(case: u64) -> Fixture {
    let dir =
        std::env::temp_dir().join(format!("dotdo-hot-{}-{case}-{:?}", std::process::id(), std::thread::current().id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let db = Rc::new(SqliteDb::open(&dir.join("o.sqlite")).expect("db"));
    let env = Rc::new(TestEnv(Cell::new(1_000)));
    let hub = EventHub::new(db.clone(), env.clone(), "o".into()).expect("hub");
    let stats = Arc::new(HotStats::default());
    // Room for about three Things: the mix evicts as it goes.
    let hot = HotConfig { bytes: 3 * 200, stats: stats.clone() };
    let server = StorageServer::new(db.clone(), env.clone(), hub, hot).expect("storage");
    let cap: storage::Client = capnp_rpc::new_client(server.clone());
    Fixture { db, env, things: Things::new(server), cap, stats, dir }
}

/// What SQLite alone says `get(id)` is: the live thing, or the error's code.
fn truth(f: &Fixture, id: &str) -> Result<(serde_json::Value, i64), Code> {
    let store = Store { sql: &*f.db, env: &*f.env };
    store.get(id).map(|t| (t.data, t.version)).map_err(|e| e.code)
}

fn cached(f: &Fixture, id: &str) -> Result<(serde_json::Value, i64), Code> {
    f.things.get(id).map(|t| (t.data, t.version)).map_err(|e| e.code)
}

async fn apply(f: &Fixture, op: &Op) {
    let c = &f.cap;
    // Outcomes are not checked here (many steps fail by design: a create over an
    // existing key, an update of a deleted one); what the gets answer afterwards is.
    match op.clone() {
        Op::Get(k) => {
            let _ = f.things.get(&key(k));
        }
        Op::Create(k, v) => {
            let _ = f.things.create("T", &key(k), &json!({ "n": v }));
        }
        Op::Update(k, v) => {
            let _ = f.things.update(&key(k), &json!({ "n": v, "u": true }), 0);
        }
        Op::Replace(k, v) => {
            let mut r = c.replace_request();
            r.get().set_id(key(k));
            r.get().set_data(json!({ "n": v, "replaced": true }).to_string());
            let _ = r.send().promise.await;
        }
        Op::Delete(k, soft) => {
            let _ = f.things.delete(&key(k), soft);
        }
        Op::Restore(k) => {
            let mut r = c.restore_request();
            r.get().set_id(key(k));
            let _ = r.send().promise.await;
        }
        Op::Upsert(k, v) => {
            let mut r = c.upsert_request();
            r.get().set_type("T");
            r.get().set_id(key(k));
            r.get().set_data(json!({ "n": v, "upserted": true }).to_string());
            let _ = r.send().promise.await;
        }
        Op::BulkCreate(k, n) => {
            // Fails whole if any key exists: all or none.
            let mut r = c.bulk_create_request();
            let mut list = r.get().init_things(u32::from(n));
            for i in 0..n {
                let mut t = list.reborrow().get(u32::from(i));
                t.set_type("T");
                t.set_id(key((k + i) % 6));
                t.set_data(json!({ "n": i }).to_string());
            }
            let _ = r.send().promise.await;
        }
        Op::BulkUpdate(v) => {
            let mut r = c.bulk_update_request();
            r.get().set_query(json!({ "where": { "n": { "$lt": v } } }).to_string());
            r.get().set_patch(json!({ "$inc": { "n": 1 } }).to_string());
            let _ = r.send().promise.await;
        }
        Op::BulkDelete(v, soft) => {
            let mut r = c.bulk_delete_request();
            r.get().set_query(json!({ "where": { "n": v } }).to_string());
            r.get().set_soft(soft);
            let _ = r.send().promise.await;
        }
        Op::StaleUpdate(k) => {
            let e = f.things.update(&key(k), &json!({ "stale": true }), 999).map(drop);
            assert!(e.is_err(), "version 999 is never current here");
        }
        Op::RolledBack(k, v) => {
            let r: Result<(), RpcError> = (|| {
                let mut out = Ok(());
                f.db.transaction(&mut || {
                    f.things.update(&key(k), &json!({ "n": v, "doomed": true }), 0)?;
                    f.things.get(&key(k))?;
                    Err(RpcError::new(Code::Conflict, "the class changed its mind"))
                })
                .or_else(|e| {
                    out = Err(e);
                    Ok::<(), RpcError>(())
                })?;
                out
            })();
            assert!(r.is_err());
        }
        Op::SwallowedFailure(k, v) => {
            let _ = f.db.transaction(&mut || {
                let _ = f.things.update(&key(k), &json!({ "n": v, "kept": true }), 0);
                let _ = f.things.get(&key(k));
                // Fails inside; the class goes on and the transaction commits.
                let _ = f.things.update(&key(k), &json!({ "never": true }), 999);
                Ok(())
            });
        }
    }
}

fn check(f: &Fixture, after: &Op) -> Result<(), TestCaseError> {
    for k in 0..6 {
        let id = key(k);
        prop_assert_eq!(cached(f, &id), truth(f, &id), "get({}) after {:?}", id, after);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn gets_through_the_hot_tier_always_agree_with_sqlite(ops in proptest::collection::vec(op(), 1..60)) {
        static CASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let case = CASE.fetch_add(1, Ordering::Relaxed);
        let result: Result<(), TestCaseError> = rpc_client::run(async {
            let f = fixture(case);
            for op in &ops {
                apply(&f, op).await;
                check(&f, op)?;
            }
            let _ = std::fs::remove_dir_all(&f.dir);
            Ok(())
        });
        result?;
    }
}

#[test]
fn repeated_gets_are_hits_and_a_write_is_seen_at_once() {
    rpc_client::run(async {
        let f = fixture(u64::MAX);
        f.things.create("T", "a", &json!({ "n": 1 })).expect("create");
        for _ in 0..10 {
            assert_eq!(f.things.get("a").expect("get").data, json!({ "n": 1 }));
        }
        let (hits, misses) = (f.stats.hits.load(Ordering::Relaxed), f.stats.misses.load(Ordering::Relaxed));
        assert_eq!((hits, misses), (9, 1), "one read of SQLite, then memory");
        f.things.update("a", &json!({ "n": 2 }), 0).expect("update");
        assert_eq!(f.things.get("a").expect("get").data, json!({ "n": 2 }));
        assert!(f.stats.hit_rate() > 0.8);
        let _ = std::fs::remove_dir_all(&f.dir);
    });
}
