//! The layer that keeps an object's modules inside the stack the object is in: the
//! `Object` getters (`storage`, `events`, `schedule`, `kv`, `workflow`) answer with the
//! module wrapped in the same [`Stack`], and so do the `Workflow` methods that hand out
//! a `Run` or an `Approval`, so whatever the stack does (trace, metrics, a token
//! membrane) covers those calls too. Getters are recognised by name from the schema.

use capnp::capability::{Params, Promise, Request, Results};
use capnp::traits::HasTypeId;
use rpc_core::layer::{Call, Layer, Service, Stack};
use schema::object_capnp::{object, workflow};
use std::rc::Rc;

/// An `Object` getter that hands out a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Getter {
    /// `Object.storage`.
    Storage,
    /// `Object.events`.
    Events,
    /// `Object.schedule`.
    Schedule,
    /// `Object.kv`.
    Kv,
    /// `Object.workflow`.
    Workflow,
}

impl Getter {
    /// The getter with these ids, if the call is one (by the method's name in the schema).
    pub fn of(interface_id: u64, method_id: u16) -> Option<Getter> {
        if interface_id != object::Client::TYPE_ID {
            return None;
        }
        match schema::method(interface_id, method_id)?.1.name {
            "storage" => Some(Getter::Storage),
            "events" => Some(Getter::Events),
            "schedule" => Some(Getter::Schedule),
            "kv" => Some(Getter::Kv),
            "workflow" => Some(Getter::Workflow),
            _ => None,
        }
    }
}

/// The layer; put it inside the layers whose coverage must reach the modules.
#[derive(Debug, Clone, Copy, Default)]
pub struct WrapModules;

impl Layer for WrapModules {
    fn layer(&self, inner: Rc<dyn Service>, stack: &Stack) -> Rc<dyn Service> {
        Rc::new(Wrapping { inner, stack: stack.clone() })
    }
}

struct Wrapping {
    inner: Rc<dyn Service>,
    stack: Stack,
}

/// A `Workflow` method whose result is a capability: `start` and `run` (a `Run`),
/// `approval` (an `Approval`).
pub fn hands_out(interface_id: u64, method_id: u16) -> Option<&'static str> {
    if interface_id != workflow::Client::TYPE_ID {
        return None;
    }
    match schema::method(interface_id, method_id)?.1.name {
        name @ ("start" | "run" | "approval") => Some(name),
        _ => None,
    }
}

impl Wrapping {
    /// Forwards a `Workflow` call whose result is a capability, and wraps that.
    fn wrap_result(&self, call: Call, method: &'static str) -> Promise<(), capnp::Error> {
        let mut request = self.inner.new_call(call.interface_id, call.method_id, None);
        let params = Params::<capnp::any_pointer::Owned>::new(call.params);
        if let Err(e) = params.get().and_then(|p| request.get().set_as(p)) {
            return Promise::err(e);
        }
        let (stack, results) = (self.stack.clone(), call.results);
        Promise::from_future(async move {
            let reply = request.send().promise.await?;
            let root = reply.get()?;
            let mut out = Results::<capnp::any_pointer::Owned>::new(results);
            match method {
                "approval" => {
                    let cap = root.get_as::<workflow::approval_results::Reader>()?.get_approval()?;
                    out.get().init_as::<workflow::approval_results::Builder>().set_approval(stack.client(cap));
                }
                "start" => {
                    let cap = root.get_as::<workflow::start_results::Reader>()?.get_run()?;
                    out.get().init_as::<workflow::start_results::Builder>().set_run(stack.client(cap));
                }
                _ => {
                    let cap = root.get_as::<workflow::run_results::Reader>()?.get_run()?;
                    out.get().init_as::<workflow::run_results::Builder>().set_run(stack.client(cap));
                }
            }
            Ok(())
        })
    }
}

impl Service for Wrapping {
    fn call(&self, call: Call) -> Promise<(), capnp::Error> {
        if let Some(method) = hands_out(call.interface_id, call.method_id) {
            return self.wrap_result(call, method);
        }
        let Some(getter) = Getter::of(call.interface_id, call.method_id) else {
            return self.inner.call(call);
        };
        // Ask the object for the module (getters take no parameters), then answer.
        let request = self.inner.new_call(call.interface_id, call.method_id, None);
        let (stack, results) = (self.stack.clone(), call.results);
        Promise::from_future(async move {
            match getter {
                Getter::Storage => {
                    let req: Request<object::storage_params::Owned, object::storage_results::Owned> =
                        Request::new(request.hook);
                    let module = req.send().promise.await?.get()?.get_storage()?;
                    Results::<object::storage_results::Owned>::new(results).get().set_storage(stack.client(module));
                }
                Getter::Events => {
                    let req: Request<object::events_params::Owned, object::events_results::Owned> =
                        Request::new(request.hook);
                    let module = req.send().promise.await?.get()?.get_events()?;
                    Results::<object::events_results::Owned>::new(results).get().set_events(stack.client(module));
                }
                Getter::Schedule => {
                    let req: Request<object::schedule_params::Owned, object::schedule_results::Owned> =
                        Request::new(request.hook);
                    let module = req.send().promise.await?.get()?.get_schedule()?;
                    Results::<object::schedule_results::Owned>::new(results).get().set_schedule(stack.client(module));
                }
                Getter::Kv => {
                    let req: Request<object::kv_params::Owned, object::kv_results::Owned> = Request::new(request.hook);
                    let module = req.send().promise.await?.get()?.get_kv()?;
                    Results::<object::kv_results::Owned>::new(results).get().set_kv(stack.client(module));
                }
                Getter::Workflow => {
                    let req: Request<object::workflow_params::Owned, object::workflow_results::Owned> =
                        Request::new(request.hook);
                    let module = req.send().promise.await?.get()?.get_workflow()?;
                    Results::<object::workflow_results::Owned>::new(results).get().set_workflow(stack.client(module));
                }
            }
            Ok(())
        })
    }

    fn inner(&self) -> Option<&dyn Service> {
        Some(&*self.inner)
    }
}
