//! Connections from one object to another (`Context::object`): the same in-process
//! Cap'n Proto connection a session gets, one per peer, kept while the calling object
//! is live (at most 64, the least recently used closed first) and closed
//! when it is evicted.

use super::channel::{pair, ChannelFrames};
use super::registry::ObjectKey;
use capnp::capability::Promise;
use capnp_rpc::rpc_twoparty_capnp::Side;
use do_modules::class::Classes;
use do_modules::class::Peers;
use rpc_core::guard::Guard;
use rpc_core::pump::Pump;
use rpc_core::vat::{rpc_system, Link};
use rpc_core::{Code, Limits, RpcError};
use schema::object_capnp::object;
use std::cell::RefCell;
use std::sync::Arc;
use tokio::sync::mpsc::{UnboundedSender, WeakUnboundedSender};

/// A request to an object thread: connect `io` to the object `key`.
pub(crate) struct Open {
    pub(crate) key: ObjectKey,
    pub(crate) io: ChannelFrames,
}

/// Opens a connection to the object `key` through its thread's `sender` and returns its
/// capability and the connection's disconnector. Must run inside a `LocalSet`.
pub(crate) fn open(
    sender: &UnboundedSender<Open>,
    key: ObjectKey,
) -> Result<(object::Client, capnp_rpc::Disconnector<Side>), RpcError> {
    let (mine, theirs) = pair();
    sender
        .send(Open { key, io: theirs })
        .map_err(|_| RpcError::new(Code::Disconnected, "the object host has stopped"))?;
    let link = Link::new();
    let pump = Pump::new(mine, link.clone(), Guard::new(Limits::default()));
    let mut system = rpc_system(Side::Client, link, Promise::from_future(pump), None);
    let client: object::Client = system.bootstrap(Side::Server);
    let disconnector = system.get_disconnector();
    tokio::task::spawn_local(async move {
        let _ = system.await;
    });
    Ok((client, disconnector))
}

/// How one object reaches the others of its namespace on the native host: one
/// connection per peer, opened at the first `object(..)` and kept while the calling
/// object is live (so a call on a capability dropped at once still gets its answer),
/// closed when it is evicted.
pub(crate) struct NativePeers {
    pub(crate) namespace: String,
    /// The object threads' inboxes; weak, so the threads end when the host is dropped.
    pub(crate) senders: Arc<Vec<WeakUnboundedSender<Open>>>,
    pub(crate) classes: Arc<Classes>,
    /// By key, most recently used first.
    pub(crate) open: RefCell<lru::LruCache<ObjectKey, PeerConnection>>,
}

/// A peer's capability and the disconnector of its connection.
pub(crate) type PeerConnection = (object::Client, Option<capnp_rpc::Disconnector<Side>>);

/// Most peers one object keeps connections to; past it, the least recently used is
/// closed.
const MAX_PEERS: usize = 64;

impl Peers for NativePeers {
    fn object(&self, class: &str, name: &str) -> Result<object::Client, RpcError> {
        let key = ObjectKey::new(&self.namespace, class, name)?;
        self.classes.resolve(class)?;
        if let Some((client, _)) = self.open.borrow_mut().get(&key) {
            return Ok(client.clone());
        }
        let thread = ObjectKey::thread_for(&key.id(), self.senders.len());
        let sender = self
            .senders
            .get(thread)
            .and_then(WeakUnboundedSender::upgrade)
            .ok_or_else(|| RpcError::new(Code::Disconnected, "the object host has stopped"))?;
        let (client, disconnector) = open(&sender, key.clone())?;
        let mut open = self.open.borrow_mut();
        if open.len() >= MAX_PEERS {
            if let Some((_, (_, d))) = open.pop_lru() {
                close(d);
            }
        }
        open.put(key, (client.clone(), Some(disconnector)));
        Ok(client)
    }
}

fn close(d: Option<capnp_rpc::Disconnector<Side>>) {
    if let Some(d) = d {
        tokio::task::spawn_local(async move {
            let _ = d.await;
        });
    }
}

impl Drop for NativePeers {
    fn drop(&mut self) {
        while let Some((_, (_, d))) = self.open.get_mut().pop_lru() {
            close(d);
        }
    }
}
