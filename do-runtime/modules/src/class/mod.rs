//! User classes: a Durable Object whose interface the user declares in a `.capnp` file
//! (an interface that `extends(Obj.Object)`) and implements in Rust.
//!
//! The class's struct implements its generated `Server` trait (and, empty,
//! `object::Server`, which the generated trait requires: the framework answers the base
//! `Object` methods itself) and [`Class`], whose `create` receives the object's
//! [`Context`]. The host builds one instance per live object, runs the class's
//! migrations first, subscribes its event handlers and wakes it for its alarm.
//!
//! ```ignore
//! struct Counter { ctx: Context }
//! impl object::Server for Counter {}
//! impl counter::Server for Counter {
//!     async fn increment(self: Rc<Self>, p: counter::IncrementParams, mut r: counter::IncrementResults) -> capnp::Result<()> {
//!         let value = self.ctx.kv().get::<i64>("value")?.unwrap_or(0) + p.get()?.get_by();
//!         self.ctx.kv().put("value", &value)?;
//!         r.get().set_value(value);
//!         Ok(())
//!     }
//! }
//! impl Class for Counter {
//!     type Client = counter::Client;
//!     fn create(ctx: Context) -> Result<Self, RpcError> { Ok(Counter { ctx }) }
//! }
//! ```

pub mod alarm;
pub mod classes;
pub mod context;
pub mod route;
pub mod statement;

pub use crate::kv::Kv;
pub use classes::Classes;
pub use context::Context;

use crate::events::{Event, Pattern};
use crate::host::SqlValue;
use crate::object::{AlarmCallback, ObjectParts};
use capnp::capability::{FromClientHook, FromServer};
use capnp::traits::HasTypeId;
use futures::FutureExt;
use rpc_core::layer::Stack;
use rpc_core::{Code, RpcError};
use schema::object_capnp::{handler, object};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::{Rc, Weak};

/// A Durable Object class written by the user.
pub trait Class: Sized + 'static {
    /// The class's generated client (e.g. `counter::Client`), which serves `Self`.
    type Client: FromServer<Self> + FromClientHook + HasTypeId;

    /// The interfaces of the class's schema file, as `dotdo codegen` writes them
    /// (`counter_interfaces::INTERFACES`): registered when the class is, so tokens
    /// check the `$scope` of its methods (a method the server does not know needs an
    /// admin token) and logs and metrics name them.
    const INTERFACES: &'static [schema::InterfaceDesc] = &[];

    /// SQL statements that create or change the class's own tables, run once each, in
    /// order, before the first instance is created (a statement added later runs at the
    /// next load). They may touch only the class's own tables.
    const MIGRATIONS: &'static [&'static str] = &[];

    /// Indexes on the object's Things, as `storage.index` takes them (JSON: `"age"`, or
    /// `{"name": "byEmail", "fields": ["email"], "unique": true}`): created at each load
    /// when missing, rebuilt when a declaration's fields change. Indexes created at run
    /// time under other names stay.
    const INDEXES: &'static [&'static str] = &[];

    /// Event patterns (`Order.*`, `*.created`) whose events the object's log receives
    /// and [`Class::on_event`] handles, inside the object. Subscribed whenever the
    /// object is loaded, so events sent by schedules after a restart reach it too.
    const EVENTS: &'static [&'static str] = &[];

    /// Builds the instance of a live object (each time it is loaded).
    fn create(ctx: Context) -> Result<Self, RpcError>;

    /// Handles one event matching [`Class::EVENTS`]. An error or a panic is logged and
    /// leaves the object running.
    fn on_event(self: Rc<Self>, event: Event) -> impl Future<Output = Result<(), RpcError>> + 'static {
        let _ = event;
        async { Ok(()) }
    }

    /// Registers the class's workflows (see [`crate::workflow`]): each is started over
    /// RPC with `object.workflow().start(name, input)` or from the class with
    /// [`Context::start_workflow`], and survives crashes and restarts.
    fn workflows(workflows: &mut crate::workflow::Workflows<Self>) {
        let _ = workflows;
    }

    /// Runs when the alarm set with [`Context::set_alarm`] comes due (also after a
    /// restart or an eviction: the object is loaded for it). An error or a panic is
    /// logged and leaves the object running.
    fn on_alarm(self: Rc<Self>) -> impl Future<Output = Result<(), RpcError>> + 'static {
        async { Ok(()) }
    }
}

/// How an object reaches other objects of its host (its namespace).
pub trait Peers {
    /// A capability to the object named `(class, name)` in this object's namespace;
    /// calls on it pipeline like any other.
    fn object(&self, class: &str, name: &str) -> Result<object::Client, RpcError>;
}

/// A class's reactions, with its type erased (for the host's alarm callback).
pub trait ClassHooks {
    /// The class's alarm handler, as a task for the object's thread.
    fn on_alarm(&self) -> crate::host::Task;
}

/// A live object's capability and alarm callback, as the host keeps them.
pub struct Instance {
    /// The object's capability: the class's methods and the base `Object` ones.
    pub client: capnp::capability::Client,
    /// What to run when its alarm fires.
    pub alarm: AlarmCallback,
}

/// Builds an instance of the class registered under a name; a plain `fn`, so a host
/// can keep a table of them on any thread.
pub type ClassFactory = fn(&str, ObjectParts, &Stack) -> Result<Instance, RpcError>;

/// The factory of the built-in class: `Object` and its modules and nothing else.
pub fn builtin(_class: &str, parts: ObjectParts, stack: &Stack) -> Result<Instance, RpcError> {
    let (server, alarm) = crate::object::ObjectServer::new(&parts)?;
    Ok(Instance { client: stack.server::<object::Client, _>(server).client, alarm })
}

/// The factory of the class `C`.
pub fn factory<C: Class>() -> ClassFactory {
    instantiate::<C>
}

struct Hooks<C: Class> {
    instance: Weak<C>,
    class: Rc<str>,
}

/// A reaction of the class, started.
type Reaction = Pin<Box<dyn Future<Output = Result<(), RpcError>>>>;

/// Runs a reaction of the class, logging an error or a panic.
fn guarded(class: Rc<str>, what: &'static str, run: Option<Reaction>) -> crate::host::Task {
    Box::pin(async move {
        let Some(run) = run else { return };
        match AssertUnwindSafe(run).catch_unwind().await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(class = %class, handler = what, code = e.code.as_str(), error = %e.message, "a class handler failed");
            }
            Err(p) => {
                tracing::error!(class = %class, handler = what, panic = %route::panic_message(&*p), "a class handler panicked");
            }
        }
    })
}

impl<C: Class> ClassHooks for Hooks<C> {
    fn on_alarm(&self) -> crate::host::Task {
        let run = self.instance.upgrade().map(|i| Box::pin(i.on_alarm()) as Reaction);
        guarded(self.class.clone(), "on_alarm", run)
    }
}

/// Delivers the object's events to the class's `on_event`, as a subscriber of its log.
struct EventHandler<C: Class> {
    hooks: Rc<Hooks<C>>,
}

impl<C: Class> handler::Server for EventHandler<C> {
    async fn handle(
        self: capnp::capability::Rc<Self>,
        params: handler::HandleParams,
        _: handler::HandleResults,
    ) -> capnp::Result<()> {
        let e = params.get()?.get_event()?;
        let type_ = rpc_core::params::text(e.get_type())?;
        let (noun, verb) = type_.split_once('.').unwrap_or((&type_, ""));
        let event = Event {
            id: rpc_core::params::text(e.get_id())?,
            seq: e.get_seq(),
            noun: noun.to_string(),
            verb: verb.to_string(),
            data: rpc_core::params::text(e.get_data())?,
            timestamp: e.get_timestamp(),
            source: rpc_core::params::text(e.get_source())?,
        };
        let run = self.hooks.instance.upgrade().map(|i| Box::pin(i.on_event(event)) as Reaction);
        guarded(self.hooks.class.clone(), "on_event", run).await;
        Ok(())
    }
}

const MIGRATIONS_KEY: &str = "class_migrations";

/// Runs the class's migrations not yet applied, in one transaction.
fn migrate(parts: &ObjectParts, class: &str, migrations: &[&str]) -> Result<(), RpcError> {
    let sql = &parts.sql;
    sql.transaction(&mut || {
        let rows = sql.query("SELECT value FROM dotdo_meta WHERE key = ?", &[SqlValue::Text(MIGRATIONS_KEY.into())])?;
        let applied = rows.first().and_then(|r| r.first()).and_then(SqlValue::as_i64).unwrap_or(0);
        let applied = usize::try_from(applied).unwrap_or(0);
        if applied >= migrations.len() {
            return Ok(());
        }
        for (i, m) in migrations.iter().enumerate().skip(applied) {
            sql.class_sql(m, &[], false).map_err(|e| {
                RpcError::new(e.code, format!("migration {} of class {class} failed: {}", i + 1, e.message))
            })?;
        }
        sql.execute(
            "INSERT INTO dotdo_meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
            &[SqlValue::Text(MIGRATIONS_KEY.into()), SqlValue::Integer(i64::try_from(migrations.len()).unwrap_or(0))],
        )?;
        Ok(())
    })
}

/// A schedule whose action is `<Class>.<method>` calls that method of the class (with
/// default parameters) at each run, besides sending the event.
fn schedule_calls<C: Class>(parts: &ObjectParts, class: &str, instance: &Rc<C>) {
    let interface_id = <C::Client as HasTypeId>::TYPE_ID;
    let (class, env, weak) = (Rc::<str>::from(class), parts.env.clone(), Rc::downgrade(instance));
    parts.scheduler.on_run(Rc::new(move |event: &Event| {
        if *event.noun != *class {
            return;
        }
        let Some(method) =
            schema::interface(interface_id).and_then(|i| i.methods.iter().find(|m| m.name == event.verb))
        else {
            return;
        };
        let Some(instance) = weak.upgrade() else { return };
        let client: C::Client = capnp_rpc::new_client_from_rc(instance);
        let call = client.into_client_hook().new_call(interface_id, method.ordinal, None).send().promise;
        let run: Reaction = Box::pin(async move { call.await.map(|_| ()).map_err(RpcError::from) });
        env.spawn(guarded(class.clone(), "scheduled method", Some(run)));
    }));
}

/// Registers the class's workflows with the object's engine, bound to the instance.
fn register_workflows<C: Class>(parts: &ObjectParts, instance: &Rc<C>) -> Result<(), RpcError> {
    let mut workflows = crate::workflow::Workflows::new();
    C::workflows(&mut workflows);
    for (name, f) in workflows.entries {
        let weak = Rc::downgrade(instance);
        parts.engine.register(
            &name,
            Rc::new(move |flow: crate::workflow::Flow, input| match weak.upgrade() {
                Some(instance) => f(instance, flow, input),
                // Unloaded: this drive ends and the run replays on the next load.
                None => {
                    Box::pin(
                        async move { flow.abort(&RpcError::new(Code::Disconnected, "the object was unloaded")).await },
                    )
                }
            }),
        )?;
    }
    Ok(())
}

fn instantiate<C: Class>(class: &str, parts: ObjectParts, stack: &Stack) -> Result<Instance, RpcError> {
    migrate(&parts, class, C::MIGRATIONS)?;
    parts
        .storage_server
        .declare_indexes(C::INDEXES)
        .map_err(|e| RpcError::new(e.code, format!("an index of class {class}: {}", e.message)))?;
    let patterns = C::EVENTS.iter().map(|p| Pattern::parse(p)).collect::<Result<Vec<_>, _>>()?;
    let base: object::Client = capnp_rpc::new_client(parts.object_server());
    let ctx = Context::new(&parts);
    let instance = match std::panic::catch_unwind(AssertUnwindSafe(|| C::create(ctx))) {
        Ok(r) => Rc::new(r?),
        Err(p) => {
            let message = route::panic_message(&*p);
            tracing::error!(class, panic = %message, "a class's create panicked");
            return Err(RpcError::new(Code::Internal, format!("class {class} could not be created (it panicked)")));
        }
    };
    let hooks = Rc::new(Hooks::<C> { instance: Rc::downgrade(&instance), class: class.into() });
    for pattern in patterns {
        let handler: handler::Client = capnp_rpc::new_client(EventHandler { hooks: hooks.clone() });
        parts.hub.subscribe(pattern, handler)?;
    }
    schedule_calls::<C>(&parts, class, &instance);
    register_workflows::<C>(&parts, &instance)?;
    let alarm = parts.alarm_callback(Some(hooks));
    let user: C::Client = capnp_rpc::new_client_from_rc(instance.clone());
    let raw: C::Client = capnp_rpc::new_client_from_rc(instance);
    // Durable calls reach the class inside its panic guard, outside the host's output
    // gate (the receiver holds the commit itself).
    let guarded = Stack::new().layer(route::CatchPanics::new(class));
    parts.receiver.set_class(
        <C::Client as HasTypeId>::TYPE_ID,
        capnp::capability::Client::new(guarded.hook(raw.into_client_hook())),
    );
    parts.engine.resume()?;
    let stack = stack.clone().layer(route::RouteBase::new(base)).layer(route::CatchPanics::new(class));
    let client = capnp::capability::Client::new(stack.hook(user.into_client_hook()));
    Ok(Instance { client, alarm })
}
