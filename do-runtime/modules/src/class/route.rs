//! The layers that make a user's class server an object: calls on the base `Object`
//! interface go to the framework's server (the class does not implement them), and a
//! panic in the class's code becomes an INTERNAL error of that one call instead of
//! taking the object's thread down.

use capnp::capability::{FromClientHook, Promise, Request};
use capnp::traits::HasTypeId;
use capnp::{any_pointer, MessageSize};
use futures::FutureExt;
use rpc_core::layer::{Call, Layer, Service, Stack};
use rpc_core::{Code, RpcError};
use schema::object_capnp::object;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;

/// Sends calls on `Object`'s own methods to `base`, the rest inward (to the class).
#[derive(Clone)]
pub struct RouteBase {
    base: object::Client,
}

impl RouteBase {
    /// Routes `Object` calls to `base`.
    pub fn new(base: object::Client) -> Self {
        RouteBase { base }
    }
}

impl Layer for RouteBase {
    fn layer(&self, inner: Rc<dyn Service>, _: &Stack) -> Rc<dyn Service> {
        Rc::new(Routing { inner, base: self.base.clone() })
    }
}

struct Routing {
    inner: Rc<dyn Service>,
    base: object::Client,
}

impl Service for Routing {
    fn call(&self, call: Call) -> Promise<(), capnp::Error> {
        if call.interface_id == object::Client::TYPE_ID {
            return self.base.as_client_hook().call(call.interface_id, call.method_id, call.params, call.results);
        }
        self.inner.call(call)
    }

    fn inner(&self) -> Option<&dyn Service> {
        Some(&*self.inner)
    }

    fn new_call(
        &self,
        interface_id: u64,
        method_id: u16,
        size_hint: Option<MessageSize>,
    ) -> Request<any_pointer::Owned, any_pointer::Owned> {
        if interface_id == object::Client::TYPE_ID {
            return self.base.as_client_hook().new_call(interface_id, method_id, size_hint);
        }
        self.inner.new_call(interface_id, method_id, size_hint)
    }
}

/// Turns a panic of the class's code (while dispatching or while its future runs) into
/// an INTERNAL error, logged with the class and method.
#[derive(Clone)]
pub struct CatchPanics {
    class: Rc<str>,
}

impl CatchPanics {
    /// For the class named `class` (in the log).
    pub fn new(class: &str) -> Self {
        CatchPanics { class: class.into() }
    }
}

impl Layer for CatchPanics {
    fn layer(&self, inner: Rc<dyn Service>, _: &Stack) -> Rc<dyn Service> {
        Rc::new(Catching { inner, class: self.class.clone() })
    }
}

struct Catching {
    inner: Rc<dyn Service>,
    class: Rc<str>,
}

/// The message of a caught panic.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

fn panicked(class: &str, method: &str, p: &(dyn std::any::Any + Send)) -> capnp::Error {
    let message = panic_message(p);
    tracing::error!(class, method, panic = %message, "a class method panicked");
    RpcError::new(Code::Internal, format!("{class}.{method} failed (it panicked)")).into()
}

impl Service for Catching {
    fn call(&self, call: Call) -> Promise<(), capnp::Error> {
        let method = call.method_name().into_owned();
        let class = self.class.clone();
        let inner = self.inner.clone();
        match std::panic::catch_unwind(AssertUnwindSafe(move || inner.call(call))) {
            Ok(promise) => Promise::from_future(AssertUnwindSafe(promise).catch_unwind().map(move |r| match r {
                Ok(r) => r,
                Err(p) => Err(panicked(&class, &method, &*p)),
            })),
            Err(p) => Promise::err(panicked(&class, &method, &*p)),
        }
    }

    fn inner(&self) -> Option<&dyn Service> {
        Some(&*self.inner)
    }
}
