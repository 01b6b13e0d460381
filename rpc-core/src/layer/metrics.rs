//! Call metrics: every call's method, duration and outcome code, recorded by a
//! [`CallObserver`] (the server's [`crate::metrics::Metrics`], or the broker's).

use super::{outcome_now, settled, Call, Layer, Service, Stack};
use crate::error::{Code, RpcError};
use crate::metrics::Metrics;
use capnp::capability::Promise;
use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a finished call is recorded.
pub trait CallObserver {
    /// One call of `method` (`interface.method`) took `elapsed` and ended with `outcome`
    /// (`None` for success, else the error's code).
    fn observe_call(&self, method: Cow<'static, str>, elapsed: Duration, outcome: Option<Code>);
}

impl CallObserver for Metrics {
    fn observe_call(&self, method: Cow<'static, str>, elapsed: Duration, outcome: Option<Code>) {
        Metrics::observe_call(self, method, elapsed, outcome);
    }
}

/// The layer that records every call with an observer.
#[derive(Clone)]
pub struct ObserveCalls {
    observer: Arc<dyn CallObserver + Send + Sync>,
}

impl ObserveCalls {
    /// Records calls with `observer`.
    pub fn new(observer: Arc<dyn CallObserver + Send + Sync>) -> Self {
        ObserveCalls { observer }
    }
}

impl Layer for ObserveCalls {
    fn layer(&self, inner: Rc<dyn Service>, _: &Stack) -> Rc<dyn Service> {
        Rc::new(Observed { inner, observer: self.observer.clone() })
    }
}

struct Observed {
    inner: Rc<dyn Service>,
    observer: Arc<dyn CallObserver + Send + Sync>,
}

fn record(observer: &dyn CallObserver, method: Cow<'static, str>, started: Instant, r: &Result<(), capnp::Error>) {
    let outcome = r.as_ref().err().map(|e| RpcError::from(e.clone()).code);
    observer.observe_call(method, started.elapsed(), outcome);
}

impl Service for Observed {
    fn call(&self, call: Call) -> Promise<(), capnp::Error> {
        let started = Instant::now();
        let method = call.method_name();
        let mut running = self.inner.call(call);
        if let Some(r) = outcome_now(&mut running) {
            record(&*self.observer, method, started, &r);
            return settled(r);
        }
        let observer = self.observer.clone();
        Promise::from_future(async move {
            let r = running.await;
            record(&*observer, method, started, &r);
            r
        })
    }

    fn inner(&self) -> Option<&dyn Service> {
        Some(&*self.inner)
    }
}
