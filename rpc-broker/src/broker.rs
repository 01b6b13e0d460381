//! The broker capability: mint (admin), redeem (a token into a membrane around its
//! target), verify, revoke (admin, persisted), metrics, the shard router and fan-out
//! queries (admin).

use crate::fanout::merge;
use crate::membrane::{stack, Policy, Shared};
use crate::metrics::BrokerMetrics;
use crate::revocations::Revocations;
use crate::ring::ShardRing;
use crate::token::{KeyRing, MintRequest, Rights, Scope};
use capnp::capability::Rc as CapRc;
use do_modules::storage::query::Query;
use do_modules::storage::things::Thing;
use do_modules::wrap_modules::WrapModules;
use futures::StreamExt;
use rpc_core::layer::{Layer, Stack};
use rpc_core::params::now_ms;
use rpc_core::params::text;
use rpc_core::{Code, RpcError};
use schema::broker_capnp::broker;
use schema::object_capnp::object;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The default most shards a class may be split into ([`BrokerConfig::max_shards`]).
pub const DEFAULT_MAX_SHARDS: u32 = 64;

/// The target an admin token names.
pub const BROKER_TARGET: &str = "broker";

/// How the broker is set up.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Signing and verification keys (empty: minting and redeeming give SECRET_REQUIRED).
    pub keys: KeyRing,
    /// The API key that opens an admin broker (none: only admin tokens do).
    pub admin_key: Option<String>,
    /// Where revocations are kept (`broker.sqlite`): loaded into memory at start,
    /// written on every change.
    pub db_path: PathBuf,
    /// Deadline of each call through a membrane.
    pub call_timeout: Duration,
    /// Objects are reachable only through redeemed tokens (`gateway.object` is refused).
    pub require_tokens: bool,
    /// Most shards `shard` and `fanout` accept (each shard is an object with a SQLite
    /// file); more is LIMIT_EXCEEDED, 0 INVALID_ARGUMENT. Usually [`DEFAULT_MAX_SHARDS`].
    pub max_shards: u32,
}

/// What every session's broker shares.
#[derive(Debug)]
pub struct BrokerState {
    keys: RwLock<KeyRing>,
    admin_key: Option<String>,
    revocations: Arc<Revocations>,
    call_timeout: Duration,
    max_shards: u32,
    /// Objects are reachable only through redeemed tokens.
    pub require_tokens: bool,
    /// The broker's counters.
    pub metrics: Arc<BrokerMetrics>,
}

/// An object the broker opened: its capability, and a layer to put innermost around it
/// (the session's hold on the object's connection: every capability made with it, the
/// modules the object hands out included, keeps the connection open).
pub struct Opened {
    /// The object's capability.
    pub object: object::Client,
    /// The layer that holds the object open, if the resolver has one.
    pub hold: Option<Rc<dyn Layer>>,
}

/// Opens an object `Class/name` in the caller's namespace.
pub type Resolve = Rc<dyn Fn(&str, &str) -> Result<Opened, RpcError>>;

impl BrokerState {
    /// The shared state for `config`, with the revocations loaded from its store
    /// (INTERNAL when the store cannot be opened: tokens could not be revoked).
    #[cfg(feature = "native")]
    pub fn new(config: BrokerConfig) -> Result<Arc<BrokerState>, RpcError> {
        let revocations = Arc::new(Revocations::load(&config.db_path)?);
        Ok(BrokerState::with_revocations(config, revocations))
    }

    /// The shared state for `config` with `revocations` kept by the host (`db_path` is
    /// not used): a Cloudflare broker object keeps them in its own database.
    pub fn with_revocations(config: BrokerConfig, revocations: Arc<Revocations>) -> Arc<BrokerState> {
        Arc::new(BrokerState {
            keys: RwLock::new(config.keys),
            admin_key: config.admin_key.filter(|k| !k.is_empty()),
            revocations,
            call_timeout: config.call_timeout,
            max_shards: config.max_shards,
            require_tokens: config.require_tokens,
            metrics: Arc::new(BrokerMetrics::default()),
        })
    }

    /// The revoked token ids.
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.revocations
    }

    /// A shard count from a request, checked against the configured most.
    fn shards(&self, n: u32) -> Result<u32, RpcError> {
        match n {
            0 => Err(RpcError::invalid_argument("a class is split into at least one shard")),
            n if n > self.max_shards => Err(RpcError::new(
                Code::LimitExceeded,
                format!("{n} shards; this server allows at most {}", self.max_shards),
            )),
            n => Ok(n),
        }
    }

    fn keys(&self) -> Result<KeyRing, RpcError> {
        self.keys.read().map(|k| k.clone()).map_err(|_| RpcError::new(Code::Internal, "key ring poisoned"))
    }

    /// Verifies a token and checks it was not revoked (in memory: no I/O), counting
    /// rejections by reason.
    pub fn check_token(&self, token: &str) -> Result<Rights, RpcError> {
        let result = self.keys()?.verify(token, now_ms()).and_then(|r| {
            if self.revocations.is_revoked(&r.token_id) {
                Err(RpcError::new(Code::Revoked, format!("token {} was revoked", r.token_id)))
            } else {
                Ok(r)
            }
        });
        if let Err(e) = &result {
            tracing::debug!(code = e.code.as_str(), error = %e.message, "token rejected");
            self.metrics.token("rejected", e.code.as_str());
        }
        result
    }

    /// What `credential` makes of a broker: the admin API key opens everything; an admin
    /// token for the broker opens the admin methods its (possibly attenuated) method list
    /// allows (`broker.mint`, `broker.*`...); anything else opens none.
    pub fn admin(&self, credential: &str) -> Admin {
        if credential.is_empty() {
            return Admin::No;
        }
        if let Some(k) = &self.admin_key {
            // Constant time in the contents (subtle); only the length may show.
            if bool::from(subtle::ConstantTimeEq::ct_eq(k.as_bytes(), credential.as_bytes())) {
                return Admin::Key;
            }
        }
        match self.check_token(credential) {
            Ok(r) if r.target == BROKER_TARGET && r.scope == Scope::Admin => Admin::Token(Box::new(r)),
            _ => Admin::No,
        }
    }
}

/// What a session's broker may do beyond redeem and verify.
#[derive(Debug, Clone)]
pub enum Admin {
    /// Nothing more.
    No,
    /// Everything (the admin API key).
    Key,
    /// What this admin token's methods allow.
    Token(Box<Rights>),
}

/// Serves `Broker` for one session.
pub struct BrokerServer {
    state: Arc<BrokerState>,
    admin: Admin,
    namespace: String,
    resolve: Resolve,
}

impl BrokerServer {
    /// A broker for a session in `namespace`; `admin` says which admin methods (mint,
    /// revoke, shard, fanout) it may call.
    pub fn new(state: Arc<BrokerState>, admin: Admin, namespace: String, resolve: Resolve) -> Self {
        BrokerServer { state, admin, namespace, resolve }
    }

    fn require_admin(&self, what: &str) -> Result<(), RpcError> {
        let allowed = match &self.admin {
            Admin::Key => true,
            Admin::Token(r) => r.allows_method(&format!("broker.{what}")) && now_ms() < r.expires_at,
            Admin::No => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(RpcError::new(
                Code::Forbidden,
                format!("{what} needs an admin broker (an admin API key or admin token)"),
            ))
        }
    }

    fn open(&self, target: &str) -> Result<Opened, RpcError> {
        let (class, name) = target
            .split_once('/')
            .ok_or_else(|| RpcError::invalid_argument(format!("target {target:?} is not Class/name")))?;
        (self.resolve)(class, name)
    }
}

impl broker::Server for BrokerServer {
    async fn mint(
        self: CapRc<Self>,
        params: broker::MintParams,
        mut results: broker::MintResults,
    ) -> capnp::Result<()> {
        self.require_admin("mint")?;
        let r = params.get()?.get_request()?;
        let mut methods = Vec::new();
        for m in r.get_methods()? {
            methods.push(text(m)?);
        }
        let ttl = match r.get_ttl_ms() {
            0 => 3_600_000,
            t => t,
        };
        let req = MintRequest {
            target: text(r.get_target())?,
            methods,
            scope: Scope::parse(&text(r.get_scope())?)?,
            ttl_ms: ttl,
            subject: text(r.get_subject())?,
            namespace: self.namespace.clone(),
        };
        let token = self.state.keys()?.mint_new(&req, now_ms())?;
        self.state.metrics.token("minted", "ok");
        results.get().set_token(token);
        Ok(())
    }

    async fn redeem(
        self: CapRc<Self>,
        params: broker::RedeemParams,
        mut results: broker::RedeemResults,
    ) -> capnp::Result<()> {
        let p = params.get()?;
        let rights = self.state.check_token(&text(p.get_token())?)?;
        let target = rights.target.clone();
        if rights.namespace != self.namespace {
            self.state.metrics.token("rejected", Code::WrongTarget.as_str());
            return Err(RpcError::new(
                Code::WrongTarget,
                format!("the token is for namespace {}, not {}", rights.namespace, self.namespace),
            )
            .into());
        }
        let expected = text(p.get_target())?;
        if !expected.is_empty() && expected != target {
            self.state.metrics.token("rejected", Code::WrongTarget.as_str());
            return Err(RpcError::new(Code::WrongTarget, format!("the token is for {target}, not {expected}")).into());
        }
        let opened = self.open(&target)?;
        let policy = Policy { rights, target, now_ms, revocations: self.state.revocations.clone() };
        self.state.metrics.token("redeemed", "ok");
        let stack = stack(policy, self.state.call_timeout, self.state.metrics.clone(), opened.hold);
        results.get().set_object(stack.client(opened.object));
        Ok(())
    }

    async fn verify(
        self: CapRc<Self>,
        params: broker::VerifyParams,
        mut results: broker::VerifyResults,
    ) -> capnp::Result<()> {
        let r = self.state.check_token(&text(params.get()?.get_token())?)?;
        let mut c = results.get().init_claims();
        c.set_target(&r.target);
        let methods = r.methods();
        let mut list = c.reborrow().init_methods(methods.len() as u32);
        for (i, m) in methods.iter().enumerate() {
            list.set(i as u32, m);
        }
        c.set_scope(r.scope.as_str());
        c.set_expires_at(r.expires_at);
        c.set_issued_at(r.issued_at);
        c.set_subject(&r.subject);
        c.set_token_id(&r.token_id);
        c.set_key_id(&r.key_id);
        Ok(())
    }

    async fn revoke(self: CapRc<Self>, params: broker::RevokeParams, _: broker::RevokeResults) -> capnp::Result<()> {
        self.require_admin("revoke")?;
        let id = text(params.get()?.get_token_id())?;
        if id.is_empty() {
            return Err(RpcError::invalid_argument("revoke needs a token id").into());
        }
        // Refused by every membrane at once; answered once committed.
        self.state.revocations.revoke(&id, now_ms()).await?;
        Ok(())
    }

    async fn metrics(
        self: CapRc<Self>,
        _: broker::MetricsParams,
        mut results: broker::MetricsResults,
    ) -> capnp::Result<()> {
        results.get().set_text(self.state.metrics.render());
        Ok(())
    }

    async fn shard(
        self: CapRc<Self>,
        params: broker::ShardParams,
        mut results: broker::ShardResults,
    ) -> capnp::Result<()> {
        self.require_admin("shard")?;
        let p = params.get()?;
        let ring = ShardRing::new(self.state.shards(p.get_shards())?);
        let index = ring.shard_for(&text(p.get_key())?);
        let opened = self.open(&format!("{}/shard-{index}", text(p.get_class())?))?;
        // The object and the modules it hands out hold it open.
        let mut holding = Stack::new().layer(WrapModules);
        if let Some(hold) = opened.hold {
            holding = holding.layer(Shared(hold));
        }
        let object = holding.client(opened.object);
        let mut r = results.get();
        r.set_index(index);
        r.set_object(object);
        Ok(())
    }

    async fn fanout(
        self: CapRc<Self>,
        params: broker::FanoutParams,
        mut results: broker::FanoutResults,
    ) -> capnp::Result<()> {
        self.require_admin("fanout")?;
        let p = params.get()?;
        let (class, query, shards) = (text(p.get_class())?, text(p.get_query())?, self.state.shards(p.get_shards())?);
        let budget = p.get_budget().clamp(1, 64) as usize;
        // The storage module's own parser: a bad query fails here, before any shard is asked.
        let parsed = Query::parse(&query)?;
        let timeout = self.state.call_timeout;
        let calls = (0..shards).map(|i| {
            let opened = self.open(&format!("{class}/shard-{i}"));
            let query = query.clone();
            async move {
                let run = async {
                    // `opened` holds the shard's connection open until its answer is read.
                    let opened = opened?;
                    let storage = opened.object.storage_request().send().pipeline.get_storage();
                    let mut req = storage.query_request();
                    req.get().set_query(&query);
                    let resp = req.send().promise.await?;
                    resp.get()?.get_things()?.iter().map(Thing::read).collect::<Result<Vec<Thing>, RpcError>>()
                };
                #[cfg(feature = "native")]
                let r = match tokio::time::timeout(timeout, run).await {
                    Ok(r) => r,
                    Err(_) => Err(RpcError::new(Code::Timeout, format!("no answer within {timeout:?}"))),
                };
                // No timer: the host's own limits bound each shard's answer.
                #[cfg(not(feature = "native"))]
                let r = {
                    let _ = timeout;
                    run.await
                };
                (i, r)
            }
        });
        let outcomes: Vec<(u32, Result<Vec<Thing>, RpcError>)> =
            futures::stream::iter(calls).buffer_unordered(budget).collect().await;
        let mut pages = Vec::new();
        let mut failures = Vec::new();
        for (i, r) in outcomes {
            match r {
                Ok(things) => pages.push(things),
                Err(e) => failures.push(format!("shard-{i}: {e}")),
            }
        }
        failures.sort();
        let things = merge(pages, &parsed);
        let mut out = results.get();
        let mut list = out.reborrow().init_things(things.len() as u32);
        for (i, t) in things.iter().enumerate() {
            t.write(list.reborrow().get(i as u32));
        }
        let mut f = out.init_failures(failures.len() as u32);
        for (i, s) in failures.iter().enumerate() {
            f.set(i as u32, s);
        }
        Ok(())
    }
}
