//! `Object`: the capability of one Durable Object, whose getters hand out its modules.

use crate::events::{EventHub, EventsServer, Retention, SubscriberLimits};
use crate::host::{Alarm, Env, Sql};
use crate::schedule::server::{ScheduleServer, Scheduler};
use crate::storage::server::StorageServer;
use capnp::capability::Rc as CapRc;
use rpc_core::RpcError;
use schema::object_capnp::{events, object, schedule, storage};
use std::rc::Rc;

/// Who an object is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Derived from (namespace, class, name) alone.
    pub id: String,
    /// The namespace.
    pub namespace: String,
    /// The class.
    pub class: String,
    /// The name.
    pub name: String,
}

/// Serves `Object`: the same module capabilities to every caller.
pub struct ObjectServer {
    address: Address,
    storage: storage::Client,
    events: events::Client,
    schedule: schedule::Client,
}

/// What the host keeps of an object besides its capability: the way to wake it when
/// its alarm (set through [`Alarm`]) comes due.
#[derive(Clone)]
pub struct AlarmCallback {
    scheduler: Rc<Scheduler>,
}

impl AlarmCallback {
    /// Call when the object's alarm fires; returns how many schedules ran.
    pub fn fire(&self) -> Result<usize, RpcError> {
        self.scheduler.on_alarm()
    }
}

impl ObjectServer {
    /// Builds the object's modules over its database, keeping `retention` of its event
    /// log and bounding its event subscribers by `subscribers`; `wrap` turns each module server into a client (the host's layers: deadlines
    /// and typed errors). Also returns the callback the host runs when the object's alarm
    /// fires.
    pub fn new(
        address: Address,
        sql: Rc<dyn Sql>,
        env: Rc<dyn Env>,
        alarm: Rc<dyn Alarm>,
        retention: Retention,
        subscribers: SubscriberLimits,
        wrap: &dyn Fn(Module) -> capnp::capability::Client,
    ) -> Result<(Self, AlarmCallback), RpcError> {
        let hub = EventHub::with_limits(sql.clone(), env.clone(), address.id.clone(), retention, subscribers)?;
        let scheduler = Scheduler::new(sql.clone(), env.clone(), hub.clone(), alarm)?;
        let storage = StorageServer::new(sql, env, hub.clone())?;
        let storage = storage::Client { client: wrap(Module::Storage(storage)) };
        let events = events::Client { client: wrap(Module::Events(EventsServer::new(hub))) };
        let schedule = schedule::Client { client: wrap(Module::Schedule(ScheduleServer::new(scheduler.clone()))) };
        Ok((ObjectServer { address, storage, events, schedule }, AlarmCallback { scheduler }))
    }
}

/// A module server, for the host to wrap.
pub enum Module {
    /// The storage server.
    Storage(StorageServer),
    /// The events server.
    Events(EventsServer),
    /// The schedule server.
    Schedule(ScheduleServer),
}

impl object::Server for ObjectServer {
    async fn info(self: CapRc<Self>, _: object::InfoParams, mut results: object::InfoResults) -> capnp::Result<()> {
        let mut r = results.get();
        r.set_id(&self.address.id);
        r.set_namespace(&self.address.namespace);
        r.set_class(&self.address.class);
        r.set_name(&self.address.name);
        Ok(())
    }

    async fn storage(
        self: CapRc<Self>,
        _: object::StorageParams,
        mut results: object::StorageResults,
    ) -> capnp::Result<()> {
        results.get().set_storage(self.storage.clone());
        Ok(())
    }

    async fn events(
        self: CapRc<Self>,
        _: object::EventsParams,
        mut results: object::EventsResults,
    ) -> capnp::Result<()> {
        results.get().set_events(self.events.clone());
        Ok(())
    }

    async fn schedule(
        self: CapRc<Self>,
        _: object::ScheduleParams,
        mut results: object::ScheduleResults,
    ) -> capnp::Result<()> {
        results.get().set_schedule(self.schedule.clone());
        Ok(())
    }
}
