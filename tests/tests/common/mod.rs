//! A real dotdo server on 127.0.0.1 for each test, and client helpers.
#![allow(dead_code)]

use rpc_core::{Code, Limits, RpcError};
use rpc_server::{ServerConfig, ServerHandle};
use schema::demo_capnp::directory;
use schema::session_capnp::gateway;
use std::sync::atomic::Ordering;

/// A server on free loopback ports with `limits`.
pub fn server(limits: Limits) -> ServerHandle {
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        tcp_addr: Some("127.0.0.1:0".parse().expect("addr")),
        workers: 2,
        limits,
    };
    do_runtime::Runtime::new(config).start().expect("server starts").server
}

/// The three URLs of a server: WebSocket, HTTP batch, TCP.
pub fn urls(s: &ServerHandle) -> [String; 3] {
    let tcp = s.tcp_addr.expect("tcp listener");
    [format!("ws://{}/rpc", s.http_addr), format!("http://{}/rpc", s.http_addr), format!("tcp://{tcp}")]
}

/// A session on any of the three transports, for tests that run the same calls over
/// each: over HTTP it is one batch (sent when the test first waits).
pub struct AnySession {
    /// The server's gateway.
    pub bootstrap: rpc_client::api::session::Gateway,
}

/// Opens an [`AnySession`] on `url` (ws://, http:// or tcp://).
pub async fn connect_any(url: &str) -> Result<AnySession, RpcError> {
    Ok(AnySession { bootstrap: rpc_client::bootstrap(url).await? })
}

/// The demo directory of a session, pipelined (no round trip of its own).
pub fn directory(g: &gateway::Client) -> directory::Client {
    g.demo_request().send().pipeline.get_directory()
}

/// Reads `name/child` with a three-call pipelined chain.
pub async fn chain(dir: &directory::Client, name: &str, child: &str) -> Result<String, RpcError> {
    let mut open = dir.open_request();
    open.get().set_name(name);
    let mut sub = open.send().pipeline.get_file().child_request();
    sub.get().set_name(child);
    let resp = sub.send().pipeline.get_file().read_request().send().promise.await?;
    resp.get()?.get_text()?.to_string().map_err(|e| RpcError::new(Code::Internal, e.to_string()))
}

/// The error code of a failed call, or a panic if it did not fail.
pub fn code<T>(r: Result<T, impl Into<RpcError>>) -> Code {
    match r {
        Ok(_) => panic!("the call was expected to fail"),
        Err(e) => e.into().code,
    }
}

/// A counter of the server's metrics.
pub fn metric(s: &ServerHandle, f: impl Fn(&rpc_core::metrics::Metrics) -> &std::sync::atomic::AtomicU64) -> u64 {
    f(&s.metrics).load(Ordering::Relaxed)
}

/// A fresh, empty data directory for one test.
pub fn data_dir(name: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("dotdo-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the data directory");
    dir
}

/// A server whose objects live under `dir`.
pub fn object_server(
    dir: &std::path::Path,
    idle: std::time::Duration,
) -> (ServerHandle, std::sync::Arc<do_runtime::HostMetrics>) {
    object_server_with_clock(dir, idle, do_runtime::Clock::system())
}

/// A server whose objects live under `dir` and read the time from `clock` (a manual
/// clock lets a test move time instead of sleeping).
pub fn object_server_with_clock(
    dir: &std::path::Path,
    idle: std::time::Duration,
    clock: do_runtime::Clock,
) -> (ServerHandle, std::sync::Arc<do_runtime::HostMetrics>) {
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        tcp_addr: Some("127.0.0.1:0".parse().expect("addr")),
        workers: 2,
        limits: Limits::default(),
    };
    let host = do_runtime::HostConfig {
        data_dir: dir.to_path_buf(),
        threads: 2,
        idle_timeout: idle,
        clock,
        ..Default::default()
    };
    let running = do_runtime::Runtime::new(config).host(host).start().expect("server starts");
    (running.server, running.host_metrics)
}

/// Waits for `what` with a generous bound, so a broken signal fails the test instead of
/// hanging it.
pub async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}
