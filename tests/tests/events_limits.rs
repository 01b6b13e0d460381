//! The events module's bounds: a handler that is a subscription itself (its release
//! re-enters `unsubscribe`), subscribers per object, queue bytes per subscriber and the
//! delivery deadline.

mod common;

use capnp::capability::Rc;
use common::*;
use do_modules::events::SubscriberLimits;
use rpc_core::Code;
use rpc_server::ServerHandle;
use schema::object_capnp::{events, handler, subscription};
use serde_json::json;
use std::cell::RefCell;
use std::time::Duration;

/// A server whose objects live under `dir`, their subscribers bounded by `limits`.
fn server_with(dir: &std::path::Path, limits: SubscriberLimits) -> ServerHandle {
    let config = rpc_server::ServerConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        tcp_addr: Some("127.0.0.1:0".parse().expect("addr")),
        workers: 2,
        ..Default::default()
    };
    let host = do_runtime::HostConfig {
        data_dir: dir.to_path_buf(),
        threads: 1,
        event_subscribers: limits,
        ..Default::default()
    };
    do_runtime::Runtime::new(config).host(host).start().expect("server starts").server
}

fn object_events(g: &schema::session_capnp::gateway::Client, name: &str) -> events::Client {
    let mut req = g.object_request();
    req.get().set_class("Shop");
    req.get().set_name(name);
    req.send().pipeline.get_object().events_request().send().pipeline.get_events()
}

async fn subscribe(
    ev: &events::Client,
    pattern: &str,
    h: handler::Client,
) -> Result<subscription::Client, rpc_core::RpcError> {
    let mut req = ev.subscribe_request();
    req.get().set_pattern(pattern);
    req.get().set_handler(h);
    Ok(req.send().promise.await?.get()?.get_subscription()?)
}

/// Answers every event.
struct Quiet;

impl handler::Server for Quiet {
    async fn handle(self: Rc<Self>, _: handler::HandleParams, _: handler::HandleResults) -> capnp::Result<()> {
        Ok(())
    }
}

#[test]
fn a_handler_that_is_a_subscription_can_be_released_by_unsubscribe() {
    let dir = data_dir("reentry");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let ev = object_events(&session.bootstrap, "r1");
        let first = subscribe(&ev, "*", capnp_rpc::new_client(Quiet)).await.expect("subscribe");
        // The second subscription's handler is the first subscription's capability.
        let second = subscribe(&ev, "*", handler::Client { client: first.client.clone() }).await.expect("subscribe");
        drop(first);
        // Cancelling the second releases its handler, the last reference to the first,
        // whose release unsubscribes the first: inside the hub's own unsubscribe.
        second.cancel_request().send().promise.await.expect("cancel");
        let mut send = ev.send_request();
        send.get().set_type("A.b");
        send.get().set_data("{}");
        send.send().promise.await.expect("the object still answers");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_object_takes_a_bounded_number_of_subscribers() {
    let dir = data_dir("sub-cap");
    let s = server_with(&dir, SubscriberLimits { max_subscribers: 3, ..Default::default() });
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let ev = object_events(&session.bootstrap, "cap");
        let mut subs = Vec::new();
        for _ in 0..3 {
            subs.push(subscribe(&ev, "*", capnp_rpc::new_client(Quiet)).await.expect("subscribe"));
        }
        let over = subscribe(&ev, "*", capnp_rpc::new_client(Quiet)).await;
        assert_eq!(code(over), Code::LimitExceeded, "the fourth subscriber");
        // Another object has its own subscribers.
        let other = object_events(&session.bootstrap, "cap2");
        let _elsewhere = subscribe(&other, "*", capnp_rpc::new_client(Quiet)).await.expect("another object");
        subs.remove(0).cancel_request().send().promise.await.expect("cancel");
        subs.push(subscribe(&ev, "*", capnp_rpc::new_client(Quiet)).await.expect("room after a cancel"));
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

type Seen = std::rc::Rc<RefCell<Vec<u64>>>;

/// Records the `i` of every event; holds its first call until `gate` is notified.
struct Gated {
    seen: Seen,
    gate: std::rc::Rc<tokio::sync::Semaphore>,
}

impl handler::Server for Gated {
    async fn handle(self: Rc<Self>, params: handler::HandleParams, _: handler::HandleResults) -> capnp::Result<()> {
        let data =
            params.get()?.get_event()?.get_data()?.to_string().map_err(|e| capnp::Error::failed(e.to_string()))?;
        let i = serde_json::from_str::<serde_json::Value>(&data).ok().and_then(|v| v["i"].as_u64()).unwrap_or(u64::MAX);
        let _pass = self.gate.acquire().await;
        self.seen.borrow_mut().push(i);
        Ok(())
    }
}

async fn send_padded(ev: &events::Client, i: u64, pad: usize) {
    let mut req = ev.send_request();
    req.get().set_type("Load.tick");
    req.get().set_data(json!({ "i": i, "pad": "x".repeat(pad) }).to_string());
    req.send().promise.await.expect("send is never blocked");
}

#[test]
fn a_stuck_queue_is_bounded_by_bytes_and_keeps_the_newest_events() {
    let dir = data_dir("queue-bytes");
    // A count bound that never binds here: only bytes can drop events.
    let limits = SubscriberLimits { delivery_timeout: Duration::from_secs(120), ..Default::default() };
    assert_eq!(limits.queue_bytes, 1 << 20, "the default budget");
    let s = server_with(&dir, limits);
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let ev = object_events(&session.bootstrap, "bytes");
        let seen = Seen::default();
        let gate = std::rc::Rc::new(tokio::sync::Semaphore::new(0));
        let h = capnp_rpc::new_client(Gated { seen: seen.clone(), gate: gate.clone() });
        let sub = subscribe(&ev, "*", h).await.expect("subscribe");
        // Ten events of 200 KB while the handler holds the first one it gets: at most
        // five (1 MiB) wait, so four or five are dropped, the oldest.
        for i in 0..10 {
            send_padded(&ev, i, 200_000).await;
        }
        let dropped = sub.dropped_request().send().promise.await.expect("dropped").get().unwrap().get_count();
        assert!((4..=5).contains(&dropped), "dropped {dropped} of 10 events of 200 KB");
        gate.add_permits(1000);
        within("the newest event", async {
            while !seen.borrow().contains(&9) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        let seen = seen.borrow().clone();
        assert_eq!(seen.len() as u64 + dropped, 10, "every event delivered or counted as dropped: {seen:?}");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order: {seen:?}");
        assert_eq!(seen[seen.len() - 5..], [5, 6, 7, 8, 9], "the newest five were kept: {seen:?}");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

/// Never answers its first call; records the `i` of every later one.
struct StallsOnce {
    seen: Seen,
    calls: std::cell::Cell<u32>,
}

impl handler::Server for StallsOnce {
    async fn handle(self: Rc<Self>, params: handler::HandleParams, _: handler::HandleResults) -> capnp::Result<()> {
        self.calls.set(self.calls.get() + 1);
        if self.calls.get() == 1 {
            futures::future::pending::<()>().await;
        }
        let data =
            params.get()?.get_event()?.get_data()?.to_string().map_err(|e| capnp::Error::failed(e.to_string()))?;
        let i = serde_json::from_str::<serde_json::Value>(&data).ok().and_then(|v| v["i"].as_u64()).unwrap_or(u64::MAX);
        self.seen.borrow_mut().push(i);
        Ok(())
    }
}

#[test]
fn a_delivery_not_answered_in_time_fails_and_the_next_one_goes_out() {
    let dir = data_dir("deadline");
    let limits = SubscriberLimits { delivery_timeout: Duration::from_millis(200), ..Default::default() };
    let s = server_with(&dir, limits);
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let ev = object_events(&session.bootstrap, "deadline");
        let seen = Seen::default();
        let h = capnp_rpc::new_client(StallsOnce { seen: seen.clone(), calls: 0.into() });
        let sub = subscribe(&ev, "*", h).await.expect("subscribe");
        for i in 0..3 {
            send_padded(&ev, i, 0).await;
        }
        // Without a deadline the first call would hold the queue forever.
        within("the events after the stalled one", async {
            while seen.borrow().len() < 2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert_eq!(*seen.borrow(), [1, 2]);
        let r = sub.dropped_request().send().promise.await.expect("one timeout does not end the subscription");
        assert_eq!(r.get().unwrap().get_count(), 0);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

/// Never answers; counts its calls.
struct Stuck(std::rc::Rc<std::cell::Cell<u32>>);

impl handler::Server for Stuck {
    async fn handle(self: Rc<Self>, _: handler::HandleParams, _: handler::HandleResults) -> capnp::Result<()> {
        self.0.set(self.0.get() + 1);
        futures::future::pending::<()>().await;
        Ok(())
    }
}

#[test]
fn a_handler_stuck_again_and_again_is_unsubscribed() {
    let dir = data_dir("stuck-out");
    let limits = SubscriberLimits {
        max_subscribers: 1,
        delivery_timeout: Duration::from_millis(100),
        max_timeouts: 2,
        ..Default::default()
    };
    let s = server_with(&dir, limits);
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let ev = object_events(&session.bootstrap, "stuck");
        let calls = std::rc::Rc::new(std::cell::Cell::new(0));
        let sub = subscribe(&ev, "*", capnp_rpc::new_client(Stuck(calls.clone()))).await.expect("subscribe");
        let full = subscribe(&ev, "*", capnp_rpc::new_client(Quiet)).await;
        assert_eq!(code(full), Code::LimitExceeded, "the one place is taken");
        for i in 0..5 {
            send_padded(&ev, i, 0).await;
        }
        let ended = within("the stuck subscription to end", async {
            loop {
                match sub.dropped_request().send().promise.await {
                    Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Err(e) => return rpc_core::RpcError::from(e),
                }
            }
        })
        .await;
        assert_eq!(ended.code, Code::Timeout, "{}", ended.message);
        assert_eq!(calls.get(), 2, "two deliveries timed out, then no more were tried");
        let _next = subscribe(&ev, "*", capnp_rpc::new_client(Quiet)).await.expect("its place is free again");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_replay_of_large_events_pages_by_bytes() {
    let dir = data_dir("list-bytes");
    let s = server_with(&dir, SubscriberLimits::default());
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let ev = object_events(&session.bootstrap, "replay");
        for i in 0..6 {
            send_padded(&ev, i, 900_000).await;
        }
        let (mut since, mut seen, mut replies) = (0, Vec::new(), 0);
        loop {
            let mut req = ev.list_request();
            req.get().set_since(since);
            req.get().set_limit(1000);
            let r = req.send().promise.await.expect("list");
            let r = r.get().unwrap();
            let events = r.get_events().unwrap();
            if events.is_empty() {
                break;
            }
            let bytes: usize = events.iter().map(|e| e.get_data().unwrap().len()).sum();
            assert!(bytes <= do_modules::events::MAX_LIST_BYTES, "a reply of {bytes} bytes");
            for e in events {
                let data: serde_json::Value = serde_json::from_str(e.get_data().unwrap().to_str().unwrap()).unwrap();
                seen.push(data["i"].as_u64().expect("i"));
            }
            since = r.get_next();
            replies += 1;
        }
        assert_eq!(seen, [0, 1, 2, 3, 4, 5], "every event once, in order");
        assert_eq!(replies, 2, "four events of 900 KB to a reply");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}
