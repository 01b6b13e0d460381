//! Storage figures of issue 13, through RPC over WebSocket on the bench's server:
//! queries over 100,000 Things without and with an index on the field they filter and
//! sort on (the same queries, the same object, before and after `storage.index`).

use super::{median, object, secs};
use schema::object_capnp::storage;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// One query, timed.
async fn timed_query(st: &storage::Client, q: &Value) -> (Duration, usize) {
    let mut r = st.query_request();
    r.get().set_query(q.to_string());
    let t0 = Instant::now();
    let resp = r.send().promise.await.expect("query");
    let n = resp.get().expect("results").get_things().expect("things").len() as usize;
    (t0.elapsed(), n)
}

/// The median of a query's latency over the bench's time (at least 5 runs).
async fn query_latency(st: &storage::Client, q: &Value) -> (Duration, usize) {
    let (mut times, t0, mut n) = (Vec::new(), Instant::now(), 0);
    while times.len() < 5 || (t0.elapsed().as_secs_f64() < secs() / 2.0 && times.len() < 2000) {
        let (t, got) = timed_query(st, q).await;
        times.push(t);
        n = got;
    }
    (median(times), n)
}

/// Loads `things` Persons (age = i % 5000, so each age is 20 of 100,000) into one object.
async fn load(st: &storage::Client, things: u64) {
    for batch in 0..things / 1000 {
        let mut r = st.bulk_create_request();
        let mut list = r.get().init_things(1000);
        for i in 0..1000u32 {
            let n = batch * 1000 + u64::from(i);
            let mut t = list.reborrow().get(i);
            t.set_type("Person");
            t.set_id(format!("p{n:06}"));
            let city = ["Oslo", "Rome", "Lima"][n as usize % 3];
            t.set_data(json!({"age": n % 5000, "name": format!("person {n}"), "city": city}).to_string());
        }
        r.send().promise.await.expect("bulk create");
    }
}

/// Prints the indexed vs unindexed figures.
pub async fn run(url: &str, scale: u64) {
    let things = 100_000 / scale;
    let session = rpc_client::connect(url).await.expect("connect");
    let (st, _) = object(&session.bootstrap, "Indexed", "people");
    load(&st, things).await;
    let queries = [
        ("equality", json!({"type": "Person", "where": {"age": 1234}, "limit": 20})),
        (
            "range, sorted",
            json!({"type": "Person", "where": {"age": {"$gte": 1234, "$lt": 1235}}, "sort": ["-age"], "limit": 20}),
        ),
        (
            "open range, sorted",
            json!({"type": "Person", "where": {"age": {"$gte": 2500}}, "sort": ["age"], "limit": 20}),
        ),
    ];
    let mut before = Vec::new();
    for (_, q) in &queries {
        before.push(query_latency(&st, q).await);
    }
    let mut r = st.index_request();
    r.get().set_spec(r#""age""#);
    let t0 = Instant::now();
    r.send().promise.await.expect("index");
    let built = t0.elapsed();
    println!("== indexes: queries over {things} Things through RPC, without and with an index on `age` (medians)");
    println!("index built over {things} Things in {:.0} ms", built.as_secs_f64() * 1e3);
    for ((what, q), (without, n0)) in queries.iter().zip(before) {
        let (with, n1) = query_latency(&st, q).await;
        assert_eq!(n0, n1, "the index changes the plan, not the answer");
        println!(
            "{what:<20} {n1} things: {:>8.3} ms unindexed   {:>8.3} ms indexed   ({:.1}x; goal < 5 ms indexed)",
            without.as_secs_f64() * 1e3,
            with.as_secs_f64() * 1e3,
            without.as_secs_f64() / with.as_secs_f64()
        );
    }
}

/// Storage `get` of 100 hot Things in-process (the class's Rust API: no RPC), with the
/// hot tier and without it (0 bytes), on one SQLite file: gets/s each and the tier's hit
/// rate.
pub fn hot_gets(dir: &std::path::Path) -> (f64, f64, f64) {
    use do_modules::storage::hot::{HotConfig, HotStats};
    use do_modules::storage::rust_api::Things;
    use do_modules::storage::server::StorageServer;
    let db = std::rc::Rc::new(do_runtime::host::sqlite::SqliteDb::open(&dir.join("hot.sqlite")).expect("db"));
    let env = std::rc::Rc::new(super::BenchEnv(std::cell::Cell::new(3)));
    let hub = do_modules::events::EventHub::new(db.clone(), env.clone(), "hot".into()).expect("hub");
    let stats = std::sync::Arc::new(HotStats::default());
    let things = |bytes: usize| {
        let hot = HotConfig { bytes, stats: stats.clone() };
        Things::new(StorageServer::new(db.clone(), env.clone(), hub.clone(), hot).expect("storage"))
    };
    let (cached, uncached) = (things(do_modules::storage::hot::DEFAULT_HOT_BYTES), things(0));
    for n in 0..100 {
        let data = json!({"n": n, "name": format!("thing {n}"), "tags": ["a", "b"]});
        cached.create("Item", &format!("h{n}"), &data).expect("create");
    }
    let ids: Vec<String> = (0..100).map(|n| format!("h{n}")).collect();
    let rate = |t: &Things| {
        let (t0, mut n) = (Instant::now(), 0usize);
        while t0.elapsed().as_secs_f64() < secs() / 2.0 {
            for _ in 0..100 {
                t.get(&ids[n % 100]).expect("get");
                n += 1;
            }
        }
        n as f64 / t0.elapsed().as_secs_f64()
    };
    let without = rate(&uncached);
    let with = rate(&cached);
    (with, without, stats.hit_rate())
}
