//! The objects one session holds open: at most [`HostConfig::max_objects_per_session`]
//! at once, each connection closed as soon as the session has released every
//! capability it was handed for the object (or when the session ends), so the host can
//! evict it and the session can open others.
//!
//! Every capability handed out for an object holds a [`Lease`] on its connection,
//! through a [`Hold`] layer innermost in its stack: the layered one `gateway.object`
//! returns (one per object while the session holds it, so an object keeps one
//! identity), the ones the broker wraps in membranes, and the modules any of them hands
//! out (their getters wrap modules in the same stack). The last lease dropped closes
//! the connection.
//!
//! [`HostConfig::max_objects_per_session`]: crate::HostConfig::max_objects_per_session

use crate::host::registry::{ObjectHost, ObjectKey};
use capnp::capability::{FromClientHook, Promise, Request};
use capnp::private::capability::{ClientHook, ParamsHook, ResultsHook};
use capnp::{any_pointer, MessageSize};
use capnp_rpc::rpc_twoparty_capnp::Side;
use rpc_broker::broker::Opened;
use rpc_core::layer::{Call, Layer, Service, Stack};
use rpc_core::{Code, RpcError};
use schema::object_capnp::object;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;

type Table = RefCell<HashMap<ObjectKey, Entry>>;

/// One open object of the session.
struct Entry {
    /// The object's capability as the host hands it out.
    plain: object::Client,
    /// The connection, alive while any capability handed out for the object is.
    lease: Weak<Lease>,
    /// What `gateway.object` returned, while the session holds it.
    layered: Weak<Held>,
}

/// A hold on one object connection; the last one dropped closes it.
struct Lease {
    key: ObjectKey,
    table: Weak<Table>,
    disconnector: RefCell<Option<capnp_rpc::Disconnector<Side>>>,
}

impl Lease {
    fn disconnect(&self) {
        if let Some(d) = self.disconnector.borrow_mut().take() {
            tokio::task::spawn_local(async move {
                let _ = d.await;
            });
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(table) = self.table.upgrade() {
            // A table busy right now keeps a dead entry, which is skipped and replaced.
            if let Ok(mut t) = table.try_borrow_mut() {
                if t.get(&self.key).is_some_and(|e| e.lease.strong_count() == 0) {
                    t.remove(&self.key);
                }
            }
        }
        self.disconnect();
    }
}

/// The layer that holds an object's connection open while the capability it wraps lives.
pub(crate) struct Hold(Rc<Lease>);

impl Layer for Hold {
    fn layer(&self, inner: Rc<dyn Service>, _: &Stack) -> Rc<dyn Service> {
        Rc::new(Holding { inner, _lease: self.0.clone() })
    }
}

struct Holding {
    inner: Rc<dyn Service>,
    _lease: Rc<Lease>,
}

impl Service for Holding {
    /// A call in flight holds the connection too: a client may release the capability
    /// right after a pipelined call on it (`gateway.object(..).storage()`), and the
    /// answer must still arrive.
    fn call(&self, call: Call) -> Promise<(), capnp::Error> {
        let lease = self._lease.clone();
        let answer = self.inner.call(call);
        Promise::from_future(async move {
            let result = answer.await;
            drop(lease);
            result
        })
    }

    fn inner(&self) -> Option<&dyn Service> {
        Some(&*self.inner)
    }
}

/// What `gateway.object` handed out: forwards to `hook`. Every reference shares it, and
/// its address is the capability's identity, kept while the session holds it.
struct Held {
    hook: Box<dyn ClientHook>,
}

struct HeldHook(Rc<Held>);

impl HeldHook {
    fn client(held: Rc<Held>) -> object::Client {
        object::Client::new(Box::new(HeldHook(held)))
    }
}

impl ClientHook for HeldHook {
    fn add_ref(&self) -> Box<dyn ClientHook> {
        Box::new(HeldHook(self.0.clone()))
    }

    fn new_call(
        &self,
        interface_id: u64,
        method_id: u16,
        size_hint: Option<MessageSize>,
    ) -> Request<any_pointer::Owned, any_pointer::Owned> {
        self.0.hook.new_call(interface_id, method_id, size_hint)
    }

    fn call(
        &self,
        interface_id: u64,
        method_id: u16,
        params: Box<dyn ParamsHook>,
        results: Box<dyn ResultsHook>,
    ) -> Promise<(), capnp::Error> {
        self.0.hook.call(interface_id, method_id, params, results)
    }

    fn get_brand(&self) -> usize {
        0
    }

    fn get_ptr(&self) -> usize {
        Rc::as_ptr(&self.0) as usize
    }

    fn get_resolved(&self) -> Option<Box<dyn ClientHook>> {
        None
    }

    fn when_more_resolved(&self) -> Option<Promise<Box<dyn ClientHook>, capnp::Error>> {
        None
    }

    fn when_resolved(&self) -> Promise<(), capnp::Error> {
        Promise::ok(())
    }
}

/// The open objects of one session.
pub(crate) struct SessionObjects {
    host: Arc<ObjectHost>,
    /// The session's layers, around what `gateway.object` returns.
    stack: Stack,
    namespace: String,
    table: Rc<Table>,
}

impl SessionObjects {
    /// No objects open yet, for a session in `namespace`.
    pub(crate) fn new(host: Arc<ObjectHost>, stack: Stack, namespace: String) -> Self {
        SessionObjects { host, stack, namespace, table: Rc::default() }
    }

    /// The object's layered capability (what `gateway.object` returns): the same one
    /// while the session holds it.
    pub(crate) fn layered(&self, class: &str, name: &str) -> Result<object::Client, RpcError> {
        let (key, plain, lease) = self.open(class, name)?;
        let mut table = self.table.borrow_mut();
        let entry = table.get_mut(&key).ok_or_else(|| RpcError::new(Code::Internal, "the object closed"))?;
        if let Some(held) = entry.layered.upgrade() {
            return Ok(HeldHook::client(held));
        }
        let layered: object::Client = self.stack.clone().layer(Hold(lease)).client(plain);
        let held = Rc::new(Held { hook: layered.into_client_hook() });
        entry.layered = Rc::downgrade(&held);
        Ok(HeldHook::client(held))
    }

    /// The object's plain capability and the layer that holds its connection open, for
    /// the broker to wrap in a membrane.
    pub(crate) fn plain(&self, class: &str, name: &str) -> Result<Opened, RpcError> {
        let (_, object, lease) = self.open(class, name)?;
        Ok(Opened { object, hold: Some(Rc::new(Hold(lease))) })
    }

    /// How many objects the session holds open.
    pub(crate) fn open_count(&self) -> usize {
        self.table.borrow().values().filter(|e| e.lease.strong_count() > 0).count()
    }

    /// The key, plain capability and a lease of the object, connecting to it if the
    /// session does not hold it yet (LIMIT_EXCEEDED past the session's bound).
    fn open(&self, class: &str, name: &str) -> Result<(ObjectKey, object::Client, Rc<Lease>), RpcError> {
        let key = ObjectKey::new(&self.namespace, class, name)?;
        if let Some((plain, lease)) =
            self.table.borrow().get(&key).and_then(|e| Some((e.plain.clone(), e.lease.upgrade()?)))
        {
            return Ok((key, plain, lease));
        }
        let max = self.host.config.max_objects_per_session;
        if self.open_count() >= max {
            return Err(RpcError::new(
                Code::LimitExceeded,
                format!("this session holds {max} objects open, the most allowed: release one to open another"),
            ));
        }
        let (plain, disconnector) = self.host.connect(key.clone())?;
        let lease = Rc::new(Lease {
            key: key.clone(),
            table: Rc::downgrade(&self.table),
            disconnector: RefCell::new(Some(disconnector)),
        });
        let mut table = self.table.borrow_mut();
        table.retain(|_, e| e.lease.strong_count() > 0);
        table.insert(key.clone(), Entry { plain: plain.clone(), lease: Rc::downgrade(&lease), layered: Weak::new() });
        Ok((key, plain, lease))
    }
}

impl Drop for SessionObjects {
    /// The session ended: close every connection still held (capabilities that outlive
    /// the session then fail with DISCONNECTED).
    fn drop(&mut self) {
        let leases: Vec<Rc<Lease>> = self.table.borrow().values().filter_map(|e| e.lease.upgrade()).collect();
        for lease in leases {
            lease.disconnect();
        }
    }
}
