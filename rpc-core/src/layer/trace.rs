//! Call tracing: a `tracing` debug event per call with a correlation id unique per call
//! (`<session id>-<n>`), the method (`interface.method`), the outcome code and the
//! duration. `RUST_LOG=debug` shows them.

use super::{Call, Layer, Service, Stack};
use crate::error::RpcError;
use capnp::capability::Promise;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

/// The layer that traces every call; the capabilities of one stack share its counter.
#[derive(Debug, Clone)]
pub struct Trace {
    session: Rc<str>,
    next: Rc<Cell<u64>>,
}

impl Trace {
    /// Traces calls of the session `session_id`.
    pub fn new(session_id: &str) -> Self {
        Trace { session: session_id.into(), next: Rc::default() }
    }

    /// The correlation id of the next call.
    pub(crate) fn next_id(&self) -> String {
        let n = self.next.get();
        self.next.set(n.wrapping_add(1));
        format!("{}-{n}", self.session)
    }
}

impl Layer for Trace {
    fn layer(&self, inner: Rc<dyn Service>, _: &Stack) -> Rc<dyn Service> {
        Rc::new(Traced { inner, trace: self.clone() })
    }
}

struct Traced {
    inner: Rc<dyn Service>,
    trace: Trace,
}

impl Service for Traced {
    fn call(&self, call: Call) -> Promise<(), capnp::Error> {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return self.inner.call(call);
        }
        let id = self.trace.next_id();
        let method = call.method_name();
        let started = Instant::now();
        tracing::debug!(call = %id, method = %method, "call");
        let running = self.inner.call(call);
        Promise::from_future(async move {
            let r = running.await;
            let code = r.as_ref().err().map_or("OK", |e| RpcError::from(e.clone()).code.as_str());
            let micros = started.elapsed().as_micros();
            tracing::debug!(call = %id, method = %method, code, micros, "done");
            r
        })
    }

    fn inner(&self) -> Option<&dyn Service> {
        Some(&*self.inner)
    }
}
