//! The objects benchmark: storage get/create/query through RPC (WebSocket) and
//! in-process (the same store on SQLite, no RPC), on the same data set (ITEMS things
//! created one by one, then gets and queries over them), and event fan-out to 100
//! subscribers; and how writes age: create latency on an object whose log holds
//! 1,000,000 events against a fresh object (interleaved, same run), and 100,000 things
//! loaded into one object by `bulkCreate` of 1,000; workflow steps per second and the
//! resumption of 1,000 sleeping runs after a restart (`objects/workflows.rs`); indexed
//! and unindexed queries over 100,000 Things, hot gets with and without the hot tier,
//! a 3-hop traversal over 100,000 relationships, snapshot and restore MB/s, gets of
//! archived Things (`objects/storage.rs`). `cargo bench -p tests --bench
//! objects` (DOTDO_BENCH_SECS, default 1, is the time for the get and query figures;
//! below 1 the aging figures are scaled down 20 times, which the output says).

use capnp::capability::Rc as CapRc;
use do_modules::host::{Env, Task};
use do_modules::storage::query::Query;
use do_modules::storage::things::Store;
use futures::FutureExt;
use rpc_server::ServerConfig;
use schema::object_capnp::{events, handler, storage};
use std::cell::Cell;
use std::time::{Duration, Instant};

#[path = "objects/storage.rs"]
mod storage_figures;
#[path = "objects/workflows.rs"]
mod workflows;

fn secs() -> f64 {
    std::env::var("DOTDO_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0)
}

struct BenchEnv(Cell<u64>);

impl Env for BenchEnv {
    fn now_ms(&self) -> i64 {
        rpc_core::params::now_ms()
    }
    fn random_u64(&self) -> u64 {
        self.0.set(self.0.get().wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407));
        self.0.get()
    }
    fn spawn(&self, task: Task) {
        tokio::task::spawn_local(task);
    }
}

/// Runs `op` repeatedly for the configured time; returns ops/s.
async fn rate<F: std::future::Future<Output = ()>>(mut op: impl FnMut(u64) -> F) -> f64 {
    let (t0, mut n) = (Instant::now(), 0u64);
    while t0.elapsed().as_secs_f64() < secs() {
        op(n).await;
        n += 1;
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

/// Calls per second with 100 in flight: `call(n, i)` starts call `i` of burst `n`.
async fn burst<F>(mut call: impl FnMut(u64, u64) -> F) -> f64
where
    F: std::future::Future<Output = Result<(), capnp::Error>>,
{
    rate(|n| {
        let calls: Vec<F> = (0..100).map(|i| call(n, i)).collect();
        async move {
            for c in futures::future::join_all(calls).await {
                c.expect("a call of the burst");
            }
        }
    })
    .await
        * 100.0
}

/// The aging figures are scaled down by this much in short (CI) mode.
fn aging_scale() -> u64 {
    if secs() < 1.0 {
        20
    } else {
        1
    }
}

/// The object `name`'s storage and events, pipelined.
fn object(g: &schema::session_capnp::gateway::Client, class: &str, name: &str) -> (storage::Client, events::Client) {
    let mut req = g.object_request();
    req.get().set_class(class);
    req.get().set_name(name);
    let obj = req.send().pipeline.get_object();
    (obj.storage_request().send().pipeline.get_storage(), obj.events_request().send().pipeline.get_events())
}

/// One create, timed.
async fn timed_create(st: &storage::Client, n: u64) -> Duration {
    let mut r = st.create_request();
    r.get().set_type("Item");
    r.get().set_data(format!(r#"{{"n": {n}}}"#));
    let t0 = Instant::now();
    r.send().promise.await.expect("create");
    t0.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Create latency on an aged object (its log seeded with `events` events straight into
/// its SQLite file) against a fresh one, interleaved; then `things` things loaded into
/// one object by `bulkCreate` of 1,000.
async fn aging(url: &str, data_dir: &std::path::Path) {
    use do_modules::host::{Sql, SqlValue};
    let scale = aging_scale();
    let (events, things) = (1_000_000 / scale, 100_000 / scale);
    let session = rpc_client::connect(url).await.expect("connect");
    let (aged, _) = object(&session.bootstrap, "Aged", "a");
    let (fresh, _) = object(&session.bootstrap, "Fresh", "f");
    timed_create(&aged, 0).await;
    timed_create(&fresh, 0).await;
    let file = std::fs::read_dir(data_dir.join("default").join("Aged"))
        .expect("the aged object's class dir")
        .flatten()
        .map(|f| f.path())
        .find(|p| p.extension().is_some_and(|e| e == "sqlite"))
        .expect("the aged object's file");
    let db = do_runtime::host::sqlite::SqliteDb::open(&file).expect("open the aged object's file");
    let t0 = Instant::now();
    db.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
         INSERT INTO events (id, noun, verb, data, ts, source)
         SELECT printf('%011x%08x', ?, i), 'Seed', 'created', '{\"i\": ' || i || '}', ?, 'seed' FROM n",
        &[
            SqlValue::Integer(events as i64),
            SqlValue::Integer(rpc_core::params::now_ms()),
            SqlValue::Integer(rpc_core::params::now_ms()),
        ],
    )
    .expect("seed the log");
    let seeded = t0.elapsed();
    drop(db);
    let creates = 2000 / scale.min(10);
    let (mut on_aged, mut on_fresh) = (Vec::new(), Vec::new());
    for n in 1..=creates {
        on_aged.push(timed_create(&aged, n).await);
        on_fresh.push(timed_create(&fresh, n).await);
    }
    let (a, f) = (median(on_aged), median(on_fresh));

    let (bulk, _) = object(&session.bootstrap, "Bulk", "b");
    let t0 = Instant::now();
    for batch in 0..things / 1000 {
        let mut r = bulk.bulk_create_request();
        let mut list = r.get().init_things(1000);
        for i in 0..1000u32 {
            let mut t = list.reborrow().get(i);
            t.set_type("Item");
            t.set_id(format!("t{}", batch * 1000 + u64::from(i)));
            t.set_data(format!(r#"{{"n": {i}, "group": {}}}"#, i % 10));
        }
        r.send().promise.await.expect("bulk create");
    }
    let load = t0.elapsed();

    println!("== aging: writes on an object whose log is long (retention set above the log's size)");
    if scale > 1 {
        println!("(short mode, DOTDO_BENCH_SECS < 1: figures scaled down {scale}x; run with DOTDO_BENCH_SECS >= 1 for the full ones)");
    }
    println!(
        "create median {:.3} ms with {events} events in the log (seeded in {:.1} s) vs {:.3} ms on a fresh object ({:.2}x, target <= 1.2x; {creates} creates each, interleaved)",
        a.as_secs_f64() * 1e3,
        seeded.as_secs_f64(),
        f.as_secs_f64() * 1e3,
        a.as_secs_f64() / f.as_secs_f64()
    );
    println!(
        "{things} things into one object by bulkCreate of 1000: {:.2} s ({:.0} things/s{})",
        load.as_secs_f64(),
        things as f64 / load.as_secs_f64(),
        if scale == 1 { ", target < 3 s" } else { "" }
    );
}

/// Things created before gets and queries are timed.
const ITEMS: u64 = 2000;

const QUERY: &str = r#"{"type": "Item", "where": {"group": 3, "n": {"$gte": 10}}, "sort": ["-n"], "limit": 10}"#;

fn in_process(dir: &std::path::Path) -> (f64, f64, f64) {
    let db = do_runtime::host::sqlite::SqliteDb::open(&dir.join("inproc.sqlite")).expect("db");
    let env = BenchEnv(Cell::new(7));
    let store = Store { sql: &db, env: &env };
    store.migrate().expect("migrate");
    let time = |f: &mut dyn FnMut(u64)| {
        let (t0, mut n) = (Instant::now(), 0u64);
        while t0.elapsed().as_secs_f64() < secs() {
            f(n);
            n += 1;
        }
        n as f64 / t0.elapsed().as_secs_f64()
    };
    let t0 = Instant::now();
    for n in 0..ITEMS {
        store.create("Item", &format!("i{n}"), &format!(r#"{{"n": {n}, "group": {}}}"#, n % 10)).expect("create");
    }
    let create = ITEMS as f64 / t0.elapsed().as_secs_f64();
    let get = time(&mut |n| {
        store.get(&format!("i{}", n % 100)).expect("get");
    });
    let q = Query::parse(QUERY).expect("query");
    let query = time(&mut |_| {
        store.query(&q).expect("query");
    });
    (create, get, query)
}

/// A class's key-value API in-process, on its own file: gets and puts per second.
fn kv_in_process(dir: &std::path::Path) -> (f64, f64) {
    let db = std::rc::Rc::new(do_runtime::host::sqlite::SqliteDb::open(&dir.join("kv.sqlite")).expect("db"));
    let kv = do_runtime::Kv::new(db).expect("kv");
    for i in 0..100 {
        kv.put(&format!("k{i}"), &i).expect("put");
    }
    let time = |f: &mut dyn FnMut(u64)| {
        let (t0, mut n) = (Instant::now(), 0u64);
        while t0.elapsed().as_secs_f64() < secs() {
            f(n);
            n += 1;
        }
        n as f64 / t0.elapsed().as_secs_f64()
    };
    let get = time(&mut |n| {
        let v: Option<u64> = kv.get(&format!("k{}", n % 100)).expect("get");
        assert!(v.is_some());
    });
    let put = time(&mut |n| kv.put(&format!("k{}", n % 100), &n).expect("put"));
    (get, put)
}

struct Sink(std::rc::Rc<Cell<u64>>);

impl handler::Server for Sink {
    async fn handle(self: CapRc<Self>, _: handler::HandleParams, _: handler::HandleResults) -> capnp::Result<()> {
        self.0.set(self.0.get() + 1);
        Ok(())
    }
}

fn main() {
    let dir = std::env::temp_dir().join(format!("dotdo-bench-objects-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        tcp_addr: None,
        workers: 1,
        ..ServerConfig::default()
    };
    // The log keeps every event, so the aging figure measures a log of the seeded size.
    let event_retention = do_modules::events::Retention { max_events: u64::MAX, max_age_ms: u64::MAX };
    let cold_dir = dir.join("cold").to_string_lossy().to_string();
    let host = do_runtime::HostConfig {
        data_dir: dir.join("server"),
        threads: 1,
        event_retention,
        cold: Some(cold_dir.clone()),
        ..Default::default()
    };
    let server = do_runtime::App::new()
        .class::<examples::counter::Counter>("Counter")
        .any_class_builtin()
        .host(host)
        .start(config)
        .expect("server")
        .server;
    let url = format!("ws://{}/rpc", server.http_addr);
    let aging_url = url.clone();
    let (ip_create, ip_get, ip_query) = rpc_client::run(async { in_process(&dir) });
    let (kv_get, kv_put) = kv_in_process(&dir);

    let creates = rpc_client::run(async move {
        let session = rpc_client::connect(&url).await.expect("connect");
        let mut req = session.bootstrap.object_request();
        req.get().set_class("Bench");
        req.get().set_name("b");
        let obj = req.send().promise.await.expect("object").get().unwrap().get_object().unwrap();
        let st: storage::Client =
            obj.storage_request().send().promise.await.unwrap().get().unwrap().get_storage().unwrap();
        let ev: events::Client =
            obj.events_request().send().promise.await.unwrap().get().unwrap().get_events().unwrap();

        let t0 = Instant::now();
        for n in 0..ITEMS {
            let mut r = st.create_request();
            r.get().set_type("Item");
            r.get().set_id(format!("i{n}"));
            r.get().set_data(format!(r#"{{"n": {n}, "group": {}}}"#, n % 10));
            r.send().promise.await.expect("create");
        }
        let create = ITEMS as f64 / t0.elapsed().as_secs_f64();
        let get = rate(|n| {
            let mut r = st.get_request();
            r.get().set_id(format!("i{}", n % 100));
            let p = r.send().promise;
            async move {
                p.await.expect("get");
            }
        })
        .await;
        let query = rate(|_| {
            let mut r = st.query_request();
            r.get().set_query(QUERY);
            let p = r.send().promise;
            async move {
                p.await.expect("query");
            }
        })
        .await;
        // Durable creates with 100 in flight: their writes share commits (the output
        // gate holds each answer until the commit covering it).
        let create_100 = burst(|n, i| {
            let mut r = st.create_request();
            r.get().set_type("Burst");
            r.get().set_id(format!("b{n}-{i}"));
            r.get().set_data(format!(r#"{{"n": {i}}}"#));
            r.send().promise.map(|r| r.map(drop))
        })
        .await;
        // A user class's method vs the built-in storage's, one write each, sequential.
        let counter = examples::counter_client::Counter::new(session.bootstrap.object("Counter", "c").object().cast());
        counter.increment(1).await.expect("increment");
        let increment = rate(|_| {
            let call = counter.increment(1);
            async move {
                call.await.expect("increment");
            }
        })
        .await;
        let mut r = st.create_request();
        r.get().set_type("Tally");
        r.get().set_id("tally");
        r.get().set_data(r#"{"n": 0}"#);
        r.send().promise.await.expect("create the tally");
        let inc = rate(|_| {
            let mut r = st.update_request();
            r.get().set_id("tally");
            r.get().set_patch(r#"{"$inc": {"n": 1}}"#);
            let p = r.send().promise;
            async move {
                p.await.expect("update");
            }
        })
        .await;
        let get_100 = burst(|n, i| {
            let mut r = st.get_request();
            r.get().set_id(format!("i{}", (n * 100 + i) % 100));
            r.send().promise.map(|r| r.map(drop))
        })
        .await;

        // Fan-out: 100 subscribers (capabilities on this client) to every event.
        let delivered = std::rc::Rc::new(Cell::new(0u64));
        let mut subs = Vec::new();
        for _ in 0..100 {
            let mut r = ev.subscribe_request();
            r.get().set_pattern("*");
            r.get().set_handler(capnp_rpc::new_client(Sink(delivered.clone())));
            subs.push(r.send().promise.await.expect("subscribe").get().unwrap().get_subscription().unwrap());
        }
        let events = 200u64;
        let t0 = Instant::now();
        for i in 0..events {
            let mut r = ev.send_request();
            r.get().set_type("Bench.tick");
            r.get().set_data(format!(r#"{{"i": {i}}}"#));
            r.send().promise.await.expect("send");
        }
        let sent = t0.elapsed();
        while delivered.get() < events * 100 && t0.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let all = t0.elapsed();

        println!("== storage ops/s over {ITEMS} things: through RPC (WebSocket, sequential) vs in-process (same store, no RPC)");
        println!("create   {create:>9.0} via RPC   {ip_create:>9.0} in-process   ({:.2}x)", create / ip_create);
        println!("get      {get:>9.0} via RPC   {ip_get:>9.0} in-process   ({:.2}x)", get / ip_get);
        println!("query    {query:>9.0} via RPC   {ip_query:>9.0} in-process   ({:.2}x)", query / ip_query);
        println!("get with 100 in flight {get_100:>9.0} via RPC ({:.2}x sequential RPC gets)", get_100 / get);
        println!(
            "create with 100 in flight {create_100:>9.0} via RPC ({:.2}x sequential RPC creates; target >= 20,000/s)",
            create_100 / create
        );
        println!("== a user class (Counter) vs the built-in storage, sequential over WebSocket");
        println!("Counter.increment {increment:>9.0}/s   storage.update $inc {inc:>9.0}/s   ({:.2}x)", increment / inc);
        println!("KV in-process: get {kv_get:>9.0}/s   put {kv_put:>9.0}/s (each put its own commit)");
        println!("== event fan-out to 100 subscribers over WebSocket");
        println!(
            "{events} events sent in {:.1} ms ({:.0} events/s); {} deliveries done in {:.1} ms ({:.0} deliveries/s)",
            sent.as_secs_f64() * 1e3,
            events as f64 / sent.as_secs_f64(),
            delivered.get(),
            all.as_secs_f64() * 1e3,
            delivered.get() as f64 / all.as_secs_f64()
        );
        drop(subs);
        create
    });
    workflows::run(&dir, secs(), creates);
    rpc_client::run(aging(&aging_url, &dir.join("server")));
    let (hot, cold, hit_rate) = rpc_client::run(async { storage_figures::hot_gets(&dir) });
    println!("== the hot tier: storage get of 100 hot Things in-process (the class API)");
    println!(
        "get {hot:>9.0}/s with the hot tier   {cold:>9.0}/s without (SQLite each time)   ({:.2}x; hit rate {:.3}; goal >= 500,000/s)",
        hot / cold,
        hit_rate
    );
    rpc_client::run(storage_figures::run(&aging_url, aging_scale()));
    rpc_client::run(storage_figures::snapshot_restore(&aging_url, &dir, &cold_dir));
    rpc_client::run(storage_figures::cold_gets(&aging_url));
    rpc_client::run(storage_figures::traversal(&aging_url, aging_scale()));
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
