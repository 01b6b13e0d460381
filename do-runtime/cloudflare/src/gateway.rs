//! The bootstrap capability of a session in the Worker (`session.capnp:Gateway`): the
//! same `negotiate` and `describe` answers and demo directory as `dotdo serve`,
//! `object(class, name)` reaching the object's Durable Object and `broker(key)` the
//! namespace's broker.

use crate::hop::{self, Hop, Key};
use capnp::capability::Rc;
use rpc_core::demo::DirectoryServer;
use rpc_core::layer::{Stack, TagErrors};
use rpc_core::negotiation::ServerProtocol;
use rpc_core::params::text;
use rpc_core::{Code, RpcError};
use schema::session_capnp::gateway;
use std::cell::RefCell;
use std::collections::HashMap;
use worker::Env;

/// What the Worker's `DOTDO_OPEN` variable must be for `gateway.object` to answer:
/// otherwise objects are reached only through `broker.redeem(token)`, as `dotdo serve
/// --require-tokens` does (the local run sets it; a deployment opts in).
pub const OPEN_VAR: &str = "DOTDO_OPEN";

/// Serves `Gateway` for one session.
pub struct Gateway {
    session_id: String,
    namespace: String,
    env: Env,
    open: bool,
    protocol: ServerProtocol,
    /// The session's connections to objects, one per object.
    hops: RefCell<HashMap<(String, String), Hop>>,
    /// The session's connections to its namespace's broker, one per credential.
    brokers: RefCell<HashMap<String, Hop>>,
}

impl Gateway {
    /// The gateway of a new session in `namespace`, as a layered capability.
    pub fn client(namespace: String, env: Env) -> gateway::Client {
        let open = env.var(OPEN_VAR).map(|v| v.to_string() == "1").unwrap_or(false);
        let session_id: String = crate::host::random_bytes::<8>().iter().map(|b| format!("{b:02x}")).collect();
        let server = Gateway {
            session_id,
            namespace,
            env,
            open,
            protocol: ServerProtocol::default(),
            hops: RefCell::default(),
            brokers: RefCell::default(),
        };
        Stack::new().layer(TagErrors).server(server)
    }

    fn open_object(&self, class: &str, name: &str) -> Result<schema::object_capnp::object::Client, RpcError> {
        let key = Key::new(&self.namespace, class, name)?;
        crate::classes().resolve(class)?;
        let mut hops = self.hops.borrow_mut();
        if let Some(hop) = hops.get(&(key.class.clone(), key.name.clone())) {
            return Ok(hop.object());
        }
        let objects = self
            .env
            .durable_object(crate::OBJECTS_BINDING)
            .map_err(|e| RpcError::new(Code::Internal, format!("the Worker has no objects binding: {e}")))?;
        let hop = hop::connect(objects, key.clone());
        hops.insert((key.class, key.name), hop.clone());
        Ok(hop.object())
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for hop in self.hops.get_mut().values().chain(self.brokers.get_mut().values()) {
            hop.close();
        }
    }
}

impl gateway::Server for Gateway {
    async fn negotiate(
        self: Rc<Self>,
        params: gateway::NegotiateParams,
        mut results: gateway::NegotiateResults,
    ) -> capnp::Result<()> {
        rpc_core::bootstrap::negotiate(&self.protocol, &self.session_id, &self.namespace, &params, &mut results)
    }

    async fn describe(
        self: Rc<Self>,
        _: gateway::DescribeParams,
        mut results: gateway::DescribeResults,
    ) -> capnp::Result<()> {
        rpc_core::bootstrap::describe(&mut results);
        Ok(())
    }

    async fn object(
        self: Rc<Self>,
        params: gateway::ObjectParams,
        mut results: gateway::ObjectResults,
    ) -> capnp::Result<()> {
        if !self.open {
            return Err(RpcError::new(
                Code::Unauthorized,
                format!("this Worker requires capability tokens: use broker.redeem(token) (or set the variable {OPEN_VAR}=1 to open objects to anyone who reaches it)"),
            )
            .into());
        }
        let p = params.get()?;
        let object = self.open_object(&text(p.get_class())?, &text(p.get_name())?)?;
        results.get().set_object(object);
        Ok(())
    }

    async fn broker(
        self: Rc<Self>,
        params: gateway::BrokerParams,
        mut results: gateway::BrokerResults,
    ) -> capnp::Result<()> {
        let credential = params.get()?.get_api_key()?.to_string().unwrap_or_default();
        let mut brokers = self.brokers.borrow_mut();
        let hop = match brokers.get(&credential) {
            Some(hop) => hop.clone(),
            None => {
                let hop = crate::broker::dial(&self.env, &self.namespace, &credential)?;
                brokers.insert(credential, hop.clone());
                hop
            }
        };
        results.get().set_broker(schema::broker_capnp::broker::Client { client: hop.client });
        Ok(())
    }

    async fn demo(self: Rc<Self>, _: gateway::DemoParams, mut results: gateway::DemoResults) -> capnp::Result<()> {
        let stack = Stack::new().layer(TagErrors);
        let directory = DirectoryServer::new(stack.clone(), |d| Box::pin(worker::Delay::from(d)));
        results.get().set_directory(stack.server(directory));
        Ok(())
    }
}
