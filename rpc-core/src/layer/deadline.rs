//! Call deadlines: a call still running after its limit is cancelled (dropped) and
//! answered with TIMEOUT.

use super::{outcome_now, settled, Call, Layer, Service, Stack};
use crate::error::{tag, Code, RpcError};
use capnp::capability::Promise;
use std::rc::Rc;
use std::time::Duration;

/// The layer that bounds every call by `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// Calls still running after this long are answered with TIMEOUT and cancelled.
    pub limit: Duration,
}

impl Deadline {
    /// A deadline of `limit` per call.
    pub fn new(limit: Duration) -> Self {
        Deadline { limit }
    }
}

impl Layer for Deadline {
    fn layer(&self, inner: Rc<dyn Service>, _: &Stack) -> Rc<dyn Service> {
        Rc::new(Bounded { inner, limit: self.limit })
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

struct Bounded {
    inner: Rc<dyn Service>,
    limit: Duration,
}

impl Service for Bounded {
    fn call(&self, call: Call) -> Promise<(), capnp::Error> {
        let what = call.method_name();
        let mut running = self.inner.call(call);
        // Most calls finish at once: answer those without arming a timer.
        if let Some(r) = outcome_now(&mut running) {
            return settled(r.map_err(tag));
        }
        let limit = self.limit;
        Promise::from_future(async move { deadline(running, limit, &what).await })
    }

    fn inner(&self) -> Option<&dyn Service> {
        Some(&*self.inner)
    }
}
