//! The bootstrap capability of every session (`session.capnp:Gateway`):
//! negotiation, discovery and the getters that hand out capabilities.

use crate::demo::DirectoryServer;
use crate::host::registry::ObjectHost;
use crate::session_objects::SessionObjects;
use capnp::capability::Rc;
use do_modules::wrap_modules::WrapModules;
use rpc_broker::{BrokerServer, BrokerState};
use rpc_core::layer::Stack;
use rpc_core::negotiation::{negotiate, Offer, ServerProtocol};
use rpc_core::params::{text, texts};
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

fn set_strings(mut list: capnp::text_list::Builder<'_>, items: &[String]) {
    for (i, s) in items.iter().enumerate() {
        list.set(i as u32, s);
    }
}

impl gateway::Server for GatewayServer {
    async fn negotiate(
        self: Rc<Self>,
        params: gateway::NegotiateParams,
        mut results: gateway::NegotiateResults,
    ) -> capnp::Result<()> {
        let req = params.get()?.get_request()?;
        let offer = Offer {
            client_id: req.get_client_id()?.to_string().unwrap_or_default(),
            min_version: req.get_min_version(),
            max_version: req.get_max_version(),
            supported: texts(req.get_supported_features())?,
            required: texts(req.get_required_features())?,
        };
        let agreed = negotiate(&self.protocol, &offer)?;
        let mut out = results.get().init_result();
        out.set_version(agreed.version);
        out.set_client_id(&offer.client_id);
        out.set_session_id(&self.info.session_id);
        out.set_namespace(&self.info.namespace);
        set_strings(out.reborrow().init_enabled_features(agreed.enabled.len() as u32), &agreed.enabled);
        set_strings(out.init_available_features(agreed.available.len() as u32), &agreed.available);
        Ok(())
    }

    async fn describe(
        self: Rc<Self>,
        _: gateway::DescribeParams,
        mut results: gateway::DescribeResults,
    ) -> capnp::Result<()> {
        let interfaces = schema::interfaces();
        let mut list = results.get().init_interfaces(interfaces.len() as u32);
        for (i, desc) in interfaces.iter().enumerate() {
            let mut item = list.reborrow().get(i as u32);
            item.set_name(desc.name);
            item.set_id(desc.id);
            let mut methods = item.init_methods(desc.methods.len() as u32);
            for (j, m) in desc.methods.iter().enumerate() {
                let mut mi = methods.reborrow().get(j as u32);
                mi.set_name(m.name);
                mi.set_ordinal(m.ordinal);
            }
        }
        // The schemas the interfaces come from, each once (the built-in files share one).
        let mut schemas: Vec<&'static [u8]> = Vec::new();
        for desc in &interfaces {
            if !desc.schema.is_empty() && !schemas.iter().any(|s| std::ptr::eq(*s, desc.schema) || *s == desc.schema) {
                schemas.push(desc.schema);
            }
        }
        let mut list = results.get().init_schemas(schemas.len() as u32);
        for (i, s) in schemas.iter().enumerate() {
            list.set(i as u32, s);
        }
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
        results.get().set_directory(self.stack.server(DirectoryServer::new(self.stack.clone())));
        Ok(())
    }
}
