//! The events module over WebSocket callbacks: every wildcard form, storage writes as
//! events, unsubscribe on drop, cancel and disconnect, slow handlers, replay.

mod common;

use capnp::capability::Rc;
use common::recorder::*;
use common::*;
use schema::object_capnp::{events, handler};
use serde_json::json;
use std::time::Duration;

/// Never answers.
struct Stuck;

impl handler::Server for Stuck {
    async fn handle(self: Rc<Self>, _: handler::HandleParams, _: handler::HandleResults) -> capnp::Result<()> {
        futures::future::pending::<()>().await;
        Ok(())
    }
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
