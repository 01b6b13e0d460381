//! `Object`: the capability of one Durable Object, whose getters hand out its modules.

use crate::events::{EventHub, EventsServer};
use crate::host::{Env, Sql};
use crate::storage::server::StorageServer;
use capnp::capability::Rc as CapRc;
use rpc_core::RpcError;
use schema::object_capnp::{events, object, storage};

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
}

impl ObjectServer {
    /// Builds the object's modules over its database; `wrap` turns each module server into
    /// a client (the host's layer: deadlines and typed errors).
    pub fn new(
        address: Address,
        sql: std::rc::Rc<dyn Sql>,
        env: std::rc::Rc<dyn Env>,
        wrap: &dyn Fn(Module) -> capnp::capability::Client,
    ) -> Result<Self, RpcError> {
        let hub = EventHub::new(sql.clone(), env.clone(), address.id.clone())?;
        let storage = StorageServer::new(sql, env, hub.clone())?;
        let storage = storage::Client { client: wrap(Module::Storage(storage)) };
        let events = events::Client { client: wrap(Module::Events(EventsServer::new(hub))) };
        Ok(ObjectServer { address, storage, events })
    }
}

/// A module server, for the host to wrap.
pub enum Module {
    /// The storage server.
    Storage(StorageServer),
    /// The events server.
    Events(EventsServer),
}

impl Module {
    /// A plain (unwrapped) client of this module.
    pub fn into_client(self) -> capnp::capability::Client {
        match self {
            Module::Storage(s) => capnp_rpc::new_client::<storage::Client, _>(s).client,
            Module::Events(s) => capnp_rpc::new_client::<events::Client, _>(s).client,
        }
    }
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
}
