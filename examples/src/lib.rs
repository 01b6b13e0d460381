//! Shared by the examples: a URL from the command line, or a dotdo server started in
//! this process on free loopback ports, so every example runs on its own.

use rpc_server::{ServerConfig, ServerHandle};

/// The server the examples talk to: `args[1]` (e.g. `ws://127.0.0.1:8787/rpc`) names one
/// already running; without it an embedded server starts on free ports.
pub struct Target {
    /// The URLs to run the example against.
    pub urls: Vec<String>,
    /// The embedded server, if one was started.
    pub server: Option<ServerHandle>,
}

/// Picks the URL(s) as described on [`Target`].
pub fn target() -> std::io::Result<Target> {
    if let Some(url) = std::env::args().nth(1) {
        return Ok(Target { urls: vec![url], server: None });
    }
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().expect("a literal socket address"),
        tcp_addr: Some("127.0.0.1:0".parse().expect("a literal socket address")),
        workers: 1,
        ..ServerConfig::default()
    };
    let data = std::env::temp_dir().join(format!("dotdo-example-{}", std::process::id()));
    let host = do_runtime::HostConfig { data_dir: data, ..Default::default() };
    let server = do_runtime::Runtime::new(config).host(host).start()?.server;
    let tcp = server.tcp_addr.expect("the config asks for a tcp listener");
    let urls = vec![
        format!("ws://{}/rpc", server.http_addr),
        format!("http://{}/rpc", server.http_addr),
        format!("tcp://{tcp}"),
    ];
    Ok(Target { urls, server: Some(server) })
}
