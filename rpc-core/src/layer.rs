//! Layers around capabilities (in the manner of tower's `Layer`): a wrapper
//! [`ClientHook`] that gives every call arriving over the network a deadline and makes
//! sure every error leaving a server carries a stable [`crate::Code`].
//!
//! Servers are turned into clients with [`Layer::client`] instead of
//! `capnp_rpc::new_client`, so every capability a dotdo server hands out is layered.

use crate::error::{tag, Code, RpcError};
use capnp::capability::{FromClientHook, FromServer, Promise};
use capnp::private::capability::{ClientHook, ParamsHook, ResultsHook};
use futures::FutureExt;
use std::task::{Context, Poll};
use std::time::Duration;

/// The policy applied to calls into a layered capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    /// Calls still running after this long are answered with TIMEOUT and cancelled.
    pub call_timeout: Duration,
}

impl Layer {
    /// A layer with the given call timeout.
    pub fn new(call_timeout: Duration) -> Self {
        Layer { call_timeout }
    }

    /// Serves `server` as a client of type `C`, wrapped in this layer.
    pub fn client<C, S>(&self, server: S) -> C
    where
        C: FromServer<S> + FromClientHook,
    {
        let plain: C = capnp_rpc::new_client(server);
        C::new(Box::new(Layered { inner: plain.into_client_hook(), layer: *self }))
    }
}

/// Runs `call` with a deadline: past `limit` it is dropped (cancelled) and answered
/// with TIMEOUT naming `what`; its errors get a stable code.
pub async fn deadline<F>(call: F, limit: Duration, what: &str) -> Result<(), capnp::Error>
where
    F: std::future::Future<Output = Result<(), capnp::Error>>,
{
    match tokio::time::timeout(limit, call).await {
        Ok(r) => r.map_err(tag),
        Err(_) => Err(RpcError::new(Code::Timeout, format!("{what} did not finish within {limit:?}")).into()),
    }
}

/// A capability wrapped in a [`Layer`].
struct Layered {
    inner: Box<dyn ClientHook>,
    layer: Layer,
}

impl ClientHook for Layered {
    fn add_ref(&self) -> Box<dyn ClientHook> {
        Box::new(Layered { inner: self.inner.add_ref(), layer: self.layer })
    }

    fn new_call(
        &self,
        interface_id: u64,
        method_id: u16,
        size_hint: Option<capnp::MessageSize>,
    ) -> capnp::capability::Request<capnp::any_pointer::Owned, capnp::any_pointer::Owned> {
        // Calls made in-process go straight to the server; the layer guards network callers.
        self.inner.new_call(interface_id, method_id, size_hint)
    }

    fn call(
        &self,
        interface_id: u64,
        method_id: u16,
        params: Box<dyn ParamsHook>,
        results: Box<dyn ResultsHook>,
    ) -> Promise<(), capnp::Error> {
        let mut call = self.inner.call(interface_id, method_id, params, results);
        // Most calls finish at once: answer those without arming a timer.
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        if let Poll::Ready(r) = call.poll_unpin(&mut cx) {
            return match r {
                Ok(()) => Promise::ok(()),
                Err(e) => Promise::err(tag(e)),
            };
        }
        Promise::from_future(deadline(call, self.layer.call_timeout, "call"))
    }

    fn get_brand(&self) -> usize {
        0
    }

    fn get_ptr(&self) -> usize {
        self.inner.get_ptr()
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
