//! What a class's instance gets from the object it lives in.

use super::alarm::AlarmMux;
use super::Peers;
use crate::events::{Event, EventHub};
use crate::host::{Env, Sql, SqlValue};
use crate::kv::Kv;
use crate::object::{Address, ObjectParts};
use crate::schedule::server::{Entry, Scheduler};
use crate::storage::rust_api::Things;
use capnp::capability::FromClientHook;
use rpc_core::RpcError;
use schema::object_capnp::{events, object, schedule, storage};
use std::rc::Rc;

/// The object a class instance lives in: its address, its modules (as plain Rust
/// handles and as capabilities to hand out), its key-value entries, its own SQL tables,
/// its alarm, the clock and the other objects of its namespace. Cheap to clone.
#[derive(Clone)]
pub struct Context {
    inner: Rc<Inner>,
}

struct Inner {
    address: Address,
    sql: Rc<dyn Sql>,
    env: Rc<dyn Env>,
    things: Things,
    hub: Rc<EventHub>,
    scheduler: Rc<Scheduler>,
    kv: Kv,
    alarm: Rc<AlarmMux>,
    storage: storage::Client,
    events: events::Client,
    schedule: schedule::Client,
    peers: Rc<dyn Peers>,
    engine: Rc<crate::workflow::Engine>,
}

impl Context {
    pub(crate) fn new(parts: &ObjectParts) -> Context {
        Context {
            inner: Rc::new(Inner {
                address: parts.address.clone(),
                sql: parts.sql.clone(),
                env: parts.env.clone(),
                things: Things::new(parts.storage_server.clone()),
                hub: parts.hub.clone(),
                scheduler: parts.scheduler.clone(),
                kv: parts.kv.clone(),
                alarm: parts.mux.clone(),
                storage: parts.storage.clone(),
                events: parts.events.clone(),
                schedule: parts.schedule.clone(),
                peers: parts.peers.clone(),
                engine: parts.engine.clone(),
            }),
        }
    }

    /// Who the object is: its id, namespace, class and name.
    pub fn address(&self) -> &Address {
        &self.inner.address
    }

    /// The object's clock: milliseconds since the Unix epoch (the host's clock, which a
    /// test can drive).
    pub fn now_ms(&self) -> i64 {
        self.inner.env.now_ms()
    }

    /// A random number from the host's secure source.
    pub fn random_u64(&self) -> u64 {
        self.inner.env.random_u64()
    }

    /// The object's Things, called in-process.
    pub fn storage(&self) -> &Things {
        &self.inner.things
    }

    /// The object's key-value entries.
    pub fn kv(&self) -> &Kv {
        &self.inner.kv
    }

    /// Records an event in the object's log (inside [`Context::transaction`], with the
    /// transaction) and delivers it to subscribers, the class's own handlers included,
    /// after the current call is done (not at all if its transaction rolled back).
    pub fn send_event(&self, type_: &str, data: &serde_json::Value) -> Result<Event, RpcError> {
        let event = self.inner.hub.record(type_, &data.to_string())?;
        let hub = self.inner.hub.clone();
        let published = event.clone();
        // Delivered after the current call (and its transaction) is done, if stored.
        self.inner.env.spawn(Box::pin(async move {
            if let Err(e) = hub.publish_if_committed(&published) {
                tracing::warn!(code = e.code.as_str(), error = %e.message, "cannot deliver a class's event");
            }
        }));
        Ok(event)
    }

    /// Adds a schedule: at each run of `spec` (cron or `every 5 minutes`...), the event
    /// `action` with `data` is sent, which the class's `on_event` receives when it
    /// lists a matching pattern (after a restart too).
    pub fn schedule(&self, spec: &str, action: &str, data: &serde_json::Value) -> Result<Entry, RpcError> {
        self.inner.scheduler.add(spec, action, &data.to_string(), None)
    }

    /// Cancels a schedule; whether it existed.
    pub fn cancel_schedule(&self, id: &str) -> Result<bool, RpcError> {
        self.inner.scheduler.cancel(id)
    }

    /// The object's schedules, soonest first.
    pub fn schedules(&self) -> Result<Vec<Entry>, RpcError> {
        self.inner.scheduler.list()
    }

    /// The storage capability, to hand to a client.
    pub fn storage_cap(&self) -> storage::Client {
        self.inner.storage.clone()
    }

    /// The events capability, to hand to a client.
    pub fn events_cap(&self) -> events::Client {
        self.inner.events.clone()
    }

    /// The schedule capability, to hand to a client.
    pub fn schedule_cap(&self) -> schedule::Client {
        self.inner.schedule.clone()
    }

    /// Runs `f` in one transaction over everything in the object's database (Things,
    /// key-value entries, the class's tables, events): committed when it returns `Ok`,
    /// rolled back when it returns `Err`. Nested calls join the outer transaction.
    pub fn transaction<R>(&self, f: impl FnOnce(&Context) -> Result<R, RpcError>) -> Result<R, RpcError> {
        let mut f = Some(f);
        let mut out = None;
        self.inner.sql.transaction(&mut || {
            let f = f.take().ok_or_else(|| RpcError::new(rpc_core::Code::Internal, "transaction body ran twice"))?;
            out = Some(f(self)?);
            Ok(())
        })?;
        out.ok_or_else(|| RpcError::new(rpc_core::Code::Internal, "transaction produced nothing"))
    }

    /// A read-only query on the class's own tables, its inputs as parameters. Writing,
    /// or reading the framework's tables, is FORBIDDEN.
    pub fn sql(&self, query: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>, RpcError> {
        self.inner.sql.class_sql(query, params, true)
    }

    /// A statement that writes the class's own tables (created by its migrations).
    pub fn execute(&self, statement: &str, params: &[SqlValue]) -> Result<(), RpcError> {
        self.inner.sql.class_sql(statement, params, false).map(|_| ())
    }

    /// Sets the object's alarm for the class (ms since the epoch), or clears it with
    /// `None`; [`super::Class::on_alarm`] runs when it comes due, even after a restart.
    pub fn set_alarm(&self, at_ms: Option<i64>) -> Result<(), RpcError> {
        self.inner.alarm.set_class_alarm(at_ms)
    }

    /// The class's alarm, if set.
    pub fn get_alarm(&self) -> Option<i64> {
        self.inner.alarm.class_alarm()
    }

    /// Another object of this namespace, as its base `Object` capability (usable at
    /// once: calls pipeline until it is loaded).
    pub fn object(&self, class: &str, name: &str) -> Result<object::Client, RpcError> {
        self.inner.peers.object(class, name)
    }

    /// Starts the class's workflow `name` with `input` as run `id` (empty: a new id);
    /// returns the run's id. As `Workflow.start` over RPC.
    pub fn start_workflow(&self, name: &str, input: &serde_json::Value, id: &str) -> Result<String, RpcError> {
        self.inner.engine.start(name, &input.to_string(), id)
    }

    /// The object's workflow engine (runs, results, cancel, history).
    pub fn workflows(&self) -> &Rc<crate::workflow::Engine> {
        &self.inner.engine
    }

    /// Sends `method(args)` to the object `(class, name)` of this namespace after
    /// `delay`, durably: recorded now (with the caller's transaction, if any), sent from
    /// the object's alarm, retried until acknowledged and deduplicated by the receiver
    /// on the key returned. `args`: a JSON array of positional arguments, or an object
    /// naming them.
    pub fn send_later(
        &self,
        class: &str,
        name: &str,
        method: &str,
        args: &serde_json::Value,
        delay: std::time::Duration,
    ) -> Result<String, RpcError> {
        let key = format!(
            "{}/send/{:016x}{:016x}",
            self.inner.address.id,
            self.inner.env.random_u64(),
            self.inner.env.random_u64()
        );
        crate::workflow::outbox::enqueue(&self.inner.engine, &key, class, name, method, args, delay)?;
        Ok(key)
    }

    /// Another object of this namespace, as the client of its class (`counter::Client`).
    pub fn object_as<C: FromClientHook>(&self, class: &str, name: &str) -> Result<C, RpcError> {
        Ok(self.object(class, name)?.client.cast_to::<C>())
    }
}
