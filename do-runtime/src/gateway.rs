//! The bootstrap capability of every session (`session.capnp:Gateway`):
//! negotiation, discovery and the getters that hand out capabilities.

use crate::host::registry::ObjectHost;
use crate::session_objects::SessionObjects;
use capnp::capability::Rc;
use do_modules::wrap_modules::WrapModules;
use rpc_broker::{BrokerServer, BrokerState};
use rpc_core::layer::Stack;
use rpc_core::negotiation::ServerProtocol;
use rpc_core::params::text;
use rpc_core::{Code, RpcError};
use rpc_server::SessionInfo;
use schema::session_capnp::gateway;
use std::sync::Arc;

/// Serves `Gateway` for one session.
pub struct GatewayServer {
    info: SessionInfo,
    protocol: ServerProtocol,
    /// The session's layers, around every capability the gateway hands out.
    stack: Stack,
    broker: Arc<BrokerState>,
    /// The objects this session holds open.
    objects: SessionObjects,
}

impl GatewayServer {
    /// The gateway of the session described by `info`, reaching objects in `objects`.
    pub fn new(info: SessionInfo, objects: Arc<ObjectHost>, broker: Arc<BrokerState>) -> Self {
        // Objects' getters hand out their modules inside the session's layers too.
        let stack = info.stack().layer(WrapModules);
        let objects = SessionObjects::new(objects, stack.clone(), info.namespace.clone());
        GatewayServer { info, protocol: ServerProtocol::default(), stack, broker, objects }
    }

    /// Serves the gateway as a layered capability; a session in a namespace the host
    /// does not list ([`crate::HostConfig::namespaces`]) gets a gateway that refuses
    /// every call with NOT_FOUND.
    pub fn client(info: &SessionInfo, objects: Arc<ObjectHost>, broker: Arc<BrokerState>) -> gateway::Client {
        let listed = &objects.config.namespaces;
        if !listed.is_empty() && !listed.contains(&info.namespace) {
            let refusal =
                RpcError::new(Code::NotFound, format!("this server does not serve namespace {:?}", info.namespace));
            return capnp::capability::FromClientHook::cast_to(capnp_rpc::new_broken_cap(refusal.into()));
        }
        let server = GatewayServer::new(info.clone(), objects, broker);
        let stack = server.stack.clone();
        stack.server(server)
    }
}

impl gateway::Server for GatewayServer {
    async fn negotiate(
        self: Rc<Self>,
        params: gateway::NegotiateParams,
        mut results: gateway::NegotiateResults,
    ) -> capnp::Result<()> {
        rpc_core::bootstrap::negotiate(
            &self.protocol,
            &self.info.session_id,
            &self.info.namespace,
            &params,
            &mut results,
        )
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
        let p = params.get()?;
        if self.broker.require_tokens {
            return Err(RpcError::new(
                Code::Unauthorized,
                "this server requires capability tokens: use broker.redeem(token)",
            )
            .into());
        }
        let layered = self.objects.layered(&text(p.get_class())?, &text(p.get_name())?)?;
        results.get().set_object(layered);
        Ok(())
    }

    async fn broker(
        self: Rc<Self>,
        params: gateway::BrokerParams,
        mut results: gateway::BrokerResults,
    ) -> capnp::Result<()> {
        let key = params.get()?.get_api_key()?.to_string().unwrap_or_default();
        let admin = self.broker.admin(&key);
        let gateway = self.clone();
        let resolve: rpc_broker::broker::Resolve =
            Rc::new(move |class: &str, name: &str| gateway.objects.plain(class, name));
        let server = BrokerServer::new(self.broker.clone(), admin, self.info.namespace.clone(), resolve);
        results.get().set_broker(self.stack.server::<schema::broker_capnp::broker::Client, _>(server));
        Ok(())
    }

    async fn demo(self: Rc<Self>, _: gateway::DemoParams, mut results: gateway::DemoResults) -> capnp::Result<()> {
        results.get().set_directory(self.stack.server(crate::demo::directory(self.stack.clone())));
        Ok(())
    }
}
