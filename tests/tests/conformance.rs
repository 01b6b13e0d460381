//! What every dotdo host must do, run against the one `DOTDO_TARGET` selects (see
//! `conformance/target.rs`): the native server by default, dotdo's Worker under workerd
//! with `DOTDO_TARGET=workerd` (`.ci/run` runs both). Storage CRUD (conflicts, soft
//! delete and restore, upsert, bulk writes) and every query operator, indexes (plans,
//! unique ones), relationships and traversals (cycles, depth, fan-out), events pushed to
//! a callback capability, a schedule firing and a workflow sleeping on the object's
//! alarm, user classes (one with a table of its own), a pipelined chain in one HTTP
//! request, calls through a capability token (minted, redeemed, refused, revoked), the
//! Cap'n Web client, typed errors for bad input, and state that survives a restart of
//! the host.

mod common;
#[path = "conformance/target.rs"]
mod target;

use capnp::capability::Rc;
use common::recorder::*;
use common::things::*;
use common::*;
use examples::counter_client::Counter;
use rpc_core::Code;
use schema::object_capnp::handler;
use schema::session_capnp::gateway;
use serde_json::{json, Value};
use std::time::Duration;

/// `name`, made unique to this run (a target that keeps its data between runs sees
/// fresh objects).
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{name}-{}-{nanos}", std::process::id())
}

fn counter(g: &rpc_client::api::session::Gateway, name: &str) -> Counter {
    Counter::new(g.object("Counter", name).object().cast())
}

#[test]
fn a_pipelined_chain_is_one_http_request() {
    let host = target::shared();
    let proxy = target::CountingProxy::start(&host.addr);
    let name = unique("acme");
    rpc_client::run(async {
        // gateway.object(..) -> .storage() -> .create(..): three calls, one batch.
        let g: rpc_client::api::session::Gateway =
            rpc_client::bootstrap(&format!("http://{}/rpc", proxy.addr)).await.expect("bootstrap");
        let t = create(&storage_of(&g, "Customer", &name), "Customer", "", json!({"name": "Acme", "age": 30}))
            .await
            .expect("create");
        assert_eq!((t.version, &t.data["name"]), (1, &json!("Acme")));
        assert_eq!(proxy.posts(), 1, "one HTTP request for the chain");
        let session = rpc_client::connect(&host.ws()).await.expect("connect");
        let mut get = storage_of(&session.bootstrap, "Customer", &name).get_request();
        get.get().set_id(&t.id);
        let got = thing(get.send().promise.await.expect("get").get().unwrap().get_thing().unwrap());
        assert_eq!((got.id, got.data), (t.id, t.data));
    });
}

#[test]
fn every_query_operator_filters_as_documented() {
    rpc_client::run(async {
        let session = rpc_client::connect(&target::shared().ws()).await.expect("connect");
        let st = storage_of(&session.bootstrap, "Shop", &unique("q"));
        let people = [
            ("a", json!({"name": "Ann", "age": 31, "tags": ["vip", "eu"], "addr": {"city": "Oslo"}, "active": true})),
            ("b", json!({"name": "Bob", "age": 25, "tags": ["us"], "addr": {"city": "Austin"}, "active": false})),
            ("c", json!({"name": "Cid", "age": 40, "tags": [], "addr": {"city": "Oslo"}, "nick": null})),
            ("d", json!({"name": "Dee", "age": 18, "bio": "likes vip lounges"})),
        ];
        for (id, data) in &people {
            create(&st, "Person", id, data.clone()).await.expect("create");
        }
        create(&st, "Order", "o1", json!({"total": 5})).await.expect("create order");
        let p = |w: Value| json!({"type": "Person", "where": w});
        assert_eq!(ids(&st, p(json!({"name": "Ann"}))).await, ["a"]);
        assert_eq!(ids(&st, p(json!({"age": {"$eq": 25}}))).await, ["b"]);
        assert_eq!(ids(&st, p(json!({"name": {"$ne": "Ann"}}))).await, ["b", "c", "d"]);
        assert_eq!(ids(&st, p(json!({"age": {"$gt": 30}}))).await, ["a", "c"]);
        assert_eq!(ids(&st, p(json!({"age": {"$gte": 31}}))).await, ["a", "c"]);
        assert_eq!(ids(&st, p(json!({"age": {"$lt": 25}}))).await, ["d"]);
        assert_eq!(ids(&st, p(json!({"age": {"$lte": 25}}))).await, ["b", "d"]);
        assert_eq!(ids(&st, p(json!({"name": {"$in": ["Bob", "Dee", "Zed"]}}))).await, ["b", "d"]);
        assert_eq!(ids(&st, p(json!({"name": {"$nin": ["Bob", "Dee"]}}))).await, ["a", "c"]);
        assert_eq!(ids(&st, p(json!({"tags": {"$exists": true}}))).await, ["a", "b", "c"]);
        assert_eq!(ids(&st, p(json!({"nick": {"$exists": true}}))).await, ["c"], "a stored null exists");
        assert_eq!(ids(&st, p(json!({"bio": {"$exists": false}}))).await, ["a", "b", "c"]);
        assert_eq!(ids(&st, p(json!({"tags": {"$contains": "vip"}}))).await, ["a"]);
        assert_eq!(ids(&st, p(json!({"bio": {"$contains": "vip"}}))).await, ["d"]);
        assert_eq!(ids(&st, p(json!({"data.addr.city": "Oslo"}))).await, ["a", "c"]);
        assert_eq!(ids(&st, p(json!({"active": true}))).await, ["a"]);
        assert_eq!(ids(&st, p(json!({"$or": [{"age": {"$lt": 20}}, {"name": "Cid"}]}))).await, ["c", "d"]);
        assert_eq!(ids(&st, p(json!({"$and": [{"addr.city": "Oslo"}, {"age": {"$gt": 35}}]}))).await, ["c"]);
        assert_eq!(ids(&st, p(json!({"$not": {"addr.city": "Oslo"}}))).await, ["b", "d"]);
        assert_eq!(ids(&st, json!({"where": {"id": {"$in": ["o1", "a"]}}})).await, ["a", "o1"]);
        assert_eq!(count(&st, json!({"type": "Person"})).await, 4);
        let (sorted, _) = query(&st, json!({"type": "Person", "sort": ["-age"]})).await.expect("sorted");
        let order: Vec<&str> = sorted.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(order, ["c", "a", "b", "d"]);
        let mut first = st.find_first_request();
        first.get().set_query(json!({"type": "Person", "sort": ["age"]}).to_string());
        let r = first.send().promise.await.expect("findFirst");
        assert!(r.get().unwrap().get_found());
        assert_eq!(thing(r.get().unwrap().get_thing().unwrap()).id, "d");
    });
}

#[test]
fn writes_conflict_delete_restore_and_upsert() {
    rpc_client::run(async {
        let session = rpc_client::connect(&target::shared().ws()).await.expect("connect");
        let st = storage_of(&session.bootstrap, "Shop", &unique("w"));
        let t = create(&st, "Counter", "c1", json!({"n": 1})).await.expect("create");
        assert_eq!(code(create(&st, "Counter", "c1", json!({})).await), Code::Conflict);
        let update = |patch: Value, expected: u64| {
            let mut req = st.update_request();
            req.get().set_id("c1");
            req.get().set_patch(patch.to_string());
            req.get().set_expected_version(expected);
            let p = req.send().promise;
            async move { Ok::<_, rpc_core::RpcError>(thing(p.await?.get()?.get_thing()?)) }
        };
        let t2 = update(json!({"$inc": {"n": 5}, "label": "x"}), t.version).await.expect("update");
        assert_eq!((t2.data["n"].clone(), t2.version), (json!(6), 2));
        assert_eq!(code(update(json!({"n": 0}), 1).await), Code::Conflict, "stale version");
        // Ten increments without versions all land.
        let incs: Vec<_> = (0..10).map(|_| update(json!({"$inc": {"n": 1}}), 0)).collect();
        for r in futures::future::join_all(incs).await {
            r.expect("inc");
        }
        let mut get = st.get_request();
        get.get().set_id("c1");
        assert_eq!(thing(get.send().promise.await.unwrap().get().unwrap().get_thing().unwrap()).data["n"], json!(16));
        let mut del = st.delete_request();
        del.get().set_id("c1");
        del.get().set_soft(true);
        assert!(del.send().promise.await.unwrap().get().unwrap().get_deleted());
        let mut get = st.get_request();
        get.get().set_id("c1");
        assert_eq!(code(get.send().promise.await), Code::NotFound);
        assert_eq!(count(&st, json!({"includeDeleted": true, "where": {"deletedAt": {"$gt": 0}}})).await, 1);
        let mut restore = st.restore_request();
        restore.get().set_id("c1");
        let back = thing(restore.send().promise.await.expect("restore").get().unwrap().get_thing().unwrap());
        assert_eq!((back.deleted_at, back.data["n"].clone()), (0, json!(16)));
        let mut up = st.upsert_request();
        up.get().set_type("Counter");
        up.get().set_id("c2");
        up.get().set_data(json!({"n": 7}).to_string());
        assert!(up.send().promise.await.expect("upsert").get().unwrap().get_created());
        let mut up = st.upsert_request();
        up.get().set_type("Counter");
        up.get().set_id("c2");
        up.get().set_data(json!({"n": 8}).to_string());
        let r = up.send().promise.await.expect("upsert again");
        assert!(!r.get().unwrap().get_created());
        assert_eq!(thing(r.get().unwrap().get_thing().unwrap()).data["n"], json!(8));
        let mut bu = st.bulk_update_request();
        bu.get().set_query(json!({"type": "Counter"}).to_string());
        bu.get().set_patch(json!({"$inc": {"n": 100}}).to_string());
        assert_eq!(bu.send().promise.await.expect("bulk update").get().unwrap().get_count(), 2);
        assert_eq!(count(&st, json!({"where": {"n": {"$gte": 100}}})).await, 2);
        let mut bd = st.bulk_delete_request();
        bd.get().set_query(json!({"type": "Counter"}).to_string());
        assert_eq!(bd.send().promise.await.expect("bulk delete").get().unwrap().get_count(), 2);
        assert_eq!(count(&st, json!({"includeDeleted": true})).await, 0);
    });
}

#[test]
fn indexes_serve_filters_and_sorts_and_unique_ones_refuse_duplicates() {
    rpc_client::run(async {
        let session = rpc_client::connect(&target::shared().ws()).await.expect("connect");
        let st = storage_of(&session.bootstrap, "Shop", &unique("ix"));
        for i in 0..120 {
            let data =
                json!({"age": i % 40, "email": format!("p{i}@x"), "city": if i % 2 == 0 { "Oslo" } else { "Rome" }});
            create(&st, "Person", &format!("p{i:03}"), data).await.expect("create");
        }
        let q = json!({"type": "Person", "where": {"age": {"$gte": 10, "$lt": 12}}, "sort": ["-age"], "limit": 4});
        let before = ordered_ids(&st, q.clone()).await;
        assert!(!explain(&st, &q).await.contains("dotdo_ix_"), "no index yet");
        let (spec, created) = index(&st, json!("age")).await.expect("index");
        assert_eq!((spec, created), (json!({"name": "age", "fields": ["age"], "unique": false}), true));
        assert!(!index(&st, json!("age")).await.expect("the same again").1, "the same spec is a no-op");
        let plan = explain(&st, &q).await;
        assert!(plan.contains("USING INDEX dotdo_ix_age"), "{plan}");
        assert_eq!(ordered_ids(&st, q.clone()).await, before, "the index changes the plan, not the answer");
        assert_eq!(before, ["p011", "p051", "p091", "p010"]);
        // A compound index serves an equality and a sort on the next field.
        index(&st, json!({"name": "cityAge", "fields": ["city", "-age"]})).await.expect("compound");
        let q2 = json!({"type": "Person", "where": {"city": "Rome"}, "sort": ["-age"], "limit": 3});
        assert!(explain(&st, &q2).await.contains("dotdo_ix_cityAge"));
        assert_eq!(ordered_ids(&st, q2).await, ["p039", "p079", "p119"]);
        // Another spec under a name in use, and bad specs.
        let e = index(&st, json!({"name": "age", "fields": ["city"]})).await;
        assert_eq!(code(e), Code::Conflict);
        let e = index(&st, json!({"name": "AGE", "fields": ["city"]})).await;
        assert_eq!(code(e), Code::Conflict, "index names ignore case, as SQLite's do");
        for bad in [json!("a'b"), json!({"fields": []}), json!({"fields": ["a"], "name": "x y"}), json!(7)] {
            assert_eq!(code(index(&st, bad.clone()).await), Code::InvalidArgument, "{bad}");
        }
        // A unique index: refused over values live things share, then enforced.
        let dup = json!({"name": "byCity", "fields": ["city"], "unique": true});
        assert_eq!(code(index(&st, dup).await), Code::Conflict);
        index(&st, json!({"name": "byEmail", "fields": ["email"], "unique": true})).await.expect("unique");
        assert_eq!(index_names(&st).await, ["age", "byEmail", "cityAge"]);
        let e = create(&st, "Person", "dup", json!({"email": "p7@x"})).await.expect_err("a taken email");
        assert_eq!(e.code, Code::Conflict);
        assert!(e.message.contains("byEmail"), "{}", e.message);
        let mut up = st.update_request();
        up.get().set_id("p008");
        up.get().set_patch(json!({"email": "p9@x"}).to_string());
        assert_eq!(code(up.send().promise.await), Code::Conflict);
        assert_eq!(count(&st, json!({"type": "Person"})).await, 120, "nothing was written");
        assert_eq!(ids(&st, json!({"where": {"email": "p8@x"}})).await, ["p008"]);
        // A soft-deleted thing's value may be taken again; restoring it is then CONFLICT.
        let mut del = st.delete_request();
        del.get().set_id("p005");
        del.get().set_soft(true);
        del.send().promise.await.expect("soft delete");
        create(&st, "Person", "new5", json!({"email": "p5@x"})).await.expect("the value is free");
        let mut restore = st.restore_request();
        restore.get().set_id("p005");
        assert_eq!(code(restore.send().promise.await), Code::Conflict);
        // Dropped, the plan scans again.
        assert!(drop_index(&st, "age").await);
        assert!(!drop_index(&st, "age").await);
        assert!(!explain(&st, &q).await.contains("dotdo_ix_age"));
        assert_eq!(ordered_ids(&st, q).await, before);
    });
}

#[test]
fn relationships_relate_page_traverse_and_emit_events() {
    rpc_client::run(async {
        let session = rpc_client::connect(&target::shared().ws()).await.expect("connect");
        let (ev, st) = object_events(&session.bootstrap, &unique("graph"));
        let (seen, h) = recorder();
        let _sub = subscribe(&ev, "Customer.*", h).await;
        for (id, price) in [("p1", 5), ("p2", 20), ("p3", 30)] {
            create(&st, "Product", id, json!({ "price": price })).await.expect("product");
        }
        for id in ["c1", "c2", "c3"] {
            create(&st, "Customer", id, json!({})).await.expect("customer");
        }
        // Any form of the verb; kept (and emitted) in the past form.
        assert_eq!(
            relate(&st, "c1", "purchase", "p1", json!({"qty": 2})).await.expect("relate"),
            ("purchased".into(), true)
        );
        assert!(!relate(&st, "c1", "purchased", "p1", json!({"qty": 3})).await.expect("again").1);
        relate(&st, "c1", "purchases", "p2", json!({})).await.expect("relate");
        relate(&st, "c2", "purchase", "p1", json!({})).await.expect("relate");
        relate(&st, "c3", "purchase", "p3", json!({})).await.expect("relate");
        assert_eq!(code(relate(&st, "c1", "purchase", "nope", json!({})).await), Code::NotFound);
        assert_eq!(code(relate(&st, "c1", "buy it", "p1", json!({})).await), Code::InvalidArgument);
        assert_eq!(
            code(relate(&st, "c1", "create", "p1", json!({})).await),
            Code::InvalidArgument,
            "Customer.created is taken"
        );
        assert_eq!(code(relate(&st, "c1", "like", "p1", json!([1])).await), Code::InvalidArgument);

        // One hop, each way, filtered, paged.
        let (out, _) = related(&st, json!({"id": "c1", "verb": "purchase"})).await.expect("related");
        assert_eq!(out, [("p1".to_string(), json!({"qty": 3})), ("p2".to_string(), json!({}))]);
        assert_eq!(related_ids(&st, json!({"id": "p1", "direction": "in"})).await, ["c1", "c2"]);
        assert_eq!(related_ids(&st, json!({"id": "c1", "where": {"price": {"$gt": 10}}})).await, ["p2"]);
        let (page, cursor) = related(&st, json!({"id": "p1", "direction": "both", "limit": 1})).await.expect("page");
        assert_eq!((page.len(), cursor.is_empty()), (1, false));
        let (rest, end) =
            related(&st, json!({"id": "p1", "direction": "both", "limit": 1, "cursor": cursor})).await.expect("next");
        assert_eq!((page[0].0.as_str(), rest[0].0.as_str(), end.is_empty()), ("c1", "c2", true));
        assert_eq!(code(related(&st, json!({"id": "c1", "direction": "up"})).await), Code::InvalidArgument);
        assert_eq!(code(related(&st, json!({"id": "zz"})).await), Code::NotFound);

        // Two steps: who bought what c1 bought.
        let steps = json!([{"verb": "purchase"}, {"verb": "purchase", "direction": "in"}]);
        let found = traverse(&st, json!({"start": "c1", "steps": steps})).await.expect("traverse");
        assert_eq!(found, [("c2".to_string(), 2, vec!["c1".to_string(), "p1".into(), "c2".into()])]);

        // Soft delete hides a Thing's relationships; restore brings them back; a hard
        // delete takes them away.
        let mut del = st.delete_request();
        del.get().set_id("p1");
        del.get().set_soft(true);
        del.send().promise.await.expect("soft delete");
        assert_eq!(related_ids(&st, json!({"id": "c1"})).await, ["p2"]);
        assert!(traverse(&st, json!({"start": "c1", "steps": steps})).await.expect("traverse").is_empty());
        let mut restore = st.restore_request();
        restore.get().set_id("p1");
        restore.send().promise.await.expect("restore");
        assert_eq!(related_ids(&st, json!({"id": "c1"})).await, ["p1", "p2"]);
        let mut del = st.delete_request();
        del.get().set_id("p2");
        del.send().promise.await.expect("delete");
        create(&st, "Product", "p2", json!({})).await.expect("the id again, a new Thing");
        assert_eq!(related_ids(&st, json!({"id": "c1"})).await, ["p1"], "no relationship outlived its Thing");
        assert!(unrelate(&st, "c1", "purchase", "p1").await);
        assert!(!unrelate(&st, "c1", "purchase", "p1").await);
        assert!(related_ids(&st, json!({"id": "c1"})).await.is_empty());

        let want = [
            "Customer.purchased",
            "Customer.purchased",
            "Customer.purchased",
            "Customer.purchased",
            "Customer.purchased",
        ];
        let mut want: Vec<&str> = want.to_vec();
        want.insert(0, "Customer.created");
        want.insert(0, "Customer.created");
        want.insert(0, "Customer.created");
        want.push("Customer.unrelated");
        until("graph events", || seen.borrow().len() >= want.len()).await;
        assert_eq!(*seen.borrow(), want);
    });
}

#[test]
fn traversals_stop_at_cycles_and_depth_and_refuse_to_fan_out_without_bound() {
    rpc_client::run(async {
        let session = rpc_client::connect(&target::shared().ws()).await.expect("connect");
        let st = storage_of(&session.bootstrap, "Shop", &unique("walk"));
        // a -> b -> c -> a (a cycle), c -> d -> e.
        for id in ["a", "b", "c", "d", "e"] {
            create(&st, "Person", id, json!({ "name": id })).await.expect("person");
        }
        for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e")] {
            relate(&st, from, "follow", to, json!({})).await.expect("follow");
        }
        let walk = |max: u64| json!({"start": "a", "steps": [{"verb": "follows"}], "maxDepth": max});
        let found = traverse(&st, walk(8)).await.expect("traverse");
        let ids: Vec<(&str, u64)> = found.iter().map(|(id, d, _)| (id.as_str(), *d)).collect();
        assert_eq!(ids, [("b", 1), ("c", 2), ("d", 3), ("e", 4)], "the cycle back to a ends there");
        assert_eq!(found[3].2, ["a", "b", "c", "d", "e"]);
        let ids: Vec<String> =
            traverse(&st, walk(2)).await.expect("depth 2").into_iter().map(|(id, _, _)| id).collect();
        assert_eq!(ids, ["b", "c"]);
        let back =
            json!({"start": "e", "steps": [{"verb": "follow", "direction": "in"}], "maxDepth": 8, "minDepth": 3});
        let ids: Vec<String> = traverse(&st, back).await.expect("backwards").into_iter().map(|(id, _, _)| id).collect();
        assert_eq!(ids, ["b", "a"], "against the arrows, from depth 3");
        let filtered =
            json!({"start": "a", "steps": [{"verb": "follow", "where": {"name": {"$ne": "d"}}}], "maxDepth": 8});
        let ids: Vec<String> =
            traverse(&st, filtered).await.expect("filtered").into_iter().map(|(id, _, _)| id).collect();
        assert_eq!(ids, ["b", "c"], "a step's filter stops the walk at d");
        assert_eq!(
            code(traverse(&st, json!({"start": "a", "steps": [{"verb": "x"}], "maxDepth": 9})).await),
            Code::LimitExceeded
        );
        assert_eq!(code(traverse(&st, json!({"start": "a", "steps": []})).await), Code::InvalidArgument);

        // 25 people who all know each other: 3 hops are 24 + 552 + 12,144 paths.
        let people: Vec<String> = (0..25).map(|i| format!("k{i:02}")).collect();
        for id in &people {
            create(&st, "Person", id, json!({})).await.expect("person");
        }
        let mut knows = Vec::new();
        for (i, a) in people.iter().enumerate() {
            for b in &people[i + 1..] {
                knows.push(relate(&st, a, "know", b, json!({})));
            }
        }
        for r in futures::future::join_all(knows).await {
            r.expect("know");
        }
        let two = json!({"start": "k00", "steps": [{"verb": "know", "direction": "both"}], "maxDepth": 2});
        assert_eq!(traverse(&st, two).await.expect("two hops").len(), 24, "everyone, once, at depth 1");
        let three = json!({"start": "k00", "steps": [{"verb": "know", "direction": "both"}], "maxDepth": 3});
        let e = traverse(&st, three).await.expect_err("too many paths");
        assert_eq!(e.code, Code::LimitExceeded);
        assert!(e.message.contains("10000"), "{}", e.message);
    });
}

#[test]
fn regex_filters_run_where_the_host_has_sql_functions() {
    rpc_client::run(async {
        let session = rpc_client::connect(&target::shared().ws()).await.expect("connect");
        let st = storage_of(&session.bootstrap, "Shop", &unique("re"));
        for (id, name) in [("a", "Ann"), ("b", "Bob"), ("c", "Cid")] {
            create(&st, "Person", id, json!({ "name": name })).await.expect("create");
        }
        let q = json!({"type": "Person", "where": {"name": {"$regex": "^[AB]"}}});
        if target::kind() == target::Kind::Workerd {
            // A Durable Object's SQLite cannot register dotdo_regexp: a typed refusal.
            assert_eq!(code(query(&st, q).await), Code::Unsupported);
            assert_eq!(ids(&st, json!({"type": "Person"})).await, ["a", "b", "c"], "and the object goes on");
        } else {
            assert_eq!(ids(&st, q).await, ["a", "b"]);
        }
    });
}

#[test]
fn subscribers_get_what_their_pattern_matches() {
    rpc_client::run(async {
        let session = rpc_client::connect(&target::shared().ws()).await.expect("connect");
        let (ev, st) = object_events(&session.bootstrap, &unique("e1"));
        let mut subs = Vec::new();
        for p in ["Customer.created", "*.created", "Customer.*", "*.*", "*"] {
            let (seen, h) = recorder();
            subs.push((p, seen, subscribe(&ev, p, h).await));
        }
        let mut create = st.create_request();
        create.get().set_type("Customer");
        create.get().set_id("c1");
        create.get().set_data(json!({"name": "Ann"}).to_string());
        create.send().promise.await.expect("create");
        let mut update = st.update_request();
        update.get().set_id("c1");
        update.get().set_patch(json!({"name": "Bea"}).to_string());
        update.send().promise.await.expect("update");
        let mut order = st.create_request();
        order.get().set_type("Order");
        order.get().set_data("{}");
        order.send().promise.await.expect("create order");
        send(&ev, "Invoice.paid").await;
        let expected: [&[&str]; 5] = [
            &["Customer.created"],
            &["Customer.created", "Order.created"],
            &["Customer.created", "Customer.updated"],
            &["Customer.created", "Customer.updated", "Order.created", "Invoice.paid"],
            &["Customer.created", "Customer.updated", "Order.created", "Invoice.paid"],
        ];
        for ((p, seen, _), want) in subs.iter().zip(expected) {
            until(p, || seen.borrow().len() >= want.len()).await;
            assert_eq!(*seen.borrow(), want, "pattern {p}");
        }
        // Replay from the log, in order, filtered.
        let mut list = ev.list_request();
        list.get().set_pattern("Customer.*");
        let r = list.send().promise.await.expect("list");
        let types: Vec<String> =
            r.get().unwrap().get_events().unwrap().iter().map(|e| e.get_type().unwrap().to_string().unwrap()).collect();
        assert_eq!(types, ["Customer.created", "Customer.updated"]);
        let next = r.get().unwrap().get_next();
        let mut after = ev.list_request();
        after.get().set_since(next);
        assert_eq!(after.send().promise.await.expect("list").get().unwrap().get_events().unwrap().len(), 2);
        let mut bad = ev.subscribe_request();
        bad.get().set_pattern("Customer");
        bad.get().set_handler(recorder().1);
        assert_eq!(code(bad.send().promise.await), rpc_core::Code::InvalidArgument);
    });
}

/// Sends the type of every event it is handed.
struct Signal(tokio::sync::mpsc::UnboundedSender<String>);

impl handler::Server for Signal {
    async fn handle(self: Rc<Self>, p: handler::HandleParams, _: handler::HandleResults) -> capnp::Result<()> {
        let t = p.get()?.get_event()?.get_type()?.to_string().map_err(|e| capnp::Error::failed(e.to_string()))?;
        let _ = self.0.send(t);
        Ok(())
    }
}

#[test]
fn a_schedule_fires_its_handler_on_the_object_alarm() {
    rpc_client::run(async {
        let session = rpc_client::connect(&target::shared().ws()).await.expect("connect");
        let obj = session.bootstrap.object("Clock", &unique("tick"));
        let sch = obj.raw().schedule_request().send().pipeline.get_schedule();
        let (tx, mut calls) = tokio::sync::mpsc::unbounded_channel();
        let mut req = sch.schedule_request();
        req.get().set_spec("every 1 second");
        req.get().set_action("Tick.fired");
        req.get().set_data(r#"{"from": "conformance"}"#);
        req.get().set_handler(capnp_rpc::new_client(Signal(tx)));
        let entry = req.send().promise.await.expect("schedule");
        let id = entry.get().unwrap().get_entry().unwrap().get_id().unwrap().to_string().unwrap();
        // Real time here: two runs, a second apart, from the object's alarm.
        for run in 1..=2 {
            let t = within("the schedule's handler", calls.recv()).await.expect("the handler is called");
            assert_eq!(t, "Tick.fired", "run {run}");
        }
        let mut cancel = sch.cancel_request();
        cancel.get().set_id(&id);
        assert!(cancel.send().promise.await.expect("cancel").get().unwrap().get_cancelled());
    });
}

#[test]
fn a_workflow_sleeps_until_the_object_alarm_wakes_it() {
    let host = target::shared();
    let name = unique("later");
    rpc_client::run(async {
        let session = rpc_client::connect(&host.ws()).await.expect("connect");
        let obj = session.bootstrap.object("Counter", &name);
        let started = std::time::Instant::now();
        // start(..) and result() pipelined: the run suspends on its sleep, the alarm
        // wakes it, and the result arrives when it completes.
        let run = obj.workflow().start("addLater", r#"{"by": 3, "ms": 1000}"#, "r1").run();
        let out = within("the run", run.result()).await.expect("completed").result;
        assert_eq!(serde_json::from_str::<Value>(&out).expect("JSON"), json!({"value": 3}));
        assert!(started.elapsed() >= Duration::from_millis(900), "the sleep ended early: {:?}", started.elapsed());
        let steps = run.history().await.expect("history").steps;
        let names: Vec<(&str, &str)> = steps.iter().map(|s| (s.name.as_str(), s.kind.as_str())).collect();
        assert_eq!(names, [("pause", "sleep"), ("add", "step")]);
        assert_eq!(counter(&session.bootstrap, &name).get().await.expect("get").value, 3);
    });
}

#[test]
fn a_user_class_answers_its_methods_and_the_base_object_ones() {
    let host = target::shared();
    let name = unique("c");
    rpc_client::run(async {
        let session = rpc_client::connect(&host.ws()).await.expect("connect");
        let c = counter(&session.bootstrap, &name);
        assert_eq!(c.increment(2).await.expect("increment").value, 2);
        assert_eq!(c.increment(3).await.expect("increment").value, 5);
        let info = c.as_object().info().await.expect("info");
        assert_eq!((info.class.as_str(), info.name.as_str()), ("Counter", name.as_str()));
        let thing = c.as_object().storage().create("Note", r#"{"n": 1}"#, "").await.expect("create").thing;
        assert_eq!(thing.r#type, "Note");
        assert_eq!(code(c.increment(i64::MAX).await), Code::InvalidArgument, "overflow is refused");
        // The same object over an HTTP batch.
        let batch = rpc_client::batch(&host.http()).await.expect("batch");
        assert_eq!(counter(&batch.bootstrap, &name).get().await.expect("get").value, 5);
    });
}

/// Mints a token for `target` through the admin broker.
async fn mint(g: &gateway::Client, target: &str, methods: &[&str], scope: &str) -> String {
    let mut req = broker_of(g, target::ADMIN_KEY).mint_request();
    let mut r = req.get().init_request();
    r.set_target(target);
    r.set_scope(scope);
    r.set_ttl_ms(60_000);
    let mut m = r.init_methods(methods.len() as u32);
    for (i, x) in methods.iter().enumerate() {
        m.set(i as u32, *x);
    }
    req.send().promise.await.expect("mint").get().unwrap().get_token().unwrap().to_string().unwrap()
}

/// Revokes `token` (its id read with `verify`) through the admin broker.
async fn revoke(g: &gateway::Client, token: &str) {
    let mut verify = broker_of(g, "").verify_request();
    verify.get().set_token(token);
    let claims = verify.send().promise.await.expect("verify");
    let id = claims.get().unwrap().get_claims().unwrap().get_token_id().unwrap().to_string().unwrap();
    let mut revoke = broker_of(g, target::ADMIN_KEY).revoke_request();
    revoke.get().set_token_id(&id);
    revoke.send().promise.await.expect("revoke");
}

/// The object a token opens, redeemed through a broker without admin rights.
fn redeem(g: &gateway::Client, token: &str) -> Counter {
    let mut req = broker_of(g, "").redeem_request();
    req.get().set_token(token);
    Counter::new(capnp::capability::FromClientHook::cast_to(req.send().pipeline.get_object()))
}

#[test]
fn a_token_scoped_call_goes_through_the_broker_membrane() {
    let host = target::shared();
    let name = unique("tok");
    rpc_client::run(async {
        let session = rpc_client::connect(&host.ws()).await.expect("connect");
        let g = &session.bootstrap;
        assert_eq!(counter(g, &name).increment(5).await.expect("increment").value, 5);
        let token = mint(g, &format!("Counter/{name}"), &["counter.get"], "read").await;
        let c = redeem(g, &token);
        assert_eq!(c.get().await.expect("a get the token allows").value, 5);
        assert_eq!(code(c.increment(1).await), Code::Forbidden, "a method the token does not list");
        // Redeem and call in one HTTP request.
        let batch = rpc_client::batch(&host.http()).await.expect("batch");
        assert_eq!(redeem(&batch.bootstrap, &token).get().await.expect("get in a batch").value, 5);
        // A forged signature, and a broker without admin rights minting.
        let forged = format!("{}{}", &token[..token.len() - 2], if token.ends_with("AA") { "BB" } else { "AA" });
        assert_eq!(code(redeem(g, &forged).get().await), Code::InvalidSignature);
        let mut not_admin = broker_of(g, "").mint_request();
        not_admin.get().init_request().set_target("Counter/x");
        assert_eq!(code(not_admin.send().promise.await), Code::Forbidden);
        // Revoked: the capability already redeemed is cut off.
        revoke(g, &token).await;
        assert_eq!(code(c.get().await), Code::Revoked);
        assert_eq!(counter(g, &name).get().await.expect("the object itself is untouched").value, 5);
    });
}

#[test]
fn a_class_keeps_its_own_table_and_cannot_reach_the_framework_s() {
    let host = target::shared();
    let name = unique("ledger");
    rpc_client::run(async {
        let session = rpc_client::connect(&host.ws()).await.expect("connect");
        let g = &session.bootstrap;
        let ledger = Counter::new(g.object("Ledger", &name).object().cast());
        // Its migration made its table; each increment is a row of it.
        assert_eq!(ledger.increment(4).await.expect("increment").value, 4);
        assert_eq!(ledger.increment(-1).await.expect("increment").value, 3);
        let note = ledger.as_object().storage().create("Note", r#"{"kept": true}"#, "").await.expect("create");
        // Its declared index: one account per Thing.
        let st = storage_of(g, "Ledger", &name);
        assert_eq!(index_names(&st).await, ["byAccount"]);
        create(&st, "Account", "a1", json!({"account": "FR76"})).await.expect("an account");
        assert_eq!(code(create(&st, "Account", "a2", json!({"account": "FR76"})).await), Code::Conflict);
        // tick tries to empty the framework's things table.
        assert_eq!(code(ledger.tick().await), Code::Forbidden);
        let mut get = storage_of(g, "Ledger", &name).get_request();
        get.get().set_id(&note.thing.id);
        assert!(get.send().promise.await.expect("the Thing is still there").get().unwrap().has_thing());
        assert_eq!(ledger.get().await.expect("get").value, 3);
        ledger.reset().await.expect("reset");
        assert_eq!(ledger.get().await.expect("get").value, 0);
    });
}

#[test]
fn bad_input_gets_typed_errors_and_the_host_goes_on() {
    let host = target::shared();
    rpc_client::run(async {
        let session = rpc_client::connect(&host.ws()).await.expect("connect");
        let g = &session.bootstrap;
        for (class, name) in [("no such class", "x"), ("Thing", ""), ("Thing", "a/b")] {
            let r = g.object(class, name).object().info().await;
            assert_eq!(code(r), Code::InvalidArgument, "object({class:?}, {name:?})");
        }
        // A name any UTF-8 (but '/', '..' and control characters) is an object too.
        let odd = format!("Ünïcode name ✓ {}", unique(""));
        let info = g.object("Thing", &odd).object().info().await.expect("an odd name");
        assert_eq!(info.name, odd);
        // A method the class does not have.
        let c = counter(g, &unique("c"));
        let unknown = c.raw().client.new_call::<capnp::any_pointer::Owned, capnp::any_pointer::Owned>(
            <examples::counter_capnp::counter::Client as capnp::traits::HasTypeId>::TYPE_ID,
            99,
            None,
        );
        assert_eq!(code(unknown.send().promise.await), Code::Unimplemented);
        assert_eq!(c.get().await.expect("the object still answers").value, 0);
    });
    let (status, body) = rpc_client::run(http_to(&host.addr, "POST", "/rpc", "application/x-capnp", b"not capnp"));
    assert_eq!((status, json_code(&body)), (400, Code::InvalidArgument), "{body}");
    let (status, body) = rpc_client::run(http_to(&host.addr, "POST", "/rpc", "text/plain", b"{}"));
    assert_eq!((status, json_code(&body)), (400, Code::InvalidArgument), "{body}");
    let (status, _) = rpc_client::run(http_to(&host.addr, "POST", "/nowhere", "text/plain", b""));
    assert_eq!(status, 404);
}

/// The tests of `js/test/gateway.test.mjs` (the official `capnweb` client over
/// `/capnweb`, both transports) that need no more than the built-in class, `Counter`
/// and the demo directory.
const CAPNWEB_TESTS: &[&str] = &[
    "creates, gets, updates",
    "answers several fields as an object",
    "runs a 3-call dependent chain in one HTTP request",
    "needs one request per call when each result is awaited first",
    "pipelines through returned capabilities",
    "calls a JS RpcTarget back",
    "delivers events sent by another session to a JS Handler",
    "maps a query's things to their ids",
    "builds objects and calls a captured stub per element",
    "maps inside one HTTP batch",
    "Counter: increment, get, reset, tick, info",
    "wrong argument types and counts are INVALID_ARGUMENT",
    "an unknown method is UNIMPLEMENTED",
    "an unknown export id is NOT_FOUND",
    "bad JSON aborts the session",
    "an HTTP batch with a malformed line",
    "an HTTP batch with an unknown method rejects that call only",
    "an HTTP batch over max_batch_messages",
    "GET /capnweb without an upgrade",
];

#[test]
fn the_capnweb_client_calls_objects_over_both_transports() {
    if !common::node::node_ready("the Cap'n Web client's tests") {
        return;
    }
    let host = target::shared();
    let patterns: Vec<String> = CAPNWEB_TESTS.iter().map(|t| format!("--test-name-pattern={t}")).collect();
    let args: Vec<&str> = patterns.iter().map(String::as_str).collect();
    let out = common::node::run_node_test_at("gateway.test.mjs", &format!("http://{}", host.addr), &args, &[]);
    let passed = out.lines().find_map(|l| l.trim_start().strip_prefix("# pass ")).unwrap_or("0");
    assert_eq!(passed.trim(), CAPNWEB_TESTS.len().to_string(), "every selected test ran and passed:\n{out}");
}

#[test]
fn a_host_requiring_tokens_opens_objects_only_through_them() {
    let dir = target::fresh_dir("tokens-only");
    let Some(host) = target::own_requiring_tokens(&dir) else {
        eprintln!("a remote target is not started from here: skipped");
        return;
    };
    let name = unique("guarded");
    rpc_client::run(async {
        let session = rpc_client::connect(&host.ws()).await.expect("connect");
        let g = &session.bootstrap;
        assert_eq!(code(counter(g, &name).get().await), Code::Unauthorized, "gateway.object is refused");
        let token = mint(g, &format!("Counter/{name}"), &["counter.get"], "read").await;
        assert_eq!(redeem(g, &token).get().await.expect("a redeemed token opens it").value, 0);
    });
    host.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn objects_survive_a_restart_of_their_host() {
    let dir = target::fresh_dir("restart");
    let Some(host) = target::own(&dir) else {
        eprintln!("a remote target cannot be restarted from here: skipped");
        return;
    };
    let name = unique("kept");
    let (id, revoked) = rpc_client::run(async {
        let session = rpc_client::connect(&host.ws()).await.expect("connect");
        let c = counter(&session.bootstrap, &name);
        assert_eq!(c.increment(7).await.expect("increment").value, 7);
        // A revoked token stays revoked.
        let token = mint(&session.bootstrap, &format!("Counter/{name}"), &["counter.get"], "read").await;
        revoke(&session.bootstrap, &token).await;
        let id = create(&storage_of(&session.bootstrap, "Customer", &name), "Customer", "", json!({"name": "Kept"}))
            .await
            .expect("create")
            .id;
        (id, token)
    });
    host.stop();
    let host = target::own(&dir).expect("the same target again");
    rpc_client::run(async {
        let session = rpc_client::connect(&host.ws()).await.expect("connect");
        assert_eq!(counter(&session.bootstrap, &name).get().await.expect("get").value, 7);
        let mut get = storage_of(&session.bootstrap, "Customer", &name).get_request();
        get.get().set_id(&id);
        let got = thing(get.send().promise.await.expect("get").get().unwrap().get_thing().unwrap());
        assert_eq!(got.data["name"], "Kept");
        assert_eq!(code(redeem(&session.bootstrap, &revoked).get().await), Code::Revoked);
    });
    host.stop();
    let _ = std::fs::remove_dir_all(dir);
}
