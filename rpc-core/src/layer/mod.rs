//! Cross-cutting concerns as layers around capabilities, in the manner of tower.
//!
//! One call is a [`Call`]; a [`Service`] runs calls; a [`Layer`] wraps a service in
//! another one (a deadline, a metrics recorder, a trace span, a token check...). A
//! [`Stack`] (tower's `ServiceBuilder`) lists layers and turns a capnp server or client
//! into a layered client, served through one generic [`ClientHook`] adapter.
//!
//! Layers apply to calls that arrive over a connection (`ClientHook::call`). Calls made
//! in this process (`ClientHook::new_call`) go through [`Service::new_call`], which a
//! layer forwards unless it must refuse (a membrane does).
//!
//! ```
//! use rpc_core::layer::{Stack, TagErrors};
//! // Layers run in the order they are added: the first one added sees a call first.
//! let stack = Stack::new().layer(TagErrors);
//! assert_eq!(stack.len(), 1);
//! ```

#[cfg(feature = "timer")]
pub mod deadline;
#[cfg(feature = "timer")]
pub mod metrics;
pub mod tag;
#[cfg(feature = "timer")]
pub mod trace;

#[cfg(feature = "timer")]
pub use deadline::{deadline, Deadline};
#[cfg(feature = "timer")]
pub use metrics::{CallObserver, ObserveCalls};
pub use tag::TagErrors;
#[cfg(feature = "timer")]
pub use trace::Trace;

use capnp::capability::{FromClientHook, FromServer, Promise, Request};
use capnp::private::capability::{ClientHook, ParamsHook, ResultsHook};
use capnp::{any_pointer, MessageSize};
use std::borrow::Cow;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::OnceLock;

/// One call arriving at a capability.
pub struct Call {
    /// The interface's 64-bit type id.
    pub interface_id: u64,
    /// The method's ordinal in the interface.
    pub method_id: u16,
    /// The call's parameters.
    pub params: Box<dyn ParamsHook>,
    /// Where the results go.
    pub results: Box<dyn ResultsHook>,
}

impl Call {
    /// `storage.get`: the method as `interface.method`, from the schema.
    pub fn method_name(&self) -> Cow<'static, str> {
        method_name(self.interface_id, self.method_id)
    }
}

/// `storage.get` for (Storage's id, 1): the interface's short name in lower case, a dot,
/// and the method's name, from the schema; `0x…@N` when the schema does not know it.
/// Names of the schema's methods are made once and then borrowed.
pub fn method_name(interface_id: u64, method_id: u16) -> Cow<'static, str> {
    static NAMES: OnceLock<HashMap<(u64, u16), String>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        let mut names = HashMap::new();
        for iface in schema::INTERFACES {
            let short = iface.name.rsplit(':').next().unwrap_or(iface.name).to_ascii_lowercase();
            for m in iface.methods {
                names.insert((iface.id, m.ordinal), format!("{short}.{}", m.name));
            }
        }
        names
    });
    match names.get(&(interface_id, method_id)) {
        Some(name) => Cow::Borrowed(name.as_str()),
        // A registered interface (a user's class), or one nobody declared.
        None => match schema::method(interface_id, method_id) {
            Some((iface, m)) => {
                let short = iface.name.rsplit(':').next().unwrap_or(iface.name).to_ascii_lowercase();
                Cow::Owned(format!("{short}.{}", m.name))
            }
            None => Cow::Owned(format!("{interface_id:#x}@{method_id}")),
        },
    }
}

/// Something that runs calls: a capability, or a layer around one.
pub trait Service {
    /// Runs one call that arrived over a connection.
    fn call(&self, call: Call) -> Promise<(), capnp::Error>;

    /// The service this one wraps; `None` only for the capability itself, which then
    /// answers [`Service::new_call`] on its own.
    fn inner(&self) -> Option<&dyn Service>;

    /// Starts a call made in this process. By default a layer forwards it to the service
    /// it wraps; a layer that must refuse it answers with a request on a broken capability.
    fn new_call(
        &self,
        interface_id: u64,
        method_id: u16,
        size_hint: Option<MessageSize>,
    ) -> Request<any_pointer::Owned, any_pointer::Owned> {
        match self.inner() {
            Some(inner) => inner.new_call(interface_id, method_id, size_hint),
            None => capnp_rpc::new_broken_cap(capnp::Error::failed("a service with nothing inside".into())).new_call(
                interface_id,
                method_id,
                size_hint,
            ),
        }
    }
}

/// The innermost service: the capability itself.
struct Target(Box<dyn ClientHook>);

impl Service for Target {
    fn call(&self, c: Call) -> Promise<(), capnp::Error> {
        self.0.call(c.interface_id, c.method_id, c.params, c.results)
    }

    fn inner(&self) -> Option<&dyn Service> {
        None
    }

    fn new_call(
        &self,
        interface_id: u64,
        method_id: u16,
        size_hint: Option<MessageSize>,
    ) -> Request<any_pointer::Owned, any_pointer::Owned> {
        self.0.new_call(interface_id, method_id, size_hint)
    }
}

/// Wraps a service in another one.
pub trait Layer {
    /// Wraps `inner`. `stack` is the whole stack this layer is part of, for layers that
    /// hand out capabilities and wrap them the same way (a membrane's getters).
    fn layer(&self, inner: Rc<dyn Service>, stack: &Stack) -> Rc<dyn Service>;
}

/// Layers to put around capabilities, outermost first (like tower's `ServiceBuilder`).
/// Cloning is cheap and shares the layers (and so their state, e.g. a trace counter).
#[derive(Clone, Default)]
pub struct Stack {
    layers: Vec<Rc<dyn Layer>>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stack({} layers)", self.layers.len())
    }
}

impl Stack {
    /// A stack with no layers (calls go straight through).
    pub fn new() -> Self {
        Stack::default()
    }

    /// Adds `layer` inside the layers added before it.
    #[must_use]
    pub fn layer(mut self, layer: impl Layer + 'static) -> Self {
        self.layers.push(Rc::new(layer));
        self
    }

    /// How many layers the stack has.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether the stack has no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Serves `server` as a layered client of type `C`.
    pub fn server<C, S>(&self, server: S) -> C
    where
        C: FromServer<S> + FromClientHook,
    {
        let plain: C = capnp_rpc::new_client(server);
        self.client(plain)
    }

    /// Wraps an existing client (local or remote) in the stack.
    pub fn client<C: FromClientHook>(&self, client: C) -> C {
        C::new(self.hook(client.into_client_hook()))
    }

    /// Wraps a capability's hook in the stack.
    pub fn hook(&self, inner: Box<dyn ClientHook>) -> Box<dyn ClientHook> {
        let mut service: Rc<dyn Service> = Rc::new(Target(inner));
        for layer in self.layers.iter().rev() {
            service = layer.layer(service, self);
        }
        Box::new(Layered(Rc::new(service)))
    }
}

/// The one [`ClientHook`] that runs a stack. Every reference (`add_ref`) shares the
/// same service, whose address is the capability's identity (the RPC engine keys its
/// exports by `get_ptr`).
struct Layered(Rc<Rc<dyn Service>>);

impl ClientHook for Layered {
    fn add_ref(&self) -> Box<dyn ClientHook> {
        Box::new(Layered(self.0.clone()))
    }

    fn new_call(
        &self,
        interface_id: u64,
        method_id: u16,
        size_hint: Option<MessageSize>,
    ) -> Request<any_pointer::Owned, any_pointer::Owned> {
        self.0.new_call(interface_id, method_id, size_hint)
    }

    fn call(
        &self,
        interface_id: u64,
        method_id: u16,
        params: Box<dyn ParamsHook>,
        results: Box<dyn ResultsHook>,
    ) -> Promise<(), capnp::Error> {
        self.0.call(Call { interface_id, method_id, params, results })
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

/// The outcome of `promise` if it is already known: most calls finish when first
/// polled, and layers answer those without boxing another future. Polling with a no-op
/// waker is harmless: a promise still pending registers the real waker when polled again.
pub(crate) fn outcome_now(promise: &mut Promise<(), capnp::Error>) -> Option<Result<(), capnp::Error>> {
    use futures::FutureExt;
    let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
    match promise.poll_unpin(&mut cx) {
        std::task::Poll::Ready(r) => Some(r),
        std::task::Poll::Pending => None,
    }
}

/// A promise of `result`, already settled.
pub(crate) fn settled(result: Result<(), capnp::Error>) -> Promise<(), capnp::Error> {
    match result {
        Ok(()) => Promise::ok(()),
        Err(e) => Promise::err(e),
    }
}

/// A request on a broken capability: how a layer refuses a call made in this process.
pub fn refused(
    error: capnp::Error,
    interface_id: u64,
    method_id: u16,
    size_hint: Option<MessageSize>,
) -> Request<any_pointer::Owned, any_pointer::Owned> {
    capnp_rpc::new_broken_cap(error).new_call(interface_id, method_id, size_hint)
}

#[cfg(all(test, feature = "timer"))]
mod tests;
