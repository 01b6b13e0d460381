//! `DotdoObject`: one dotdo object as a Durable Object. It learns who it is from the
//! first dial (the Worker's or a peer's headers, checked against its own id) and keeps
//! that in its database, so its alarm can load it after an eviction. Its class's
//! instance is built once per load over the host parts of [`crate::sql`] and
//! [`crate::host`]; each dial gets a session whose bootstrap is the instance.

use crate::hop::{self, Key};
use crate::host::{CfAlarm, CfEnv};
use crate::peers::CfPeers;
use crate::sql::CfSql;
use do_modules::host::{Sql, SqlValue};
use do_modules::object::{Address, AlarmCallback, HostParts, Module, ObjectParts, ADDRESS_MIGRATION};
use rpc_core::layer::{Stack, TagErrors};
use rpc_core::{Code, Limits, RpcError};
use schema::object_capnp::{events, kv, schedule, storage, workflow};
use std::cell::RefCell;
use std::rc::Rc;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

/// A loaded object: its capability and its alarm callback.
struct Live {
    key: Key,
    client: capnp::capability::Client,
    alarm: AlarmCallback,
}

/// The Durable Object class every dotdo object runs as (`wrangler.toml` binds it as
/// [`crate::OBJECTS_BINDING`], in a `new_sqlite_classes` migration).
#[durable_object]
pub struct DotdoObject {
    state: State,
    env: Env,
    live: RefCell<Option<Rc<Live>>>,
}

impl DotdoObject {
    /// The object, built on first use. `key` names it on a dial; without one (its
    /// alarm) the key recorded in its database does.
    fn load(&self, key: Option<Key>) -> std::result::Result<Rc<Live>, RpcError> {
        if let Some(live) = self.live.borrow().as_ref() {
            if let Some(k) = &key {
                if *k != live.key {
                    return Err(RpcError::invalid_argument("this Durable Object is another dotdo object"));
                }
            }
            return Ok(live.clone());
        }
        let storage = self.state.storage();
        let sql = Rc::new(CfSql::new(storage));
        let key = match key {
            Some(k) => {
                self.check_id(&k)?;
                k
            }
            None => recorded_key(&*sql)?
                .ok_or_else(|| RpcError::new(Code::NotFound, "this Durable Object has never held a dotdo object"))?,
        };
        let factory = crate::classes().resolve(&key.class)?;
        let stack = Stack::new().layer(TagErrors);
        let wrap = |m: Module| match m {
            Module::Storage(s) => stack.server::<storage::Client, _>(s).client,
            Module::Events(s) => stack.server::<events::Client, _>(s).client,
            Module::Schedule(s) => stack.server::<schedule::Client, _>(s).client,
            Module::Kv(s) => stack.server::<kv::Client, _>(s).client,
            Module::Workflow(s) => stack.server::<workflow::Client, _>(s).client,
        };
        let objects = self
            .env
            .durable_object(crate::OBJECTS_BINDING)
            .map_err(|e| RpcError::new(Code::Internal, format!("no objects binding: {e}")))?;
        let host = HostParts {
            sql,
            env: Rc::new(CfEnv),
            alarm: Rc::new(CfAlarm(Rc::new(self.state.storage()))),
            retention: Default::default(),
            subscribers: Default::default(),
            peers: Rc::new(CfPeers::new(key.namespace.clone(), objects)),
            ai: None,
            workflow_limits: Default::default(),
            hot: Default::default(),
            cold: None,
        };
        let address = Address {
            id: self.state.id().to_string(),
            namespace: key.namespace.clone(),
            class: key.class.clone(),
            name: key.name.clone(),
        };
        let parts = ObjectParts::new(address, host, &wrap)?;
        let instance = factory(&key.class, parts, &stack)?;
        let live = Rc::new(Live { key, client: instance.client, alarm: instance.alarm });
        *self.live.borrow_mut() = Some(live.clone());
        Ok(live)
    }

    /// A dial names the object this Durable Object is, or it is refused: the id is
    /// derived from the name, so a wrong name would store one object's data in another.
    fn check_id(&self, key: &Key) -> std::result::Result<(), RpcError> {
        let objects = self
            .env
            .durable_object(crate::OBJECTS_BINDING)
            .map_err(|e| RpcError::new(Code::Internal, format!("no objects binding: {e}")))?;
        let expected = objects
            .id_from_name(&key.durable_name())
            .map_err(|e| RpcError::new(Code::Internal, e.to_string()))?
            .to_string();
        if expected != self.state.id().to_string() {
            return Err(RpcError::invalid_argument("the dial names another object than this Durable Object"));
        }
        Ok(())
    }

    fn accept_dial(&self, req: &Request) -> std::result::Result<Response, RpcError> {
        let live = self.load(Some(Key::from_headers(req.headers())?))?;
        crate::socket::accept(req, "an object is reached over a WebSocket", |socket| {
            hop::serve(socket, live.client.clone(), Limits::default());
        })
    }
}

/// The key an object recorded when it was first loaded (`dotdo_object`).
fn recorded_key(sql: &dyn Sql) -> std::result::Result<Option<Key>, RpcError> {
    sql.execute(ADDRESS_MIGRATION, &[])?;
    let rows = sql.query("SELECT key, value FROM dotdo_object", &[])?;
    let get = |k: &str| {
        rows.iter()
            .find(|r| r.first().and_then(SqlValue::as_text) == Some(k))
            .and_then(|r| r.get(1).and_then(SqlValue::as_text))
            .map(str::to_string)
    };
    match (get("namespace"), get("class"), get("name")) {
        (Some(ns), Some(class), Some(name)) => Key::new(&ns, &class, &name).map(Some),
        _ => Ok(None),
    }
}

impl DurableObject for DotdoObject {
    fn new(state: State, env: Env) -> Self {
        DotdoObject { state, env, live: RefCell::new(None) }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match self.accept_dial(&req) {
            Ok(r) => Ok(r),
            Err(e) => crate::routes::error_response(&e),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let fired = self.load(None).and_then(|live| live.alarm.fire());
        match fired {
            Ok(_) => Response::ok(""),
            // Not retried by the platform: the object's own bookkeeping re-arms the alarm.
            Err(e) => {
                worker::console_error!("the object's alarm failed: {} {}", e.code.as_str(), e.message);
                Response::ok("")
            }
        }
    }
}
