//! The broker on Cloudflare: one Durable Object per namespace (`DotdoBroker`, found by
//! `idFromName(namespace)`) holds the namespace's broker state (the signing keys from
//! the Worker's secrets, the revoked token ids in its own database) and serves
//! `broker.capnp:Broker` to each dial, with the credential the dial carries deciding
//! its admin rights, as `gateway.broker(apiKey)` does natively. A redeemed capability
//! is the target object (reached from here over [`crate::peers`]) inside rpc-broker's
//! membrane, so every call through it is checked here against the token and the
//! revocations, in one place for every Worker isolate.
//!
//! Secrets (`wrangler secret put`, or an env file locally): `DOTDO_TOKEN_KEYS`
//! (`kid:secret,...`, as natively; none: minting and redeeming are SECRET_REQUIRED, there
//! is no default key), `DOTDO_TOKEN_ACTIVE_KEY`, `DOTDO_ADMIN_KEY`.

use crate::hop;
use crate::peers::CfPeers;
use do_modules::class::Peers;
use rpc_broker::broker::{Opened, Resolve, DEFAULT_MAX_SHARDS};
use rpc_broker::revocations::{RevocationStore, Revocations};
use rpc_broker::token::KeyRing;
use rpc_broker::{BrokerConfig, BrokerServer, BrokerState};
use rpc_core::layer::{Stack, TagErrors};
use rpc_core::{ident, Code, Limits, RpcError};
use schema::broker_capnp::broker;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, SqlStorage, State};

/// The header carrying a broker dial's credential (an admin API key or admin token).
pub const CREDENTIAL_HEADER: &str = "x-dotdo-credential";

/// The revocation store of a broker object: the `revoked` table of its database.
#[derive(Debug)]
struct CfRevocations(SqlStorage);

impl RevocationStore for CfRevocations {
    fn persist(&self, token_id: &str, at: i64) -> std::result::Result<(), RpcError> {
        let values = vec![token_id.into(), worker::SqlStorageValue::Integer(at)];
        self.0
            .exec("INSERT OR IGNORE INTO revoked (token_id, at) VALUES (?, ?)", values)
            .map_err(|e| RpcError::new(Code::Internal, format!("the revocation was not written: {e}")))?;
        Ok(())
    }
}

/// The Durable Object class of the brokers (`wrangler.toml` binds it as
/// [`crate::BROKER_BINDING`]).
#[durable_object]
pub struct DotdoBroker {
    state: State,
    env: Env,
    broker: RefCell<Option<Arc<BrokerState>>>,
}

/// A secret (or, locally, a plain variable) of the Worker.
fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name).map(|s| s.to_string()).or_else(|_| env.var(name).map(|v| v.to_string())).ok()
}

impl DotdoBroker {
    /// The broker's state, built on first use.
    fn broker(&self) -> std::result::Result<Arc<BrokerState>, RpcError> {
        if let Some(b) = self.broker.borrow().as_ref() {
            return Ok(b.clone());
        }
        let keys = match secret(&self.env, "DOTDO_TOKEN_KEYS") {
            Some(spec) => KeyRing::parse(&spec, secret(&self.env, "DOTDO_TOKEN_ACTIVE_KEY").as_deref())?,
            None => KeyRing::default(),
        };
        let sql = self.state.storage().sql();
        let internal = |e: worker::Error| RpcError::new(Code::Internal, format!("the revocation store failed: {e}"));
        sql.exec("CREATE TABLE IF NOT EXISTS revoked (token_id TEXT PRIMARY KEY, at INTEGER NOT NULL)", None)
            .map_err(internal)?;
        let mut revoked = Vec::new();
        for row in sql.exec("SELECT token_id FROM revoked", None).map_err(internal)?.raw() {
            if let Some(worker::SqlStorageValue::String(id)) = row.map_err(internal)?.into_iter().next() {
                revoked.push(id);
            }
        }
        let config = BrokerConfig {
            keys,
            admin_key: secret(&self.env, "DOTDO_ADMIN_KEY"),
            db_path: Default::default(),
            call_timeout: Limits::default().call_timeout,
            require_tokens: false,
            max_shards: DEFAULT_MAX_SHARDS,
        };
        let revocations = Arc::new(Revocations::with_store(revoked, Box::new(CfRevocations(sql))));
        let broker = BrokerState::with_revocations(config, revocations);
        *self.broker.borrow_mut() = Some(broker.clone());
        Ok(broker)
    }

    fn accept_dial(&self, req: &Request) -> std::result::Result<Response, RpcError> {
        let headers = req.headers();
        let namespace = headers.get(hop::NAMESPACE_HEADER).ok().flatten().unwrap_or_default();
        ident::namespace(&namespace)?;
        let internal = |e: worker::Error| RpcError::new(Code::Internal, e.to_string());
        let brokers = self.env.durable_object(crate::BROKER_BINDING).map_err(internal)?;
        if brokers.id_from_name(&namespace).map_err(internal)?.to_string() != self.state.id().to_string() {
            return Err(RpcError::invalid_argument("the dial names another namespace's broker"));
        }
        let state = self.broker()?;
        let credential = headers.get(CREDENTIAL_HEADER).ok().flatten().unwrap_or_default();
        let admin = state.admin(&credential);
        let objects = self.env.durable_object(crate::OBJECTS_BINDING).map_err(internal)?;
        // This session's connections to the objects it redeems, closed with it.
        let peers = Rc::new(CfPeers::new(namespace.clone(), objects));
        let resolve: Resolve =
            Rc::new(move |class: &str, name: &str| Ok(Opened { object: peers.object(class, name)?, hold: None }));
        let server = BrokerServer::new(state, admin, namespace, resolve);
        let client = Stack::new().layer(TagErrors).server::<broker::Client, _>(server);
        crate::socket::accept(req, "the broker is reached over a WebSocket", |socket| {
            hop::serve(socket, client.client, Limits::default());
        })
    }
}

impl DurableObject for DotdoBroker {
    fn new(state: State, env: Env) -> Self {
        DotdoBroker { state, env, broker: RefCell::new(None) }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match self.accept_dial(&req) {
            Ok(r) => Ok(r),
            Err(e) => crate::routes::error_response(&e),
        }
    }
}

/// Dials the broker of `namespace` with `credential`.
pub fn dial(env: &Env, namespace: &str, credential: &str) -> std::result::Result<hop::Hop, RpcError> {
    let brokers = env
        .durable_object(crate::BROKER_BINDING)
        .map_err(|e| RpcError::new(Code::Internal, format!("the Worker has no broker binding: {e}")))?;
    let headers = vec![(hop::NAMESPACE_HEADER, namespace.to_string()), (CREDENTIAL_HEADER, credential.to_string())];
    Ok(hop::dial(brokers, namespace.to_string(), headers))
}
