//! The object host and its module servers, and the `dotdo` server binary.
//!
//! Every session starts at a [`gateway::GatewayServer`]; the capabilities it hands out
//! are servers behind the RPC layer of `rpc-core`, never reached around it.
//!
//! ```no_run
//! // Serve on 127.0.0.1:8787 (HTTP: batch, WebSocket, health) and :8788 (TCP).
//! let running = do_runtime::Runtime::new(rpc_server::ServerConfig::default()).start().unwrap();
//! println!("listening on http://{}", running.server.http_addr);
//! running.server.wait();
//! ```

pub mod ai;
pub mod app;
pub mod cli;
pub mod codegen;
pub mod demo;
pub mod gateway;
pub mod host;
pub mod inspect;
pub mod logging;
#[cfg(feature = "cold")]
pub mod restore;
pub mod scaffold;
mod session_objects;
pub mod token_cli;

pub use ai::AiConfig;
pub use app::App;
pub use do_modules::class::Classes;
pub use do_modules::class::{Class, Context, Kv};
pub use do_modules::events::Event;
pub use do_modules::host::SqlValue;
pub use do_modules::object::Address;
pub use do_modules::workflow::{
    Answer, Answered, BreakerConfig, Cascade, Decision, EventMatch, Flow, RetryPolicy, StepOptions, Tier, WaitFor,
    WorkflowLimits, Workflows,
};
pub use host::clock::Clock;
pub use host::registry::{HostConfig, HostMetrics, ObjectHost, ObjectKey};
pub use rpc_broker::BrokerConfig;
use rpc_broker::BrokerState;
use rpc_server::{ServerConfig, ServerHandle};
use std::sync::Arc;

/// A dotdo server to start: where to listen, how objects are hosted, and the broker.
///
/// ```no_run
/// use do_runtime::{HostConfig, Runtime};
/// let running = Runtime::new(rpc_server::ServerConfig::default())
///     .host(HostConfig { data_dir: "/tmp/dotdo".into(), ..HostConfig::default() })
///     .start()
///     .unwrap();
/// println!("{} objects loaded", running.host_metrics.loads.load(std::sync::atomic::Ordering::Relaxed));
/// running.server.stop();
/// ```
#[derive(Debug, Clone)]
pub struct Runtime {
    /// Listeners, workers and limits.
    pub server: ServerConfig,
    /// The object host (objects under `./.dotdo` by default).
    pub host: HostConfig,
    /// The broker; `None` reads it from the environment ([`broker_from_env`], with a
    /// 5 s call timeout) when the runtime starts.
    pub broker: Option<BrokerConfig>,
    /// The classes served; by default the built-in class under every name.
    pub classes: Classes,
}

/// A started [`Runtime`].
pub struct Running {
    /// The listeners and workers; `stop` or `wait` on it.
    pub server: ServerHandle,
    /// The object host's counters (objects loaded, evicted, live, alarms fired).
    pub host_metrics: Arc<HostMetrics>,
}

impl Runtime {
    /// A runtime serving with `server`, the default host and the broker from the environment.
    pub fn new(server: ServerConfig) -> Self {
        Runtime { server, host: HostConfig::default(), broker: None, classes: Classes::default() }
    }

    /// Hosts objects as `host` says.
    #[must_use]
    pub fn host(mut self, host: HostConfig) -> Self {
        self.host = host;
        self
    }

    /// Runs the broker configured by `broker` instead of the environment's.
    #[must_use]
    pub fn broker(mut self, broker: BrokerConfig) -> Self {
        self.broker = Some(broker);
        self
    }

    /// Serves `classes` (see [`App`] for the usual way to list them).
    #[must_use]
    pub fn classes(mut self, classes: Classes) -> Self {
        self.classes = classes;
        self
    }

    /// Starts the object host, the broker and the listeners; every session bootstraps
    /// into a [`gateway::GatewayServer`].
    pub fn start(self) -> std::io::Result<Running> {
        let broker = match self.broker {
            Some(b) => b,
            None => broker_from_env(&self.host, std::time::Duration::from_secs(5))?,
        };
        let objects = ObjectHost::start_with(self.host, self.classes)?;
        let host_metrics = objects.metrics.clone();
        let broker = BrokerState::new(broker).map_err(std::io::Error::other)?;
        let shared = broker.clone();
        let server = rpc_server::start(
            self.server,
            Arc::new(move |info| gateway::GatewayServer::client(info, objects.clone(), shared.clone()).client),
        )?;
        let host = host_metrics.clone();
        server.metrics.set_extra(Arc::new(move |registry: &mut rpc_core::metrics::Registry| {
            broker.metrics.register(registry);
            host.register(registry);
        }));
        Ok(Running { server, host_metrics })
    }
}

/// The broker's configuration from the environment: keys from `DOTDO_TOKEN_KEY_FILE` or
/// `DOTDO_TOKEN_KEYS` (+ `DOTDO_TOKEN_ACTIVE_KEY`), the admin API key from
/// `DOTDO_ADMIN_KEY`, `DOTDO_REQUIRE_TOKENS`, revocations beside the objects.
pub fn broker_from_env(host: &HostConfig, call_timeout: std::time::Duration) -> std::io::Result<BrokerConfig> {
    let require_tokens = std::env::var("DOTDO_REQUIRE_TOKENS").is_ok_and(|v| v == "1" || v == "true");
    Ok(BrokerConfig {
        keys: rpc_broker::token::KeyRing::from_env().map_err(std::io::Error::other)?,
        admin_key: std::env::var("DOTDO_ADMIN_KEY").ok(),
        db_path: rpc_broker::revocations::default_path(&host.data_dir),
        call_timeout,
        require_tokens,
        max_shards: rpc_broker::broker::DEFAULT_MAX_SHARDS,
    })
}
