//! Error tagging: every error leaving a server carries a `[CODE]` prefix, so its
//! [`crate::Code`] survives the trip across the wire.

use super::{outcome_now, settled, Call, Layer, Service, Stack};
use crate::error::tag;
use capnp::capability::Promise;
use futures::TryFutureExt;
use std::rc::Rc;

/// The layer that tags errors with their code (untagged ones are classified by kind).
#[derive(Debug, Clone, Copy, Default)]
pub struct TagErrors;

impl Layer for TagErrors {
    fn layer(&self, inner: Rc<dyn Service>, _: &Stack) -> Rc<dyn Service> {
        Rc::new(Tagged(inner))
    }
}

struct Tagged(Rc<dyn Service>);

impl Service for Tagged {
    fn call(&self, call: Call) -> Promise<(), capnp::Error> {
        let mut running = self.0.call(call);
        match outcome_now(&mut running) {
            Some(r) => settled(r.map_err(tag)),
            None => Promise::from_future(running.map_err(tag)),
        }
    }

    fn inner(&self) -> Option<&dyn Service> {
        Some(&*self.0)
    }
}
