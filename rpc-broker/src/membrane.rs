//! The membrane a redeemed token puts around its target object: a [`Layer`] (not an
//! `if` in each method) that forwards a call only when the token is not revoked nor
//! expired and allows that method at the method's declared scope (`$scope` in the
//! schema), and answers everything else with the token's refusal code. The object's getters hand out their modules wrapped
//! in the same stack, so the membrane covers everything reached through it.
//! Pipelining works through it like through any capability.
//!
//! [`stack`] is the whole stack a redeemed capability gets: metrics, the membrane, the
//! object's modules kept inside it, a deadline and error tags.

use crate::metrics::BrokerMetrics;
use crate::revocations::Revocations;
use crate::token::{Rights, Scope};
use capnp::capability::{FromClientHook, Promise, Request};
use capnp::traits::HasTypeId;
use capnp::{any_pointer, MessageSize};
use do_modules::wrap_modules::{Getter, WrapModules};
use rpc_core::layer::{self, Call, Layer, Service, Stack, TagErrors};
#[cfg(feature = "native")]
use rpc_core::layer::{Deadline, ObserveCalls};
use rpc_core::{Code, RpcError};
use schema::object_capnp::object;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// What a membrane enforces.
pub struct Policy {
    /// The verified token's rights.
    pub rights: Rights,
    /// The object the membrane wraps (`Class/name`).
    pub target: String,
    /// The current time in ms since the epoch.
    pub now_ms: fn() -> i64,
    /// The broker's revoked token ids, looked up (in memory) on every call, so revoking
    /// a token cuts off the capabilities already redeemed with it.
    pub revocations: Arc<Revocations>,
}

/// The layer that checks every call against a token's rights.
#[derive(Clone)]
pub struct Membrane(Rc<Policy>);

impl Membrane {
    /// A membrane enforcing `policy`.
    pub fn new(policy: Policy) -> Self {
        Membrane(Rc::new(policy))
    }
}

/// The stack of a redeemed capability: calls are counted in `metrics` (refusals too),
/// checked against `policy`, the object's getters answer with modules in the same
/// stack, calls are bounded by `timeout`, and their errors carry codes; `hold`, if
/// any, goes innermost (what keeps the object open, kept by every module too). Without
/// the `native` feature (no timer) calls are neither timed nor bounded here.
pub fn stack(policy: Policy, timeout: Duration, metrics: Arc<BrokerMetrics>, hold: Option<Rc<dyn Layer>>) -> Stack {
    #[cfg(feature = "native")]
    let stack = Stack::new()
        .layer(ObserveCalls::new(metrics))
        .layer(Membrane::new(policy))
        .layer(WrapModules)
        .layer(Deadline::new(timeout))
        .layer(TagErrors);
    #[cfg(not(feature = "native"))]
    let stack = {
        let _ = (timeout, metrics);
        Stack::new().layer(Membrane::new(policy)).layer(WrapModules).layer(TagErrors)
    };
    match hold {
        Some(hold) => stack.layer(Shared(hold)),
        None => stack,
    }
}

/// Wraps `inner` in [`stack`] (with nothing holding it open).
pub fn wrap<C: FromClientHook>(inner: C, policy: Policy, timeout: Duration, metrics: Arc<BrokerMetrics>) -> C {
    stack(policy, timeout, metrics, None).client(inner)
}

/// A layer shared behind an `Rc` (one the caller made), as a layer of a [`Stack`].
pub struct Shared(pub Rc<dyn Layer>);

impl Layer for Shared {
    fn layer(&self, inner: Rc<dyn Service>, stack: &Stack) -> Rc<dyn Service> {
        self.0.layer(inner, stack)
    }
}

impl Layer for Membrane {
    fn layer(&self, inner: Rc<dyn Service>, _: &Stack) -> Rc<dyn Service> {
        Rc::new(Guarded { inner, policy: self.0.clone() })
    }
}

/// The least scope a method needs (its `$scope`; admin when it declares none) and
/// whether the token's method list and scope decide. They do for every method but
/// `Object`'s `info` (which names what the token names) and its getters (which hand out
/// modules whose methods are checked); `Object.deliver`, which runs any method of the
/// object, is checked like the rest (it needs `object.deliver` at admin scope).
/// `None` when the schema does not know the method.
fn describe(interface_id: u64, method_id: u16) -> Option<(Scope, bool)> {
    let (_, method) = schema::method(interface_id, method_id)?;
    let scope = method.scope.and_then(|s| Scope::parse(s).ok()).unwrap_or(Scope::Admin);
    let free = interface_id == object::Client::TYPE_ID
        && (method.name == "info" || Getter::of(interface_id, method_id).is_some());
    Some((scope, !free))
}

struct Guarded {
    inner: Rc<dyn Service>,
    policy: Rc<Policy>,
}

impl Guarded {
    fn admit(&self, interface_id: u64, method_id: u16) -> Result<(), RpcError> {
        let p = &self.policy;
        if p.revocations.is_revoked(&p.rights.token_id) {
            return Err(RpcError::new(Code::Revoked, "the token was revoked"));
        }
        if (p.now_ms)() >= p.rights.expires_at {
            return Err(RpcError::new(Code::Expired, "the token expired"));
        }
        let (needed, checked) = describe(interface_id, method_id).ok_or_else(|| {
            RpcError::new(
                Code::Forbidden,
                format!("method {method_id} of interface {interface_id:#x} is not in the schema"),
            )
        })?;
        if checked {
            p.rights.check(&p.target, &layer::method_name(interface_id, method_id), needed)?;
        }
        Ok(())
    }
}

impl Service for Guarded {
    fn inner(&self) -> Option<&dyn Service> {
        Some(&*self.inner)
    }

    fn call(&self, call: Call) -> Promise<(), capnp::Error> {
        match self.admit(call.interface_id, call.method_id) {
            Err(e) => Promise::err(e.into()),
            Ok(()) => self.inner.call(call),
        }
    }

    fn new_call(
        &self,
        interface_id: u64,
        method_id: u16,
        size_hint: Option<MessageSize>,
    ) -> Request<any_pointer::Owned, any_pointer::Owned> {
        // Calls from this process (remote calls arrive through `call`): checked, but a
        // getter (or a Workflow method that hands out a Run or an Approval) would hand
        // out an unwrapped capability, so those are refused here.
        let refusal = match self.admit(interface_id, method_id) {
            Ok(())
                if Getter::of(interface_id, method_id).is_some()
                    || do_modules::wrap_modules::hands_out(interface_id, method_id).is_some() =>
            {
                RpcError::new(
                    Code::Forbidden,
                    format!(
                        "{} through a membrane is only for remote callers",
                        layer::method_name(interface_id, method_id)
                    ),
                )
            }
            Ok(()) => return self.inner.new_call(interface_id, method_id, size_hint),
            Err(e) => e,
        };
        layer::refused(refusal.into(), interface_id, method_id, size_hint)
    }
}

#[cfg(test)]
mod tests;
