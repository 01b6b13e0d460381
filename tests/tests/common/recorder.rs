//! Event handlers that record what they are handed, and helpers around an object's
//! events, for the tests that subscribe over a WebSocket.

use super::within;
use capnp::capability::Rc;
use schema::object_capnp::{events, handler, storage, subscription};
use serde_json::json;
use std::cell::RefCell;

/// The event types a recorder saw.
pub type Seen = std::rc::Rc<RefCell<Vec<String>>>;

thread_local! {
    /// Notified whenever a recorder on this thread (the test's client) records an event.
    pub static RECORDED: std::rc::Rc<tokio::sync::Notify> = std::rc::Rc::default();
}

/// Records the type of every event it is handed.
pub struct Recorder(pub Seen);

impl handler::Server for Recorder {
    async fn handle(self: Rc<Self>, params: handler::HandleParams, _: handler::HandleResults) -> capnp::Result<()> {
        let t = params.get()?.get_event()?.get_type()?.to_string().map_err(|e| capnp::Error::failed(e.to_string()))?;
        self.0.borrow_mut().push(t);
        RECORDED.with(|n| n.notify_waiters());
        Ok(())
    }
}

/// The events and storage of the object `Shop/name`, pipelined.
pub fn object_events(g: &schema::session_capnp::gateway::Client, name: &str) -> (events::Client, storage::Client) {
    let mut req = g.object_request();
    req.get().set_class("Shop");
    req.get().set_name(name);
    let obj = req.send().pipeline.get_object();
    (obj.events_request().send().pipeline.get_events(), obj.storage_request().send().pipeline.get_storage())
}

/// Subscribes `h` to `pattern`.
pub async fn subscribe(ev: &events::Client, pattern: &str, h: handler::Client) -> subscription::Client {
    let mut req = ev.subscribe_request();
    req.get().set_pattern(pattern);
    req.get().set_handler(h);
    req.send().promise.await.expect("subscribe").get().unwrap().get_subscription().unwrap()
}

/// A new recorder and its capability.
pub fn recorder() -> (Seen, handler::Client) {
    let seen: Seen = Default::default();
    (seen.clone(), capnp_rpc::new_client(Recorder(seen)))
}

/// Sends an event of type `t`.
pub async fn send(ev: &events::Client, t: &str) {
    let mut req = ev.send_request();
    req.get().set_type(t);
    req.get().set_data(json!({"n": 1}).to_string());
    req.send().promise.await.expect("send");
}

/// Waits until `f` holds, checking it after each recorded event.
pub async fn until(what: &str, f: impl Fn() -> bool) {
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
