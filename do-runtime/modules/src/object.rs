//! `Object`: the capability of one Durable Object, whose getters hand out its modules.

use crate::class::alarm::AlarmMux;
use crate::class::{ClassHooks, Peers};
use crate::events::{EventHub, EventsServer, Retention, SubscriberLimits};
use crate::host::{Alarm, Env, Sql, SqlValue};
use crate::kv::server::KvServer;
use crate::kv::Kv;
use crate::schedule::server::{ScheduleServer, Scheduler};
use crate::storage::server::StorageServer;
use crate::workflow::ai::Ai;
use crate::workflow::engine::{Engine, EngineParts, WorkflowLimits};
use crate::workflow::outbox::Receiver;
use crate::workflow::server::WorkflowServer;
use capnp::capability::Rc as CapRc;
use capnp::traits::HasTypeId;
use rpc_core::params::text;
use rpc_core::RpcError;
use schema::object_capnp::{events, kv, object, schedule, storage, workflow};
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
    kv: kv::Client,
    workflow: workflow::Client,
    receiver: Rc<Receiver>,
}

/// What the host keeps of an object besides its capability: the way to wake it when
/// its alarm (set through [`Alarm`]) comes due.
#[derive(Clone)]
pub struct AlarmCallback {
    scheduler: Rc<Scheduler>,
    engine: Rc<Engine>,
    mux: Rc<AlarmMux>,
    env: Rc<dyn Env>,
    class: Option<Rc<dyn ClassHooks>>,
}

impl AlarmCallback {
    /// Whether the object is doing work of its own (a workflow run being driven), so
    /// the host should not evict it even with no connection open.
    pub fn busy(&self) -> bool {
        self.engine.active_runs() > 0
    }

    /// Call when the object's alarm fires: runs the due schedules, wakes the due
    /// workflow runs and durable sends, then the class's alarm handler if its alarm is
    /// due (in the background, on the object's thread). Returns how many schedules ran.
    pub fn fire(&self) -> Result<usize, RpcError> {
        let ran = self.scheduler.on_alarm();
        let woke = self.engine.on_alarm();
        let class_due = self.mux.take_due_class_alarm(self.env.now_ms());
        if let (Ok(true), Some(class)) = (&class_due, &self.class) {
            self.env.spawn(class.on_alarm());
        }
        self.mux.refresh();
        class_due?;
        woke?;
        ran
    }
}

/// What one object is made of before a class is put on it: the host's parts and the
/// module servers built over them.
pub struct ObjectParts {
    /// Who the object is.
    pub address: Address,
    /// Its database.
    pub sql: Rc<dyn Sql>,
    /// Time, randomness, background work.
    pub env: Rc<dyn Env>,
    /// Its event log and subscribers.
    pub hub: Rc<EventHub>,
    /// Its schedules.
    pub scheduler: Rc<Scheduler>,
    /// Its one alarm, shared by the schedules and the class.
    pub mux: Rc<AlarmMux>,
    /// Its Things (the storage server, callable in-process).
    pub storage_server: StorageServer,
    /// The storage capability, wrapped by the host.
    pub storage: storage::Client,
    /// The events capability.
    pub events: events::Client,
    /// The schedule capability.
    pub schedule: schedule::Client,
    /// Its key-value entries.
    pub kv: Kv,
    /// The key-value capability.
    pub kv_cap: kv::Client,
    /// Its workflow engine.
    pub engine: Rc<Engine>,
    /// The workflow capability.
    pub workflow: workflow::Client,
    /// Where durable calls to it land.
    pub receiver: Rc<Receiver>,
    /// How it reaches other objects.
    pub peers: Rc<dyn Peers>,
}

/// The table that names the object in its own file (for tools such as `dotdo inspect`:
/// files are named by the object's id, a hash).
pub const ADDRESS_MIGRATION: &str =
    "CREATE TABLE IF NOT EXISTS dotdo_object (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID";

fn record_address(sql: &dyn Sql, address: &Address) -> Result<(), RpcError> {
    sql.execute(ADDRESS_MIGRATION, &[])?;
    let rows = sql.query("SELECT COUNT(*) FROM dotdo_object", &[])?;
    if rows.first().and_then(|r| r.first()).and_then(SqlValue::as_i64) == Some(4) {
        return Ok(());
    }
    for (k, v) in
        [("id", &address.id), ("namespace", &address.namespace), ("class", &address.class), ("name", &address.name)]
    {
        sql.execute(
            "INSERT INTO dotdo_object (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
            &[SqlValue::Text(k.into()), SqlValue::Text(v.clone())],
        )?;
    }
    Ok(())
}

/// What the host gives an object to build it.
pub struct HostParts {
    /// Its database.
    pub sql: Rc<dyn Sql>,
    /// Time, randomness, background work.
    pub env: Rc<dyn Env>,
    /// Its one alarm.
    pub alarm: Rc<dyn Alarm>,
    /// How much of its event log to keep.
    pub retention: Retention,
    /// Bounds on its event subscribers.
    pub subscribers: SubscriberLimits,
    /// How it reaches other objects.
    pub peers: Rc<dyn Peers>,
    /// The model of workflow cascades' AI tiers, if any.
    pub ai: Option<Rc<dyn Ai>>,
    /// Bounds on its workflows.
    pub workflow_limits: WorkflowLimits,
    /// Its hot tier: bytes of recently read Things kept in memory.
    pub hot: crate::storage::hot::HotConfig,
    /// The host's cold tier, if it has one (snapshots).
    pub cold: Option<Rc<dyn crate::host::Cold>>,
}

impl ObjectParts {
    /// Builds the object's modules over the host's parts; `wrap` turns each module
    /// server into a client (the host's layers: deadlines and typed errors).
    pub fn new(
        address: Address,
        host: HostParts,
        wrap: &dyn Fn(Module) -> capnp::capability::Client,
    ) -> Result<ObjectParts, RpcError> {
        let HostParts { sql, env, alarm, retention, subscribers, peers, ai, workflow_limits, hot, cold } = host;
        record_address(&*sql, &address)?;
        let hub = EventHub::with_limits(sql.clone(), env.clone(), address.id.clone(), retention, subscribers)?;
        let mux = AlarmMux::new(alarm, sql.clone())?;
        let scheduler = Scheduler::new(sql.clone(), env.clone(), hub.clone(), mux.schedules_side())?;
        let storage_server =
            StorageServer::new(sql.clone(), env.clone(), hub.clone(), hot)?.with_cold(cold, &address.id);
        let storage = storage::Client { client: wrap(Module::Storage(storage_server.clone())) };
        let events = events::Client { client: wrap(Module::Events(EventsServer::new(hub.clone()))) };
        let schedule = schedule::Client { client: wrap(Module::Schedule(ScheduleServer::new(scheduler.clone()))) };
        let kv = Kv::new(sql.clone())?;
        let kv_cap = kv::Client { client: wrap(Module::Kv(KvServer::new(kv.clone()))) };
        let engine = Engine::new(EngineParts {
            sql: sql.clone(),
            env: env.clone(),
            hub: hub.clone(),
            alarm: mux.workflows_side(),
            peers: peers.clone(),
            ai,
            object_id: address.id.clone(),
            limits: workflow_limits,
        })?;
        let workflow = workflow::Client { client: wrap(Module::Workflow(WorkflowServer::new(engine.clone()))) };
        // Durable calls reach the modules unwrapped: the receiver holds the commit itself.
        let modules: Vec<(&'static str, u64, capnp::capability::Client)> = vec![
            (
                "storage",
                storage::Client::TYPE_ID,
                capnp_rpc::new_client::<storage::Client, _>(storage_server.clone()).client,
            ),
            (
                "events",
                events::Client::TYPE_ID,
                capnp_rpc::new_client::<events::Client, _>(EventsServer::new(hub.clone())).client,
            ),
            (
                "schedule",
                schedule::Client::TYPE_ID,
                capnp_rpc::new_client::<schedule::Client, _>(ScheduleServer::new(scheduler.clone())).client,
            ),
            ("kv", kv::Client::TYPE_ID, capnp_rpc::new_client::<kv::Client, _>(KvServer::new(kv.clone())).client),
        ];
        let receiver = Receiver::new(sql.clone(), env.clone(), modules);
        Ok(ObjectParts {
            address,
            sql,
            env,
            hub,
            scheduler,
            mux,
            storage_server,
            storage,
            events,
            schedule,
            kv,
            kv_cap,
            engine,
            workflow,
            receiver,
            peers,
        })
    }

    /// The base `Object` server of these parts.
    pub fn object_server(&self) -> ObjectServer {
        ObjectServer {
            address: self.address.clone(),
            storage: self.storage.clone(),
            events: self.events.clone(),
            schedule: self.schedule.clone(),
            kv: self.kv_cap.clone(),
            workflow: self.workflow.clone(),
            receiver: self.receiver.clone(),
        }
    }

    /// The alarm callback of these parts, waking `class` (if any) for its alarm.
    pub fn alarm_callback(&self, class: Option<Rc<dyn ClassHooks>>) -> AlarmCallback {
        AlarmCallback {
            scheduler: self.scheduler.clone(),
            engine: self.engine.clone(),
            mux: self.mux.clone(),
            env: self.env.clone(),
            class,
        }
    }
}

impl ObjectServer {
    /// The built-in object over `parts`: `Object` and its modules, no class of its own;
    /// with the callback the host runs when the object's alarm fires.
    pub fn new(parts: &ObjectParts) -> Result<(Self, AlarmCallback), RpcError> {
        parts.engine.resume()?;
        Ok((parts.object_server(), parts.alarm_callback(None)))
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
    /// The key-value server.
    Kv(KvServer),
    /// The workflow server.
    Workflow(WorkflowServer),
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

    async fn kv(self: CapRc<Self>, _: object::KvParams, mut results: object::KvResults) -> capnp::Result<()> {
        results.get().set_kv(self.kv.clone());
        Ok(())
    }

    async fn workflow(
        self: CapRc<Self>,
        _: object::WorkflowParams,
        mut results: object::WorkflowResults,
    ) -> capnp::Result<()> {
        results.get().set_workflow(self.workflow.clone());
        Ok(())
    }

    async fn deliver(
        self: CapRc<Self>,
        params: object::DeliverParams,
        mut results: object::DeliverResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let (key, method, args) = (text(p.get_key())?, text(p.get_method())?, text(p.get_args())?);
        let (result, duplicate) = self.receiver.deliver(&key, &method, &args).await?;
        let mut r = results.get();
        r.set_result(result);
        r.set_duplicate(duplicate);
        Ok(())
    }
}
