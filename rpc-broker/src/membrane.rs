//! The membrane a redeemed token puts around its target object: a wrapper capability
//! (a layer, not an `if` in each method) that forwards a call only when the token
//! allows that method at the method's declared scope (`$scope` in the schema), answers
//! everything else with the token's refusal code, and bounds each call with a deadline.
//! Pipelining works through it like through any capability.

use crate::metrics::BrokerMetrics;
use crate::token::{Rights, Scope};
use capnp::capability::{FromClientHook, Promise};
use capnp::private::capability::{ClientHook, ParamsHook, ResultsHook};
use rpc_core::{error::tag, Code, RpcError};
use schema::object_capnp::object;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a membrane enforces.
pub struct Policy {
    /// The verified token's rights.
    pub rights: Rights,
    /// The object the membrane wraps (`Class/name`).
    pub target: String,
    /// Deadline of each forwarded call.
    pub timeout: Duration,
    /// Where calls are counted.
    pub metrics: Arc<BrokerMetrics>,
    /// The current time in ms since the epoch.
    pub now_ms: fn() -> i64,
}

/// `storage.create` and the scope `create` needs, from the schema; unknown methods have
/// no name, and methods without a `$scope` need admin.
fn describe(interface_id: u64, method_id: u16) -> Option<(String, Scope)> {
    let (iface, method) = schema::method(interface_id, method_id)?;
    let short = iface.name.rsplit(':').next().unwrap_or(iface.name).to_ascii_lowercase();
    let scope = method.scope.and_then(|s| Scope::parse(s).ok()).unwrap_or(Scope::Admin);
    Some((format!("{short}.{}", method.name), scope))
}

/// Wraps `inner` so that only what `policy` allows gets through.
pub fn wrap<C: FromClientHook>(inner: C, policy: Rc<Policy>) -> C {
    C::new(Box::new(Membrane(Rc::new(Wrapped { inner: inner.into_client_hook(), policy }))))
}

struct Wrapped {
    inner: Box<dyn ClientHook>,
    policy: Rc<Policy>,
}

/// One reference to a wrapped capability; every reference shares the [`Wrapped`], whose
/// address is the capability's identity (the RPC engine keys its exports by it).
struct Membrane(Rc<Wrapped>);

impl std::ops::Deref for Membrane {
    type Target = Wrapped;
    fn deref(&self) -> &Wrapped {
        &self.0
    }
}

impl Wrapped {
    fn admit(&self, interface_id: u64, method_id: u16) -> Result<String, RpcError> {
        let p = &self.policy;
        if (p.now_ms)() >= p.rights.expires_at {
            return Err(RpcError::new(Code::Expired, "the token expired"));
        }
        let (name, needed) = describe(interface_id, method_id).ok_or_else(|| {
            RpcError::new(
                Code::Forbidden,
                format!("method {method_id} of interface {interface_id:#x} is not in the schema"),
            )
        })?;
        // The object's getters only hand out (membrane-wrapped) modules; the module calls are checked.
        if name.starts_with("object.") {
            return Ok(name);
        }
        p.rights.check(&p.target, &name, needed)?;
        Ok(name)
    }
}

impl ClientHook for Membrane {
    fn add_ref(&self) -> Box<dyn ClientHook> {
        Box::new(Membrane(self.0.clone()))
    }

    fn new_call(
        &self,
        interface_id: u64,
        method_id: u16,
        size_hint: Option<capnp::MessageSize>,
    ) -> capnp::capability::Request<capnp::any_pointer::Owned, capnp::any_pointer::Owned> {
        // Calls from this process (remote calls arrive through `call`): checked, but a
        // getter would hand out an unwrapped module, so getters are refused here.
        let refused = match self.admit(interface_id, method_id) {
            Ok(name) if name.starts_with("object.") && name != "object.info" => {
                RpcError::new(Code::Forbidden, format!("{name} through a membrane is only for remote callers"))
            }
            Ok(_) => return self.inner.new_call(interface_id, method_id, size_hint),
            Err(e) => e,
        };
        capnp_rpc::new_broken_cap(refused.into()).new_call(interface_id, method_id, size_hint)
    }

    fn call(
        &self,
        interface_id: u64,
        method_id: u16,
        params: Box<dyn ParamsHook>,
        results: Box<dyn ResultsHook>,
    ) -> Promise<(), capnp::Error> {
        let started = Instant::now();
        let policy = self.policy.clone();
        let name = match self.admit(interface_id, method_id) {
            Ok(n) => n,
            Err(e) => {
                let label = describe(interface_id, method_id).map_or_else(|| "unknown".to_string(), |(n, _)| n);
                policy.metrics.call(&label, started.elapsed(), true);
                return Promise::err(e.into());
            }
        };
        if name.starts_with("object.") && name != "object.info" {
            // A getter: run it, then wrap the capability it returns.
            return self.getter(interface_id, method_id, params, results, name);
        }
        let call = self.inner.call(interface_id, method_id, params, results);
        Promise::from_future(async move {
            let r = rpc_core::layer::deadline(call, policy.timeout, &name).await;
            policy.metrics.call(&name, started.elapsed(), r.is_err());
            r
        })
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

impl Membrane {
    /// `storage()`, `events()`, `schedule()`: asks the object for the module and answers
    /// with the module wrapped in the same membrane.
    fn getter(
        &self,
        _interface_id: u64,
        method_id: u16,
        _params: Box<dyn ParamsHook>,
        results: Box<dyn ResultsHook>,
        name: String,
    ) -> Promise<(), capnp::Error> {
        let policy = self.policy.clone();
        let started = Instant::now();
        let obj = object::Client { client: capnp::capability::Client::new(self.inner.add_ref()) };
        Promise::from_future(async move {
            let r = async {
                match method_id {
                    1 => {
                        let m = obj.storage_request().send().promise.await?.get()?.get_storage()?;
                        let mut out = capnp::capability::Results::<object::storage_results::Owned>::new(results);
                        out.get().set_storage(wrap(m, policy.clone()));
                    }
                    2 => {
                        let m = obj.events_request().send().promise.await?.get()?.get_events()?;
                        let mut out = capnp::capability::Results::<object::events_results::Owned>::new(results);
                        out.get().set_events(wrap(m, policy.clone()));
                    }
                    3 => {
                        let m = obj.schedule_request().send().promise.await?.get()?.get_schedule()?;
                        let mut out = capnp::capability::Results::<object::schedule_results::Owned>::new(results);
                        out.get().set_schedule(wrap(m, policy.clone()));
                    }
                    _ => return Err(RpcError::new(Code::Forbidden, format!("{name} is not a getter")).into()),
                }
                Ok::<(), capnp::Error>(())
            }
            .await
            .map_err(tag);
            policy.metrics.call(&name, started.elapsed(), r.is_err());
            r
        })
    }
}
