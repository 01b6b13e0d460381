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

/// A 3-hop traversal over `10 * people` relationships (each person follows 10 others),
/// one `traverse` call against the same walk done by the client with `related`, level
/// by level (each level's calls in flight together): medians, and how many were reached.
pub async fn traversal(url: &str, scale: u64) {
    let people = 10_000 / scale;
    let session = rpc_client::connect(url).await.expect("connect");
    let (st, _) = object(&session.bootstrap, "Graph", "follows");
    let per = people.min(1000);
    for batch in 0..people / per {
        let mut r = st.bulk_create_request();
        let mut list = r.get().init_things(per as u32);
        for i in 0..per as u32 {
            let mut t = list.reborrow().get(i);
            t.set_type("Person");
            t.set_id(format!("u{}", batch * per + u64::from(i)));
            t.set_data("{}");
        }
        r.send().promise.await.expect("bulk create");
    }
    let t0 = Instant::now();
    for chunk in 0..people / 10 {
        let mut calls = Vec::new();
        for i in chunk * 10..chunk * 10 + 10 {
            for j in 0..10 {
                let mut r = st.relate_request();
                r.get().set_from(format!("u{i}"));
                r.get().set_verb("follow");
                r.get().set_to(format!("u{}", (i * 7 + j * 13 + 1) % people));
                calls.push(r.send().promise);
            }
        }
        for c in futures::future::join_all(calls).await {
            c.expect("relate");
        }
    }
    let loaded = t0.elapsed();
    let query = json!({"start": "u0", "steps": [{"verb": "follow"}], "maxDepth": 3, "limit": 1000});
    let (mut server_side, mut client_side, mut reached) = (Vec::new(), Vec::new(), (0usize, 0usize));
    let t0 = Instant::now();
    while server_side.len() < 5 || (t0.elapsed().as_secs_f64() < secs() && server_side.len() < 200) {
        let mut r = st.traverse_request();
        r.get().set_query(query.to_string());
        let t = Instant::now();
        let resp = r.send().promise.await.expect("traverse");
        server_side.push(t.elapsed());
        reached.0 = resp.get().expect("results").get_things().expect("things").len() as usize;

        let t = Instant::now();
        let mut seen: std::collections::HashSet<String> = ["u0".to_string()].into();
        let mut frontier = vec!["u0".to_string()];
        for _ in 0..3 {
            let calls: Vec<_> = frontier
                .iter()
                .map(|id| {
                    let mut r = st.related_request();
                    r.get().set_query(json!({"id": id, "verb": "follow", "limit": 1000}).to_string());
                    r.send().promise
                })
                .collect();
            let mut next = Vec::new();
            for resp in futures::future::join_all(calls).await {
                let resp = resp.expect("related");
                for t in resp.get().expect("results").get_things().expect("things").iter() {
                    let id = t.get_id().expect("id").to_string().expect("utf-8");
                    if seen.insert(id.clone()) {
                        next.push(id);
                    }
                }
            }
            frontier = next;
        }
        client_side.push(t.elapsed());
        reached.1 = seen.len() - 1;
    }
    assert_eq!(reached.0, reached.1, "both walks reach the same people");
    let (s, c) = (median(server_side), median(client_side));
    println!(
        "== relationships: {} follows among {people} people (loaded in {:.1} s, 100 relates in flight)",
        people * 10,
        loaded.as_secs_f64()
    );
    println!(
        "3-hop traversal reaching {} people: {:.3} ms as one traverse   {:.3} ms as related calls level by level   ({:.1}x)",
        reached.0,
        s.as_secs_f64() * 1e3,
        c.as_secs_f64() * 1e3,
        c.as_secs_f64() / s.as_secs_f64()
    );
}

/// Snapshot and restore of the object the index figures used (100,000 Things): MB/s of
/// its SQLite file, each against copying that file (the same bytes, no format).
pub async fn snapshot_restore(url: &str, data: &std::path::Path, cold: &str) {
    let session = rpc_client::connect(url).await.expect("connect");
    let (st, _) = object(&session.bootstrap, "Indexed", "people");
    let t0 = Instant::now();
    let r = st.snapshot_request().send().promise.await.expect("snapshot");
    let took = t0.elapsed();
    let manifest: Value = serde_json::from_str(r.get().unwrap().get_manifest().unwrap().to_str().unwrap()).unwrap();
    let parquet: u64 = manifest["tables"].as_array().unwrap().iter().map(|t| t["bytes"].as_u64().unwrap()).sum();
    let key = do_runtime::host::registry::ObjectKey {
        namespace: "default".into(),
        class: "Indexed".into(),
        name: "people".into(),
    };
    let file = do_runtime::restore::object_file(&data.join("server"), &key);
    // The file and its write-ahead log (not yet checkpointed into it).
    let wal = std::path::PathBuf::from(format!("{}-wal", file.display()));
    let size = (std::fs::metadata(&file).expect("the object's file").len()
        + std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0)) as f64
        / 1e6;
    let t0 = Instant::now();
    std::fs::copy(&file, data.join("copy.sqlite")).expect("copy");
    let _ = std::fs::copy(&wal, data.join("copy.sqlite-wal"));
    let copy = t0.elapsed();
    let args = do_runtime::restore::RestoreArgs {
        data: data.join("restored"),
        cold: cold.to_string(),
        namespace: "default".into(),
        class: "Indexed".into(),
        name: "people".into(),
    };
    let t0 = Instant::now();
    do_runtime::restore::run(&args).await.expect("restore");
    let restore = t0.elapsed();
    let mbps = |d: Duration| size / d.as_secs_f64();
    println!(
        "== snapshots: the {size:.1} MB object of the index figures ({:.1} MB of Parquet), to a local directory",
        parquet as f64 / 1e6
    );
    println!(
        "snapshot {:>7.1} MB/s ({:.0} ms)   restore {:>7.1} MB/s ({:.0} ms)   copying the file {:>7.1} MB/s   (snapshot {:.2}x, restore {:.2}x the copy's time)",
        mbps(took),
        took.as_secs_f64() * 1e3,
        mbps(restore),
        restore.as_secs_f64() * 1e3,
        mbps(copy),
        took.as_secs_f64() / copy.as_secs_f64(),
        restore.as_secs_f64() / copy.as_secs_f64()
    );
}

/// Median latency of `get`s of `ids` (round robin) through RPC.
async fn get_latency(st: &storage::Client, ids: &[String]) -> Duration {
    let (mut times, t0) = (Vec::new(), Instant::now());
    while times.len() < 20 || (t0.elapsed().as_secs_f64() < secs() / 4.0 && times.len() < 5000) {
        let mut r = st.get_request();
        r.get().set_id(&ids[times.len() % ids.len()]);
        let t = Instant::now();
        r.send().promise.await.expect("get");
        times.push(t.elapsed());
    }
    median(times)
}

/// `get` of archived Things (10,000 archived in one segment) against Things in SQLite,
/// through RPC: the first get of a segment reads it from the cold tier (a local
/// directory here), later ones find it in memory.
pub async fn cold_gets(url: &str) {
    let session = rpc_client::connect(url).await.expect("connect");
    let (st, _) = object(&session.bootstrap, "Archived", "orders");
    for batch in 0..11u32 {
        let mut r = st.bulk_create_request();
        let mut list = r.get().init_things(1000);
        for i in 0..1000u32 {
            let n = batch * 1000 + i;
            let mut t = list.reborrow().get(i);
            t.set_type(if n < 10_000 { "Old" } else { "New" });
            t.set_id(format!("o{n}"));
            t.set_data(json!({"n": n, "note": "an order of some size, with a note"}).to_string());
        }
        r.send().promise.await.expect("bulk create");
    }
    let mut r = st.archive_request();
    r.get().set_request(r#"{"type": "Old"}"#);
    let t0 = Instant::now();
    let archived = r.send().promise.await.expect("archive").get().unwrap().get_archived();
    let took = t0.elapsed();
    let mut first = st.get_request();
    first.get().set_id("o0");
    let t0 = Instant::now();
    first.send().promise.await.expect("first cold get");
    let first = t0.elapsed();
    let cold_ids: Vec<String> = (0..1000).map(|i| format!("o{}", i * 7)).collect();
    let warm_ids: Vec<String> = (10_000..11_000).map(|i| format!("o{i}")).collect();
    let cold = get_latency(&st, &cold_ids).await;
    let warm = get_latency(&st, &warm_ids).await;
    println!(
        "== the cold tier: {archived} Things archived in {:.0} ms (one Parquet segment, local directory)",
        took.as_secs_f64() * 1e3
    );
    println!(
        "get through RPC: first from the segment {:.3} ms (reads it)   cold {:.3} ms (segment in memory)   SQLite {:.3} ms   (cold/SQLite {:.2}x)",
        first.as_secs_f64() * 1e3,
        cold.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3,
        cold.as_secs_f64() / warm.as_secs_f64()
    );
}
