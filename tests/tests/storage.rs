//! The storage module through the RPC layer, against real SQLite files: CRUD, every
//! query operator, paging, conflicts, persistence across restarts, bad input.

mod common;

use common::things::*;
use common::*;
use rpc_core::Code;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[test]
fn a_thing_created_through_a_pipelined_chain_comes_back() {
    let dir = data_dir("crud");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    for url in urls(&s) {
        rpc_client::run(async {
            let requests = metric(&s, |m| &m.http_requests);
            let session = connect_any(&url).await.expect("connect");
            // gateway.object(...).storage().create(...): one round trip.
            let t = create(
                &storage_of(&session.bootstrap, "Customer", "acme"),
                "Customer",
                "",
                json!({"name": "Acme", "age": 30}),
            )
            .await
            .expect("create");
            assert_eq!(t.version, 1);
            assert_eq!(t.data["name"], "Acme");
            if url.starts_with("http") {
                assert_eq!(metric(&s, |m| &m.http_requests) - requests, 1, "one HTTP request for the chain");
            }
            let session = connect_any(&url).await.expect("connect");
            let mut get = storage_of(&session.bootstrap, "Customer", "acme").get_request();
            get.get().set_id(&t.id);
            let got = thing(get.send().promise.await.expect("get").get().unwrap().get_thing().unwrap());
            assert_eq!((got.id, got.data), (t.id.clone(), t.data.clone()), "over {url}");
        });
    }
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cursors_page_through_everything_once_in_order() {
    let dir = data_dir("paging");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let st = storage_of(&session.bootstrap, "Shop", "pages");
        let mut bulk = st.bulk_create_request();
        {
            let mut list = bulk.get().init_things(25);
            for i in 0..25u32 {
                let mut n = list.reborrow().get(i);
                n.set_type("Item");
                n.set_id(format!("i{i:02}"));
                // Ties on `rank` force the id tie-breaker.
                n.set_data(json!({"rank": i / 3}).to_string());
            }
        }
        assert_eq!(bulk.send().promise.await.expect("bulk").get().unwrap().get_things().unwrap().len(), 25);
        let mut seen = Vec::new();
        let mut cursor = String::new();
        let mut pages = 0;
        loop {
            let (page, next) = query(&st, json!({"type": "Item", "sort": ["-rank"], "limit": 10, "cursor": cursor}))
                .await
                .expect("page");
            pages += 1;
            seen.extend(page.into_iter().map(|t| (t.data["rank"].as_i64().unwrap(), t.id)));
            if next.is_empty() {
                break;
            }
            cursor = next;
        }
        assert_eq!(pages, 3);
        assert_eq!(seen.len(), 25);
        let mut expected = seen.clone();
        expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        assert_eq!(seen, expected, "descending rank, ids ascending within a rank, nothing twice");
        let e = query(&st, json!({"type": "Item", "sort": ["rank"], "cursor": "bm9uc2Vuc2U"})).await;
        assert_eq!(code(e), Code::InvalidArgument);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn things_survive_a_restart_and_objects_are_separate() {
    let dir = data_dir("restart");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        create(&storage_of(&session.bootstrap, "Customer", "acme"), "Note", "n1", json!({"text": "kept"}))
            .await
            .expect("create");
        create(&storage_of(&session.bootstrap, "Customer", "globex"), "Note", "n2", json!({"text": "other"}))
            .await
            .expect("create");
    });
    s.stop();
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let acme = storage_of(&session.bootstrap, "Customer", "acme");
        let (things, _) = query(&acme, json!({})).await.expect("query");
        assert_eq!(things.len(), 1, "each object has its own database");
        assert_eq!(things[0].data["text"], "kept");
    });
    s.stop();
    let files: Vec<_> = std::fs::read_dir(dir.join("default").join("Customer")).expect("class dir").flatten().collect();
    assert!(files.iter().filter(|f| f.path().extension().is_some_and(|e| e == "sqlite")).count() == 2);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn idle_objects_are_evicted_and_come_back_intact() {
    let dir = data_dir("evict");
    let (s, host) = object_server(&dir, Duration::from_millis(100));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        create(&storage_of(&session.bootstrap, "Customer", "sleepy"), "Note", "n", json!({"v": 1}))
            .await
            .expect("create");
        session.close().await.expect("close");
        within("the idle object to be evicted", host.wait_until(|m| m.live.load(Ordering::Relaxed) == 0)).await;
        assert!(host.evictions.load(Ordering::Relaxed) >= 1);
        let session = rpc_client::connect(&ws).await.expect("connect");
        let (things, _) = query(&storage_of(&session.bootstrap, "Customer", "sleepy"), json!({})).await.expect("query");
        assert_eq!(things[0].data["v"], 1);
        assert!(host.loads.load(Ordering::Relaxed) >= 2, "loaded again from its file");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn hostile_and_malformed_input_gets_typed_errors_and_leaves_data_intact() {
    let dir = data_dir("hostile");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let st = storage_of(&session.bootstrap, "Shop", "h");
        let evil = "x'); DROP TABLE things; --";
        create(&st, "Note", "n1", json!({"text": evil})).await.expect("a hostile value is just data");
        assert_eq!(ids(&st, json!({"where": {"text": evil}})).await, ["n1"]);
        assert_eq!(code(query(&st, json!({"where": {"text') OR 1=1 --": 1}})).await), Code::InvalidArgument);
        assert_eq!(code(query(&st, json!({"sort": ["data.x; DROP TABLE things"]})).await), Code::InvalidArgument);
        assert_eq!(code(create(&st, "Bad Type!", "", json!({})).await), Code::InvalidArgument);
        assert_eq!(code(create(&st, "Note", "", json!([1, 2])).await), Code::InvalidArgument);
        let big = "x".repeat((1 << 20) + 10);
        assert_eq!(code(create(&st, "Note", "", json!({"big": big})).await), Code::LimitExceeded);
        let mut deep = json!({"a": 1});
        for _ in 0..20 {
            deep = json!({"$or": [deep]});
        }
        assert_eq!(code(query(&st, json!({"where": deep})).await), Code::LimitExceeded);
        assert_eq!(code(query(&st, json!({"where": {"text": {"$regex": "(a"}}})).await), Code::InvalidArgument);
        // A pattern that is catastrophic for backtracking engines runs in linear time.
        create(&st, "Note", "n2", json!({"text": format!("{}!", "a".repeat(5000))})).await.expect("create");
        assert!(ids(&st, json!({"where": {"text": {"$regex": "^(a+)+$"}}})).await.is_empty());
        let mut raw = st.create_request();
        raw.get().set_type("Note");
        raw.get().set_data("{not json");
        assert_eq!(code(raw.send().promise.await), Code::InvalidArgument);
        assert_eq!(count(&st, json!({})).await, 2, "the data is intact");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn pages_of_big_documents_are_cut_by_size_and_continue_by_cursor() {
    let dir = data_dir("bigpages");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let st = storage_of(&session.bootstrap, "Shop", "big");
        let blob = "x".repeat(900_000);
        for i in 0..6 {
            create(&st, "Blob", &format!("b{i}"), json!({ "blob": blob })).await.expect("create");
        }
        let (first, cursor) = query(&st, json!({"type": "Blob", "limit": 10})).await.expect("first page");
        assert!(first.len() < 6 && !cursor.is_empty(), "a page stops at its size limit: {} things", first.len());
        let mut all: Vec<String> = first.into_iter().map(|t| t.id).collect();
        let mut cursor = cursor;
        while !cursor.is_empty() {
            let (page, next) = query(&st, json!({"type": "Blob", "limit": 10, "cursor": cursor})).await.expect("page");
            all.extend(page.into_iter().map(|t| t.id));
            cursor = next;
        }
        assert_eq!(all, ["b0", "b1", "b2", "b3", "b4", "b5"]);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn live_objects_are_bounded() {
    let dir = data_dir("bounded");
    let config = rpc_server::ServerConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        tcp_addr: None,
        workers: 1,
        limits: rpc_core::Limits::default(),
    };
    let host = do_runtime::HostConfig { data_dir: dir.clone(), threads: 1, max_live: 1, ..Default::default() };
    let do_runtime::Running { server: s, host_metrics: metrics } =
        do_runtime::Runtime::new(config).host(host).start().expect("server");
    let ws = format!("ws://{}/rpc", s.http_addr);
    rpc_client::run(async {
        let holder = rpc_client::connect(&ws).await.expect("connect");
        // The holder keeps a capability for the object: its session holds the connection.
        let held = storage_of(&holder.bootstrap, "Shop", "first");
        create(&held, "Note", "n", json!({})).await.expect("first object");
        let other = rpc_client::connect(&ws).await.expect("connect");
        let refused = create(&storage_of(&other.bootstrap, "Shop", "second"), "Note", "n", json!({})).await;
        assert_eq!(code(refused), Code::Overloaded, "the one live slot is held by a connected object");
        drop(held);
        holder.close().await.expect("close");
        other.close().await.expect("close");
        // Once its connection is closed on the object thread, the first object has none:
        // it makes room for the second.
        within("the connections to close", metrics.wait_until(|m| m.connections.load(Ordering::Relaxed) == 0)).await;
        let session = rpc_client::connect(&ws).await.expect("connect");
        create(&storage_of(&session.bootstrap, "Shop", "second"), "Note", "n", json!({}))
            .await
            .expect("an idle object is evicted to make room");
        assert_eq!(metrics.live.load(Ordering::Relaxed), 1);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}
