//! A real dotdo server on 127.0.0.1 for each test, and client helpers.
#![allow(dead_code)]

pub mod node;
pub mod recorder;
pub mod things;

use rpc_core::{Code, Limits, RpcError};
use rpc_server::{ServerConfig, ServerHandle};
use schema::demo_capnp::directory;
use schema::session_capnp::gateway;
use std::sync::atomic::Ordering;

/// A server on free loopback ports with `limits`, its objects in a directory of its own.
pub fn server(limits: Limits) -> ServerHandle {
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        tcp_addr: Some("127.0.0.1:0".parse().expect("addr")),
        workers: 2,
        limits,
    };
    let host = do_runtime::HostConfig { data_dir: data_dir("server"), ..Default::default() };
    do_runtime::Runtime::new(config).host(host).start().expect("server starts").server
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
    host_server(do_runtime::HostConfig {
        data_dir: dir.to_path_buf(),
        threads: 2,
        idle_timeout: idle,
        clock,
        ..Default::default()
    })
}

/// A server (HTTP and TCP on free loopback ports) hosting objects as `host` says, and
/// its host's counters.
pub fn host_server(host: do_runtime::HostConfig) -> (ServerHandle, std::sync::Arc<do_runtime::HostMetrics>) {
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        tcp_addr: Some("127.0.0.1:0".parse().expect("addr")),
        workers: 2,
        limits: Limits::default(),
    };
    let running = do_runtime::Runtime::new(config).host(host).start().expect("server starts");
    (running.server, running.host_metrics)
}

/// Waits for `what` with a generous bound, so a broken signal fails the test instead of
/// hanging it.
pub async fn within<T>(what: &str, f: impl std::future::IntoFuture<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(20), f.into_future())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Reads the code of a framed `Abort` message (its reason's `[CODE]` prefix).
pub fn abort_code(bytes: &[u8]) -> Code {
    let m = rpc_core::framing::decode(bytes, Default::default()).expect("a well-formed reply");
    let root: capnp_rpc::rpc_capnp::message::Reader = m.get_root().expect("root");
    let Ok(capnp_rpc::rpc_capnp::message::Abort(Ok(ex))) = root.which() else { panic!("expected an Abort") };
    let reason = ex.get_reason().expect("reason").to_string().expect("UTF-8 reason");
    RpcError::from_tagged(&reason).expect("a tagged reason").code
}

/// A raw WebSocket to the server's `/rpc`, with no session on top.
pub async fn raw_ws(s: &ServerHandle) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect(s.http_addr).await.expect("tcp");
    let (ws, _) =
        tokio_tungstenite::client_async(format!("ws://{}/rpc", s.http_addr), stream).await.expect("handshake");
    ws
}

/// Every transport of `s` still answers a three-call pipelined chain in a new session.
pub async fn still_serving(s: &ServerHandle) {
    for url in urls(s) {
        let session = connect_any(&url).await.expect("connect");
        assert_eq!(chain(&directory(&session.bootstrap), "x", "y").await.expect("chain"), "contents of x/y");
    }
}

/// Sends one raw HTTP/1.1 request and returns (status, body).
pub async fn http(s: &ServerHandle, method: &str, path: &str, ctype: &str, body: &[u8]) -> (u16, String) {
    http_to(&s.http_addr.to_string(), method, path, ctype, body).await
}

/// [`http`] to the server at `addr` (`host:port`).
pub async fn http_to(addr: &str, method: &str, path: &str, ctype: &str, body: &[u8]) -> (u16, String) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    raw_http_to(addr, &request).await
}

/// Sends raw bytes to the HTTP port and returns (status, body) of the answer.
pub async fn raw_http(s: &ServerHandle, request: &[u8]) -> (u16, String) {
    raw_http_to(&s.http_addr.to_string(), request).await
}

/// [`raw_http`] to the server at `addr`; a chunked body comes back joined.
pub async fn raw_http_to(addr: &str, request: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    c.write_all(request).await.expect("write");
    let mut out = Vec::new();
    c.read_to_end(&mut out).await.expect("read until the server closes");
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return (status, body.to_string());
    }
    let (mut joined, mut rest) = (String::new(), body);
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        joined.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    (status, joined)
}

/// The code of a JSON error body `{"code": ...}`.
pub fn json_code(body: &str) -> Code {
    let v: serde_json::Value = serde_json::from_str(body).expect("a JSON error body");
    Code::parse(v["code"].as_str().expect("a code")).expect("a known code")
}

/// `gateway.object(class, name).storage()`, pipelined.
pub fn storage_of(g: &gateway::Client, class: &str, name: &str) -> schema::object_capnp::storage::Client {
    let mut req = g.object_request();
    req.get().set_class(class);
    req.get().set_name(name);
    req.send().pipeline.get_object().storage_request().send().pipeline.get_storage()
}

/// A server with the token broker: objects under `dir`, signing keys `keys` (the
/// `kid:secret` list) with `active` the signing one, and `admin` as the admin key.
pub fn broker_server(dir: &std::path::Path, keys: &str, active: &str, admin: &str) -> ServerHandle {
    broker_server_with(dir, keys, active, admin, false)
}

/// [`broker_server`], requiring tokens for `gateway.object` if `require_tokens`.
pub fn broker_server_with(
    dir: &std::path::Path,
    keys: &str,
    active: &str,
    admin: &str,
    require_tokens: bool,
) -> ServerHandle {
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        tcp_addr: None,
        workers: 2,
        limits: Limits::default(),
    };
    let host = do_runtime::HostConfig { data_dir: dir.to_path_buf(), threads: 2, ..Default::default() };
    let broker = do_runtime::BrokerConfig {
        keys: rpc_broker::token::KeyRing::parse(keys, Some(active)).expect("keys"),
        admin_key: Some(admin.into()),
        db_path: dir.join("broker.sqlite"),
        call_timeout: std::time::Duration::from_secs(5),
        require_tokens,
        max_shards: 8,
    };
    do_runtime::Runtime::new(config).host(host).broker(broker).start().expect("server").server
}

/// The session's broker, with `key` as its API key (empty: none).
pub fn broker_of(g: &gateway::Client, key: &str) -> schema::broker_capnp::broker::Client {
    let mut req = g.broker_request();
    req.get().set_api_key(key);
    req.send().pipeline.get_broker()
}
