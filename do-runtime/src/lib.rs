//! The object host and its module servers, and the `dotdo` server binary.
//!
//! Every session starts at a [`gateway::GatewayServer`]; the capabilities it hands out
//! are servers behind the RPC layer of `rpc-core`, never reached around it.
//!
//! ```no_run
//! // Serve on 127.0.0.1:8787 (HTTP: batch, WebSocket, health) and :8788 (TCP).
//! let server = do_runtime::serve(rpc_server::ServerConfig::default()).unwrap();
//! println!("listening on http://{}", server.http_addr);
//! server.wait();
//! ```

pub mod cli;
pub mod demo;
pub mod gateway;
pub mod host;
pub mod logging;
pub mod token_cli;

pub use host::clock::Clock;
pub use host::registry::{HostConfig, HostMetrics, ObjectHost};
pub use rpc_broker::BrokerConfig;
use rpc_broker::BrokerState;
use rpc_server::{ServerConfig, ServerHandle};
use std::sync::Arc;

/// Starts a dotdo server whose sessions bootstrap into a [`gateway::GatewayServer`],
/// with objects stored under `./.dotdo`.
pub fn serve(config: ServerConfig) -> std::io::Result<ServerHandle> {
    serve_with(config, HostConfig::default()).map(|(s, _)| s)
}

/// Like [`serve`], with the object host configured by `host` and the broker's keys from
/// the environment (`DOTDO_TOKEN_KEY_FILE` or `DOTDO_TOKEN_KEYS`, `DOTDO_ADMIN_KEY`);
/// also returns the host's counters (objects loaded, evicted, live).
pub fn serve_with(config: ServerConfig, host: HostConfig) -> std::io::Result<(ServerHandle, Arc<HostMetrics>)> {
    let broker = broker_from_env(&host, std::time::Duration::from_secs(5))?;
    serve_all(config, host, broker)
}

/// The broker's configuration from the environment: keys from `DOTDO_TOKEN_KEY_FILE` or
/// `DOTDO_TOKEN_KEYS` (+ `DOTDO_TOKEN_ACTIVE_KEY`), the admin API key from
/// `DOTDO_ADMIN_KEY`, revocations beside the objects.
pub fn broker_from_env(host: &HostConfig, call_timeout: std::time::Duration) -> std::io::Result<BrokerConfig> {
    let require_tokens = std::env::var("DOTDO_REQUIRE_TOKENS").is_ok_and(|v| v == "1" || v == "true");
    Ok(BrokerConfig {
        keys: rpc_broker::token::KeyRing::from_env().map_err(std::io::Error::other)?,
        admin_key: std::env::var("DOTDO_ADMIN_KEY").ok(),
        db_path: host.data_dir.join("broker.sqlite"),
        call_timeout,
        require_tokens,
    })
}

/// Like [`serve_with`], with the broker configured by `broker`.
pub fn serve_all(
    config: ServerConfig,
    host: HostConfig,
    broker: BrokerConfig,
) -> std::io::Result<(ServerHandle, Arc<HostMetrics>)> {
    let objects = ObjectHost::start(host)?;
    let metrics = objects.metrics.clone();
    let broker = BrokerState::new(broker);
    let shared = broker.clone();
    let server = rpc_server::start(
        config,
        Arc::new(move |info| gateway::GatewayServer::client(info, objects.clone(), shared.clone()).client),
    )?;
    let host = metrics.clone();
    server.metrics.set_extra(Arc::new(move |registry: &mut rpc_core::metrics::Registry| {
        broker.metrics.register(registry);
        host.register(registry);
    }));
    Ok((server, metrics))
}
