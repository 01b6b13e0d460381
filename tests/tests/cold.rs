//! Snapshots and restore through the cold tier, on a local directory and on a real
//! S3-compatible server (moto, started here through `tests/tools/moto-server`, which
//! installs it when missing): every acknowledged write made before a snapshot is back
//! after the object's SQLite file is deleted or damaged and `dotdo restore` runs; what
//! came after the snapshot is not (the documented recovery order).

mod common;

use common::things::*;
use common::*;
use examples::counter_client::Counter;
use rpc_core::Code;
use rpc_server::{ServerConfig, ServerHandle};
use schema::object_capnp::{kv, object, schedule, storage};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn start(data: &Path, cold: Option<String>) -> ServerHandle {
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        tcp_addr: None,
        workers: 1,
        ..ServerConfig::default()
    };
    let host = do_runtime::HostConfig { data_dir: data.to_path_buf(), threads: 1, cold, ..Default::default() };
    do_runtime::App::new()
        .class::<examples::ledger::Ledger>("Ledger")
        .any_class_builtin()
        .host(host)
        .start(config)
        .expect("server")
        .server
}

fn ledger(g: &rpc_client::api::session::Gateway, name: &str) -> (Counter, object::Client) {
    let mut req = g.object_request();
    req.get().set_class("Ledger");
    req.get().set_name(name);
    (Counter::new(g.object("Ledger", name).object().cast()), req.send().pipeline.get_object())
}

fn parts(obj: &object::Client) -> (storage::Client, kv::Client, schedule::Client) {
    (
        obj.storage_request().send().pipeline.get_storage(),
        obj.kv_request().send().pipeline.get_kv(),
        obj.schedule_request().send().pipeline.get_schedule(),
    )
}

async fn snapshot(st: &storage::Client) -> Result<Value, rpc_core::RpcError> {
    let r = st.snapshot_request().send().promise.await?;
    Ok(serde_json::from_str(r.get()?.get_manifest()?.to_str().unwrap_or("")).unwrap_or(Value::Null))
}

/// Writes state of every kind to the object `name`, snapshots it, then writes once
/// more (after the snapshot); the manifest.
async fn fill_and_snapshot(url: &str, name: &str) -> Value {
    let session = rpc_client::connect(url).await.expect("connect");
    let (counter, obj) = ledger(&session.bootstrap, name);
    let (st, kv, sched) = parts(&obj);
    assert_eq!(counter.increment(5).await.expect("increment").value, 5);
    assert_eq!(counter.increment(2).await.expect("increment").value, 7);
    create(&st, "Account", "a1", json!({"account": "FR76", "owner": "Ann"})).await.expect("account");
    create(&st, "Customer", "c1", json!({"name": "Ann"})).await.expect("customer");
    relate(&st, "c1", "own", "a1", json!({"since": 2020})).await.expect("relate");
    index(&st, json!("owner")).await.expect("index");
    let mut put = kv.put_request();
    put.get().set_key("plan");
    put.get().set_value(json!({"tier": "gold"}).to_string());
    put.send().promise.await.expect("kv put");
    let mut s = sched.schedule_request();
    s.get().set_spec("every 5 minutes");
    s.get().set_action("Audit.due");
    s.get().set_data("{}");
    s.send().promise.await.expect("schedule");
    let manifest = snapshot(&st).await.expect("snapshot");
    // After the snapshot: not in it, so not restored.
    create(&st, "Customer", "late", json!({})).await.expect("late");
    manifest
}

/// Checks everything written before the snapshot is there, and the late write is not.
async fn check_restored(url: &str, name: &str) {
    let session = rpc_client::connect(url).await.expect("connect");
    let (counter, obj) = ledger(&session.bootstrap, name);
    let (st, kv, sched) = parts(&obj);
    assert_eq!(counter.get().await.expect("get").value, 7, "the class's own table");
    assert_eq!(ids(&st, json!({"type": "Customer"})).await, ["c1"], "Things up to the snapshot, not after");
    assert_eq!(related_ids(&st, json!({"id": "c1", "verb": "own"})).await, ["a1"]);
    assert_eq!(index_names(&st).await, ["byAccount", "owner"]);
    assert_eq!(code(create(&st, "Account", "a2", json!({"account": "FR76"})).await), Code::Conflict, "unique again");
    let mut get = kv.get_request();
    get.get().set_key("plan");
    let r = get.send().promise.await.expect("kv get");
    assert_eq!(r.get().unwrap().get_value().unwrap().to_str().unwrap(), json!({"tier": "gold"}).to_string());
    let entries = sched.list_request().send().promise.await.expect("list schedules");
    let entries = entries.get().unwrap().get_entries().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries.get(0).get_spec().unwrap().to_str().unwrap(), "every 5 minutes");
    let events = obj.events_request().send().pipeline.get_events();
    let mut list = events.list_request();
    list.get().set_pattern("Customer.*");
    let r = list.send().promise.await.expect("events");
    let types: Vec<String> =
        r.get().unwrap().get_events().unwrap().iter().map(|e| e.get_type().unwrap().to_string().unwrap()).collect();
    assert_eq!(types, ["Customer.created", "Customer.owned"], "the log up to the snapshot");
}

fn restore(data: &Path, cold: &str, name: &str) -> Result<do_modules::snapshot::Manifest, rpc_core::RpcError> {
    let args = do_runtime::restore::RestoreArgs {
        data: data.to_path_buf(),
        cold: cold.to_string(),
        namespace: "default".into(),
        class: "Ledger".into(),
        name: name.into(),
    };
    rpc_client::run(do_runtime::restore::run(&args))
}

fn object_file(data: &Path, name: &str) -> PathBuf {
    let key = do_runtime::host::registry::ObjectKey {
        namespace: "default".into(),
        class: "Ledger".into(),
        name: name.into(),
    };
    do_runtime::restore::object_file(data, &key)
}

fn remove_file(file: &Path) {
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", file.display()));
    }
}

/// The whole round: fill, snapshot, lose the file (deleted, or damaged), restore, check.
fn round_trip(cold: &str, tag: &str) {
    let data = data_dir(&format!("cold-data-{tag}"));
    let server = start(&data, Some(cold.to_string()));
    let url = format!("ws://{}/rpc", server.http_addr);
    let manifest = rpc_client::run(fill_and_snapshot(&url, "deleted"));
    let tables: Vec<&str> =
        manifest["tables"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    for t in ["things", "events", "dotdo_relationships", "dotdo_indexes", "schedules", "entries"] {
        assert!(tables.contains(&t), "{t} in {tables:?}");
    }
    assert!(manifest["events_up_to"].as_i64().unwrap() > 0);
    rpc_client::run(fill_and_snapshot(&url, "damaged"));
    server.stop();

    // One file deleted, the other overwritten with garbage.
    let deleted = object_file(&data, "deleted");
    assert!(deleted.exists(), "{}", deleted.display());
    remove_file(&deleted);
    let damaged = object_file(&data, "damaged");
    remove_file(&damaged);
    std::fs::write(&damaged, b"this is not a database, it was a database once").expect("damage");

    let m = restore(&data, cold, "deleted").expect("restore the deleted one");
    assert_eq!(m.seq, manifest["seq"].as_str().unwrap());
    restore(&data, cold, "damaged").expect("restore the damaged one");
    let kept: Vec<_> = std::fs::read_dir(damaged.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|f| f.file_name().to_string_lossy().contains(".before-restore-"))
        .collect();
    assert_eq!(kept.len(), 1, "the damaged file is kept beside the restored one");
    assert_eq!(restore(&data, cold, "never-snapshotted").unwrap_err().code, Code::NotFound);

    let server = start(&data, Some(cold.to_string()));
    let url = format!("ws://{}/rpc", server.http_addr);
    rpc_client::run(check_restored(&url, "deleted"));
    rpc_client::run(check_restored(&url, "damaged"));
    server.stop();
    let _ = std::fs::remove_dir_all(data);
}

#[test]
fn a_lost_object_file_comes_back_from_a_snapshot_in_a_directory() {
    let cold = data_dir("cold-dir");
    round_trip(cold.to_str().unwrap(), "dir");
    let _ = std::fs::remove_dir_all(cold);
}

/// moto's S3 server on a free port, stopped when dropped.
struct Moto {
    child: std::process::Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/moto-server");
    let child = std::process::Command::new(script)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tests/tools/moto-server starts (it needs python3)");
    let moto = Moto { child, port };
    // The first run may install moto first.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "moto did not start on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    moto
}

#[test]
fn a_lost_object_file_comes_back_from_a_snapshot_in_s3() {
    let moto = moto();
    let addr = format!("127.0.0.1:{}", moto.port);
    // CreateBucket: moto takes any credentials.
    let (status, body) = rpc_client::run(http_to(&addr, "PUT", "/dotdo-cold", "application/xml", b""));
    assert_eq!(status, 200, "{body}");
    let cold = format!(
        "s3://dotdo-cold/tests?endpoint=http://{addr}&aws_allow_http=true&region=us-east-1&access_key_id=test&secret_access_key=test"
    );
    round_trip(&cold, "s3");
    // The files are in the bucket, under the prefix.
    let (status, listing) =
        rpc_client::run(http_to(&addr, "GET", "/dotdo-cold?list-type=2&prefix=tests/objects/", "application/xml", b""));
    assert_eq!(status, 200);
    assert!(listing.contains("manifest.json") && listing.contains(".parquet"), "{listing}");
}

#[test]
fn snapshots_need_a_cold_tier_and_bad_ones_are_refused() {
    let data = data_dir("cold-none");
    let server = start(&data, None);
    rpc_client::run(async {
        let session = rpc_client::connect(&format!("ws://{}/rpc", server.http_addr)).await.expect("connect");
        let (_, obj) = ledger(&session.bootstrap, "x");
        let (st, _, _) = parts(&obj);
        let e = snapshot(&st).await.expect_err("no cold tier");
        assert_eq!(e.code, Code::Unavailable);
        assert!(e.message.contains("--cold"), "{}", e.message);
    });
    server.stop();
    for bad in ["s3://", "s3://bucket?nonsense=1", "s3://bucket?endpoint"] {
        assert_eq!(do_cold::ColdStore::open(bad).unwrap_err().code, Code::InvalidArgument, "{bad}");
    }
    let _ = std::fs::remove_dir_all(data);
}

async fn archive(st: &storage::Client, request: Value) -> Result<u64, rpc_core::RpcError> {
    let mut r = st.archive_request();
    r.get().set_request(request.to_string());
    Ok(r.send().promise.await?.get()?.get_archived())
}

async fn get(st: &storage::Client, id: &str) -> Result<Thing, rpc_core::RpcError> {
    let mut r = st.get_request();
    r.get().set_id(id);
    let resp = r.send().promise.await?;
    Ok(thing(resp.get()?.get_thing()?))
}

#[test]
fn archived_things_stay_readable_and_come_back_when_written() {
    let (data, cold) = (data_dir("archive-data"), data_dir("archive-cold"));
    let server = start(&data, Some(cold.to_string_lossy().to_string()));
    rpc_client::run(async {
        let session = rpc_client::connect(&format!("ws://{}/rpc", server.http_addr)).await.expect("connect");
        let st = storage_of(&session.bootstrap, "Shop", "archive");
        for i in 0..50 {
            create(&st, "Order", &format!("o{i:02}"), json!({ "n": i })).await.expect("order");
        }
        create(&st, "Customer", "c1", json!({})).await.expect("customer");
        relate(&st, "c1", "place", "o01", json!({})).await.expect("relate");
        assert_eq!(get(&st, "o05").await.expect("hot first").data, json!({"n": 5}));

        assert_eq!(archive(&st, json!({"idleMs": 3_600_000})).await.expect("archive idle"), 0, "nothing is idle yet");
        assert_eq!(archive(&st, json!({"type": "Order", "where": {"n": {"$lt": 30}}})).await.expect("archive"), 30);
        assert_eq!(archive(&st, json!({"type": "Order", "where": {"n": {"$lt": 30}}})).await.expect("again"), 0);
        // Out of SQLite: queries and relationships see the rest; get falls through.
        assert_eq!(count(&st, json!({"type": "Order"})).await, 20);
        assert!(
            related_ids(&st, json!({"id": "c1"})).await.is_empty(),
            "an archived Thing is out of the graph's reach"
        );
        let cold_one = get(&st, "o05").await.expect("from the cold tier");
        assert_eq!((cold_one.data, cold_one.version), (json!({"n": 5}), 1));
        assert_eq!(get(&st, "o40").await.expect("still in SQLite").data, json!({"n": 40}));
        assert_eq!(code(get(&st, "nope").await), Code::NotFound);
        // Its id is taken while it is archived, by every way of creating.
        let mut bulk = st.bulk_create_request();
        let mut list = bulk.get().init_things(1);
        list.reborrow().get(0).set_type("Order");
        list.reborrow().get(0).set_id("o10");
        list.reborrow().get(0).set_data("{}");
        assert_eq!(code(bulk.send().promise.await), Code::Conflict);
        assert_eq!(get(&st, "o10").await.expect("unchanged").data, json!({"n": 10}));

        // includeCold brings back what the query matches, then runs over SQLite.
        let q = json!({"type": "Order", "where": {"n": {"$gte": 25}}, "includeCold": true});
        assert_eq!(ids(&st, q).await.len(), 25);
        assert_eq!(count(&st, json!({"type": "Order"})).await, 25, "o25..o29 came back");
        // A write brings a Thing back first; a create with its id is CONFLICT.
        let mut up = st.update_request();
        up.get().set_id("o03");
        up.get().set_patch(json!({"n": 103}).to_string());
        let t = thing(up.send().promise.await.expect("update an archived one").get().unwrap().get_thing().unwrap());
        assert_eq!((t.data, t.version), (json!({"n": 103}), 2));
        assert_eq!(ids(&st, json!({"where": {"n": 103}})).await, ["o03"]);
        assert_eq!(code(create(&st, "Order", "o07", json!({})).await), Code::Conflict);
        let mut del = st.delete_request();
        del.get().set_id("o08");
        assert!(del.send().promise.await.expect("delete an archived one").get().unwrap().get_deleted());
        assert_eq!(code(get(&st, "o08").await), Code::NotFound);
        relate(&st, "c1", "place", "o01", json!({"again": true})).await.expect("relating revives");
        assert_eq!(related_ids(&st, json!({"id": "c1"})).await, ["o01"]);
        assert_eq!(count(&st, json!({"type": "Order"})).await, 28, "25 + o03, o07, o01 back, o08 gone");
        for bad in [json!({"idleMs": -1}), json!({"sort": ["n"]}), json!({"limit": 20000})] {
            assert!(archive(&st, bad.clone()).await.is_err(), "{bad}");
        }
    });
    server.stop();

    // A host without a cold tier archives nothing.
    let server = start(&data, None);
    rpc_client::run(async {
        let session = rpc_client::connect(&format!("ws://{}/rpc", server.http_addr)).await.expect("connect");
        let st = storage_of(&session.bootstrap, "Shop", "archive");
        assert_eq!(code(archive(&st, json!({})).await), Code::Unavailable);
    });
    server.stop();
    let _ = (std::fs::remove_dir_all(data), std::fs::remove_dir_all(cold));
}
