//! The events module over WebSocket callbacks: every wildcard form, storage writes as
//! events, unsubscribe on drop, cancel and disconnect, slow handlers, replay.

mod common;

use capnp::capability::Rc;
use common::*;
use schema::object_capnp::{events, handler, storage, subscription};
use serde_json::json;
use std::cell::RefCell;
use std::time::Duration;

type Seen = std::rc::Rc<RefCell<Vec<String>>>;

thread_local! {
    /// Notified whenever a recorder on this thread (the test's client) records an event.
    static RECORDED: std::rc::Rc<tokio::sync::Notify> = std::rc::Rc::default();
}

/// Records the type of every event it is handed.
struct Recorder(Seen);

impl handler::Server for Recorder {
    async fn handle(self: Rc<Self>, params: handler::HandleParams, _: handler::HandleResults) -> capnp::Result<()> {
        let t = params.get()?.get_event()?.get_type()?.to_string().map_err(|e| capnp::Error::failed(e.to_string()))?;
        self.0.borrow_mut().push(t);
        RECORDED.with(|n| n.notify_waiters());
        Ok(())
    }
}

/// Never answers.
struct Stuck;

impl handler::Server for Stuck {
    async fn handle(self: Rc<Self>, _: handler::HandleParams, _: handler::HandleResults) -> capnp::Result<()> {
        futures::future::pending::<()>().await;
        Ok(())
    }
}

fn object_events(g: &schema::session_capnp::gateway::Client, name: &str) -> (events::Client, storage::Client) {
    let mut req = g.object_request();
    req.get().set_class("Shop");
    req.get().set_name(name);
    let obj = req.send().pipeline.get_object();
    (obj.events_request().send().pipeline.get_events(), obj.storage_request().send().pipeline.get_storage())
}

async fn subscribe(ev: &events::Client, pattern: &str, h: handler::Client) -> subscription::Client {
    let mut req = ev.subscribe_request();
    req.get().set_pattern(pattern);
    req.get().set_handler(h);
    req.send().promise.await.expect("subscribe").get().unwrap().get_subscription().unwrap()
}

fn recorder() -> (Seen, handler::Client) {
    let seen: Seen = Default::default();
    (seen.clone(), capnp_rpc::new_client(Recorder(seen)))
}

async fn send(ev: &events::Client, t: &str) {
    let mut req = ev.send_request();
    req.get().set_type(t);
    req.get().set_data(json!({"n": 1}).to_string());
    req.send().promise.await.expect("send");
}

/// Waits until `f` holds, checking it after each recorded event.
async fn until(what: &str, f: impl Fn() -> bool) {
    let recorded = RECORDED.with(std::clone::Clone::clone);
    within(what, async {
        loop {
            let mut next = std::pin::pin!(recorded.notified());
            next.as_mut().enable();
            if f() {
                return;
            }
            next.await;
        }
    })
    .await;
}

#[test]
fn subscribers_get_what_their_pattern_matches() {
    let dir = data_dir("events");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let (ev, st) = object_events(&session.bootstrap, "e1");
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
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dropping_cancelling_or_disconnecting_unsubscribes() {
    let dir = data_dir("unsub");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let (ev, _) = object_events(&session.bootstrap, "e2");
        let (dropped_seen, h) = recorder();
        let dropped = subscribe(&ev, "*", h).await;
        let (cancelled_seen, h) = recorder();
        let cancelled = subscribe(&ev, "*", h).await;
        // A second client subscribes, then goes away.
        let other = rpc_client::connect(&ws).await.expect("connect");
        let (other_ev, _) = object_events(&other.bootstrap, "e2");
        let (gone_seen, h) = recorder();
        let _gone = subscribe(&other_ev, "*", h).await;
        send(&ev, "A.one").await;
        until("first event", || {
            dropped_seen.borrow().len() == 1 && cancelled_seen.borrow().len() == 1 && gone_seen.borrow().len() == 1
        })
        .await;

        drop(dropped);
        cancelled.cancel_request().send().promise.await.expect("cancel");
        other.close().await.expect("close the other session");
        // A witness subscribed last sees the next event; the others must not. `send`
        // queues the event for the subscribers it has when it returns, each delivery
        // task starts in subscription order, and every delivery travels the same
        // connections to this client in order: had the dropped or cancelled subscription
        // still been there, its handler would have been called before the witness's
        // (the disconnected one's session is closed: it cannot be called at all).
        let (witness, h) = recorder();
        let _w = subscribe(&ev, "*", h).await;
        send(&ev, "A.two").await;
        until("the witness", || witness.borrow().len() == 1).await;
        assert_eq!(dropped_seen.borrow().len(), 1, "released subscription");
        assert_eq!(cancelled_seen.borrow().len(), 1, "cancelled subscription");
        assert_eq!(gone_seen.borrow().len(), 1, "disconnected subscriber");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_stuck_handler_blocks_neither_the_sender_nor_other_handlers() {
    let dir = data_dir("stuck");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let (ev, _) = object_events(&session.bootstrap, "e3");
        let stuck = subscribe(&ev, "*", capnp_rpc::new_client(Stuck)).await;
        let (seen, h) = recorder();
        let _healthy = subscribe(&ev, "*", h).await;
        let n = do_modules::events::QUEUE_CAPACITY + 100;
        for i in 0..n {
            let mut req = ev.send_request();
            req.get().set_type("Load.tick");
            req.get().set_data(json!({ "i": i }).to_string());
            req.send().promise.await.expect("send is never blocked");
        }
        until("every event at the healthy handler", || seen.borrow().len() == n).await;
        let dropped = stuck.dropped_request().send().promise.await.expect("dropped").get().unwrap().get_count();
        assert!(dropped >= 99, "overflow is reported: {dropped}");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

/// The types of the events in the log, oldest first.
async fn logged(ev: &events::Client) -> Vec<String> {
    let r = ev.list_request().send().promise.await.expect("list");
    r.get().unwrap().get_events().unwrap().iter().map(|e| e.get_type().unwrap().to_string().unwrap()).collect()
}

#[test]
fn a_write_and_its_event_commit_together_or_not_at_all() {
    use do_modules::host::Sql;
    let dir = data_dir("event-tx");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let (ev, st) = object_events(&session.bootstrap, "atomic");
        let create = |id: &str| {
            let mut req = st.create_request();
            req.get().set_type("Item");
            req.get().set_id(id);
            req.get().set_data(r#"{"n": 1}"#);
            req.send().promise
        };
        create("a1").await.expect("create");
        assert_eq!(logged(&ev).await, ["Item.created"]);

        // The object's own file, with a trigger that makes SQLite refuse every event.
        let class_dir = dir.join("default").join("Shop");
        let file = std::fs::read_dir(&class_dir)
            .expect("class dir")
            .flatten()
            .map(|f| f.path())
            .find(|p| p.extension().is_some_and(|e| e == "sqlite"))
            .expect("the object's file");
        let db = do_runtime::host::sqlite::SqliteDb::open(&file).expect("open");
        let refuse = "CREATE TRIGGER refuse_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'no'); END";
        db.execute(refuse, &[]).expect("trigger");

        assert_eq!(code(create("a2").await), rpc_core::Code::Internal, "the event could not be stored");
        let mut get = st.get_request();
        get.get().set_id("a2");
        assert_eq!(code(get.send().promise.await), rpc_core::Code::NotFound, "so the create was rolled back");
        let mut update = st.update_request();
        update.get().set_id("a1");
        update.get().set_patch(r#"{"n": 2}"#);
        assert_eq!(code(update.send().promise.await), rpc_core::Code::Internal);
        let mut get = st.get_request();
        get.get().set_id("a1");
        let r = get.send().promise.await.expect("get");
        assert_eq!(r.get().unwrap().get_thing().unwrap().get_version(), 1, "the update was rolled back");

        db.execute("DROP TRIGGER refuse_events", &[]).expect("drop trigger");
        create("a2").await.expect("create");
        assert_eq!(logged(&ev).await, ["Item.created", "Item.created"], "one event per committed write");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}
