//! The dotdo server: an HTTP listener on 127.0.0.1 serving `POST /rpc` (batch),
//! `GET /rpc` (WebSocket upgrade), the same for Cap'n Web (JSON) at `/capnweb`, a page
//! at `GET /` and `GET /health`, and a TCP listener speaking the
//! plain Cap'n Proto stream, all handing sessions a bootstrap capability made by the
//! embedding program.
//!
//! Each worker thread runs a single-threaded runtime; a session lives on the worker
//! that accepted it (capabilities are `!Send`), and workers share the listeners.
//!
//! Every session runs inside a `tracing` span `session` (`id`, `transport`,
//! `namespace`); its end is logged with its outcome: `debug` when it ends cleanly or the
//! peer goes away, `warn` when the peer broke the protocol or a hard limit.
//!
//! # What a client cannot exhaust
//! - Connections: at most [`Limits::max_connections`] (HTTP and TCP together; by default
//!   three quarters of the descriptors above 64 of `RLIMIT_NOFILE`); the one over it is
//!   answered 503 (HTTP) or closed (TCP) and counted in `refused_connections`. Out of
//!   descriptors, accepting backs off (10 to 100 ms) instead of spinning, and open
//!   connections go on being served (see the `accept` module).
//! - Time: an HTTP request head must arrive within [`Limits::header_read_timeout`], a
//!   batch body within [`Limits::body_read_timeout`] (else 408 TIMEOUT); a streaming
//!   session with no frame either way for [`Limits::idle_timeout`] (at least the call
//!   timeout), or a frame unfinished after [`Limits::frame_read_timeout`], is closed
//!   with a TIMEOUT abort.
//! - Memory in partial frames: at most [`Limits::partial_frame_budget`] plus 64 KiB per
//!   connection (plus one 8 KiB WebSocket read) — with the defaults and a cap of
//!   `max_connections`, `256 MiB + 72 KiB × max_connections`. A session whose partial
//!   frame would pass it gets an OVERLOADED abort. Each session also holds its own state
//!   (about 19 KiB for an idle WebSocket session, measured with `scripts/load-idle.sh`),
//!   so the process stays under its base size + budget + ~92 KiB per connection: 700
//!   connections each holding a partial 32 MiB frame measured +310 MiB (bound 318 MiB).

mod accept;
mod capnweb;
mod page;

pub use accept::{open_files_limit, parse_limits};
mod auto_error;

use bytes::Bytes;
use capnp::capability::Promise;
use capnp_rpc::rpc_twoparty_capnp::Side;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, UPGRADE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rpc_core::batch;
use rpc_core::guard::Guard;
use rpc_core::metrics::Metrics;
use rpc_core::pump::{FrameIo, Pump, BATCH_CONTENT_TYPE, WS_SUBPROTOCOL};
use rpc_core::vat::{rpc_system, Link};
use rpc_core::wsframe::Role;
use rpc_core::{Code, Limits, RpcError};
use rpc_transport::budget::FrameBudget;
use rpc_transport::metered::Metered;
use rpc_transport::tcp::StreamFrames;
use rpc_transport::timeouts::Timeouts;
use rpc_transport::websocket::WsFrames;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tracing::Instrument;

/// Which transport a session arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// `GET /rpc` upgraded to a WebSocket.
    WebSocket,
    /// One `POST /rpc` batch.
    HttpBatch,
    /// The plain Cap'n Proto TCP stream.
    Tcp,
    /// `GET /capnweb`: Cap'n Web (JSON) over a WebSocket.
    CapnWeb,
    /// One `POST /capnweb` batch of Cap'n Web messages.
    CapnWebBatch,
}

/// What the bootstrap factory knows about a new session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The namespace from the Host header (`default` on TCP).
    pub namespace: String,
    /// A server-unique id for this session.
    pub session_id: String,
    /// The transport the session runs over.
    pub transport: TransportKind,
    /// The limits in force.
    pub limits: Limits,
    /// The server's counters, for the layers that record calls.
    pub metrics: Arc<Metrics>,
}

impl SessionInfo {
    /// The layers every capability this session hands out gets, outermost first: a
    /// trace event per call (`RUST_LOG=debug`), the server's call metrics, error tags,
    /// and the call deadline from the limits.
    pub fn stack(&self) -> rpc_core::layer::Stack {
        use rpc_core::layer::{Deadline, ObserveCalls, Stack, TagErrors, Trace};
        Stack::new()
            .layer(Trace::new(&self.session_id))
            .layer(ObserveCalls::new(self.metrics.clone()))
            .layer(TagErrors)
            .layer(Deadline::new(self.limits.call_timeout))
    }
}

/// Makes the bootstrap capability of each new session. Called on the worker thread
/// that runs the session.
pub type BootstrapFactory = Arc<dyn Fn(&SessionInfo) -> capnp::capability::Client + Send + Sync>;

/// Where and how to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The HTTP listener (batch, WebSocket, health); port 0 picks a free one.
    pub http_addr: SocketAddr,
    /// The TCP listener for native Cap'n Proto peers, if any.
    pub tcp_addr: Option<SocketAddr>,
    /// Worker threads (at least one).
    pub workers: usize,
    /// Limits applied to every session.
    pub limits: Limits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8787)),
            tcp_addr: Some(SocketAddr::from(([127, 0, 0, 1], 8788))),
            workers: std::thread::available_parallelism().map(std::num::NonZero::get).unwrap_or(2),
            limits: Limits::default(),
        }
    }
}

/// A running server.
pub struct ServerHandle {
    /// Where the HTTP listener is bound.
    pub http_addr: SocketAddr,
    /// Where the TCP listener is bound.
    pub tcp_addr: Option<SocketAddr>,
    /// The server's counters.
    pub metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl ServerHandle {
    /// Stops accepting, ends the workers and waits for them.
    pub fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Waits until the server stops (it runs until the process ends).
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

struct Shared {
    factory: BootstrapFactory,
    limits: Limits,
    metrics: Arc<Metrics>,
    next_session: AtomicU64,
    epoch: u64,
    connections: Arc<accept::Connections>,
    budget: Arc<FrameBudget>,
}

impl TransportKind {
    /// A short name for logs: `websocket`, `http-batch`, `tcp`, `capnweb` or
    /// `capnweb-batch`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::WebSocket => "websocket",
            TransportKind::HttpBatch => "http-batch",
            TransportKind::Tcp => "tcp",
            TransportKind::CapnWeb => "capnweb",
            TransportKind::CapnWebBatch => "capnweb-batch",
        }
    }
}

impl Shared {
    /// A streaming session's deadlines: the idle timeout is at least the call timeout,
    /// since a call in flight is answered within it.
    fn timeouts(&self) -> Timeouts {
        Timeouts { idle: self.limits.idle_timeout.max(self.limits.call_timeout), frame: self.limits.frame_read_timeout }
    }

    /// A new session's bootstrap capability, and the span its work runs in.
    fn session(&self, namespace: String, transport: TransportKind) -> (capnp::capability::Client, tracing::Span) {
        let n = self.next_session.fetch_add(1, Ordering::Relaxed);
        let info = SessionInfo {
            namespace,
            session_id: format!("{:x}-{n:x}", self.epoch),
            transport,
            limits: self.limits,
            metrics: self.metrics.clone(),
        };
        let span = tracing::info_span!(
            "session",
            id = %info.session_id,
            transport = transport.as_str(),
            namespace = %info.namespace,
        );
        let bootstrap = span.in_scope(|| (self.factory)(&info));
        (bootstrap, span)
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Binds the listeners and starts the workers.
pub fn start(config: ServerConfig, factory: BootstrapFactory) -> std::io::Result<ServerHandle> {
    let http = bind(config.http_addr)?;
    let tcp = config.tcp_addr.map(bind).transpose()?;
    let http_addr = http.local_addr()?;
    let tcp_addr = tcp.as_ref().map(std::net::TcpListener::local_addr).transpose()?;
    let metrics = Arc::new(Metrics::default());
    let epoch =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
    let shared = Arc::new(Shared {
        factory,
        limits: config.limits,
        metrics: metrics.clone(),
        next_session: AtomicU64::new(0),
        epoch,
        connections: accept::Connections::new(
            config.limits.max_connections.unwrap_or_else(accept::default_max_connections),
        ),
        budget: FrameBudget::new(config.limits.partial_frame_budget),
    });
    let (stop, stopped) = watch::channel(false);
    let mut threads = Vec::new();
    for i in 0..config.workers.max(1) {
        let http = http.try_clone()?;
        let tcp = tcp.as_ref().map(std::net::TcpListener::try_clone).transpose()?;
        let (shared, stopped) = (shared.clone(), stopped.clone());
        let t = std::thread::Builder::new().name(format!("dotdo-worker-{i}")).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(worker = i, error = %e, "worker could not start its runtime");
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, worker(http, tcp, shared, stopped));
        })?;
        threads.push(t);
    }
    Ok(ServerHandle { http_addr, tcp_addr, metrics, stop, threads })
}

async fn worker(
    http: std::net::TcpListener,
    tcp: Option<std::net::TcpListener>,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    use accept::{Acceptor, Protocol};
    let Ok(http) = tokio::net::TcpListener::from_std(http) else { return };
    let mut http = Acceptor::new(http, Protocol::Http, shared.connections.clone(), shared.metrics.clone());
    let mut tcp = tcp
        .and_then(|l| tokio::net::TcpListener::from_std(l).ok())
        .map(|l| Acceptor::new(l, Protocol::Tcp, shared.connections.clone(), shared.metrics.clone()));
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            (stream, slot) = http.next() => {
                let _ = stream.set_nodelay(true);
                tokio::task::spawn_local(serve_http(stream, shared.clone(), slot));
            },
            (stream, slot) = async { match &mut tcp { Some(l) => l.next().await, None => std::future::pending().await } } => {
                let _ = stream.set_nodelay(true);
                Metrics::inc(&shared.metrics.tcp_sessions);
                let (bootstrap, span) = shared.session(rpc_core::namespace::DEFAULT_NAMESPACE.to_string(), TransportKind::Tcp);
                let io = StreamFrames::new(stream, shared.limits.max_frame_bytes)
                    .with_budget(shared.budget.clone())
                    .with_timeouts(shared.timeouts());
                let session = run_session(io, bootstrap, shared.clone());
                tokio::task::spawn_local(async move {
                    session.await;
                    drop(slot);
                }.instrument(span));
            }
        }
    }
}

/// Runs one streaming session (WebSocket or TCP) until either side ends it, and logs
/// how it ended (run it inside the session's span).
async fn run_session<T: FrameIo + 'static>(io: T, bootstrap: capnp::capability::Client, shared: Arc<Shared>) {
    shared.metrics.active_sessions.fetch_add(1, Ordering::Relaxed);
    tracing::debug!("session started");
    let started = std::time::Instant::now();
    let link = Link::new();
    let pump = Pump::new(io, link.clone(), Guard::new(shared.limits));
    let violation = pump.violation();
    let system = rpc_system(Side::Server, link, Promise::from_future(pump), Some(bootstrap));
    let result = system.await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let violation = violation.get();
    if violation.is_some() {
        Metrics::inc(&shared.metrics.aborted_sessions);
    }
    let error = result.as_ref().err().map(std::string::ToString::to_string).unwrap_or_default();
    match (violation, result) {
        // The transport failed under the pump: the peer went away.
        (Some(Code::Disconnected), _) => {
            tracing::debug!(outcome = "disconnected", code = Code::Disconnected.as_str(), %error, elapsed_ms, "session ended");
        }
        (Some(code), _) => tracing::warn!(
            outcome = "aborted",
            code = code.as_str(),
            %error,
            elapsed_ms,
            "session aborted: the peer broke the protocol or a limit"
        ),
        (None, Ok(())) => tracing::debug!(outcome = "closed", elapsed_ms, "session ended"),
        (None, Err(e)) => {
            let code = RpcError::from(e).code;
            tracing::debug!(outcome = "disconnected", code = code.as_str(), %error, elapsed_ms, "session ended");
        }
    }
    shared.metrics.active_sessions.fetch_sub(1, Ordering::Relaxed);
}

async fn serve_http(stream: tokio::net::TcpStream, shared: Arc<Shared>, slot: accept::Slot) {
    let header_timeout = shared.limits.header_read_timeout;
    // The WebSocket session an upgrade starts keeps the connection's place.
    let slot = Rc::new(slot);
    let service = hyper::service::service_fn(move |req| {
        let (shared, slot) = (shared.clone(), slot.clone());
        async move { Ok::<_, std::convert::Infallible>(route(req, shared, slot).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(auto_error::JsonErrors::new(stream)), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "http connection ended with an error");
    }
}

type Body = Full<Bytes>;

/// A whole-request error as JSON: `{"code": "...", "message": "..."}`.
pub fn error_response(e: &RpcError) -> Response<Body> {
    let body = serde_json::json!({ "code": e.code.as_str(), "message": e.message }).to_string();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

async fn route(req: Request<Incoming>, shared: Arc<Shared>, slot: Rc<accept::Slot>) -> Response<Body> {
    Metrics::inc(&shared.metrics.http_requests);
    let namespace =
        rpc_core::namespace::from_host(req.headers().get(hyper::header::HOST).and_then(|h| h.to_str().ok()));
    let result = match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") => {
            let body = serde_json::json!({ "status": "ok", "metrics": shared.metrics.to_json() }).to_string();
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(r)
        }
        (&Method::GET, "/metrics") => {
            let mut r = Response::new(Full::new(Bytes::from(shared.metrics.prometheus())));
            r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(rpc_core::metrics::CONTENT_TYPE));
            Ok(r)
        }
        (&Method::POST, "/rpc") => batch(req, namespace, &shared).await,
        (&Method::GET, "/rpc") => upgrade(req, namespace, &shared, slot),
        (_, "/rpc") => Err(RpcError::invalid_argument("use POST /rpc for a batch or GET /rpc to open a WebSocket")),
        (&Method::POST, "/capnweb") => capnweb::batch(req, namespace, &shared).await,
        (&Method::GET, "/capnweb") => capnweb::upgrade(req, namespace, &shared, slot),
        (_, "/capnweb") => {
            Err(RpcError::invalid_argument("use POST /capnweb for a batch or GET /capnweb to open a WebSocket"))
        }
        (&Method::GET, "/") => Ok(page::index()),
        (&Method::GET, "/capnweb.js") => Ok(page::capnweb_module()),
        (_, path) => Err(RpcError::new(Code::NotFound, format!("no route for {path}"))),
    };
    result.unwrap_or_else(|e| {
        Metrics::inc(&shared.metrics.refused_requests);
        error_response(&e)
    })
}

/// The body of a batch, read within the body timeout and the size limit.
async fn read_body(body: Incoming, limits: &Limits) -> Result<Bytes, RpcError> {
    let limit = limits.max_batch_bytes;
    let collect = Limited::new(body, limit).collect();
    let body = match tokio::time::timeout(limits.body_read_timeout, collect).await {
        Ok(read) => read.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                RpcError::new(Code::LimitExceeded, format!("batch body exceeds the limit of {limit} bytes"))
            } else {
                RpcError::invalid_argument(format!("could not read the request body: {e}"))
            }
        })?,
        Err(_) => {
            return Err(RpcError::new(
                Code::Timeout,
                format!("the request body did not arrive within {} ms", limits.body_read_timeout.as_millis()),
            ))
        }
    };
    Ok(body.to_bytes())
}

async fn batch(req: Request<Incoming>, namespace: String, shared: &Arc<Shared>) -> Result<Response<Body>, RpcError> {
    let ctype = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = ctype.split(';').next().unwrap_or("").trim();
    if media != BATCH_CONTENT_TYPE && media != "application/octet-stream" {
        return Err(RpcError::new(
            Code::InvalidArgument,
            format!("content type {ctype:?} is not accepted: send {BATCH_CONTENT_TYPE}"),
        ));
    }
    let body = match read_body(req.into_body(), &shared.limits).await {
        Ok(body) => body,
        Err(e) if e.code == Code::Timeout => {
            // 408: the client was too slow (the connection closes, its body unread).
            Metrics::inc(&shared.metrics.refused_requests);
            let mut r = error_response(&e);
            *r.status_mut() = StatusCode::REQUEST_TIMEOUT;
            r.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            return Ok(r);
        }
        Err(e) => return Err(e),
    };
    let count = rpc_core::framing::split(&body)?.len() as u64;
    Metrics::inc(&shared.metrics.http_batches);
    shared.metrics.batch_messages.fetch_add(count, Ordering::Relaxed);
    let (bootstrap, span) = shared.session(namespace, TransportKind::HttpBatch);
    let out = batch::serve_batch(&body, bootstrap, shared.limits).instrument(span.clone()).await.inspect_err(|e| {
        span.in_scope(
            || tracing::debug!(outcome = "refused", code = e.code.as_str(), error = %e.message, "batch failed"),
        );
    })?;
    span.in_scope(|| tracing::debug!(outcome = "closed", messages = count, "batch served"));
    let mut r = Response::new(Full::new(Bytes::from(out)));
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(BATCH_CONTENT_TYPE));
    Ok(r)
}

fn upgrade(
    mut req: Request<Incoming>,
    namespace: String,
    shared: &Arc<Shared>,
    slot: Rc<accept::Slot>,
) -> Result<Response<Body>, RpcError> {
    let accept = websocket_accept(&req, "GET /rpc must be a WebSocket upgrade (or use POST /rpc for a batch)")?;
    let headers = req.headers();
    let offered: Vec<String> = headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
        .collect();
    if !offered.is_empty() && !offered.iter().any(|p| p == WS_SUBPROTOCOL) {
        return Err(RpcError::new(
            Code::Unsupported,
            format!("subprotocols {offered:?} not supported: offer {WS_SUBPROTOCOL}"),
        ));
    }
    let shared = shared.clone();
    on_upgraded(&mut req, shared.budget.clone(), move |socket, meter| async move {
        let ws = WsFrames::new(socket, Role::Server, &shared.limits, bytes::BytesMut::new());
        Metrics::inc(&shared.metrics.ws_sessions);
        let (bootstrap, span) = shared.session(namespace, TransportKind::WebSocket);
        let io = ws.with_meter(meter).with_timeouts(shared.timeouts());
        run_session(io, bootstrap, shared).instrument(span).await;
        drop(slot);
    });
    switching_protocols(&accept, (!offered.is_empty()).then_some(WS_SUBPROTOCOL))
}

/// The `Sec-WebSocket-Accept` answer to a WebSocket upgrade request, or INVALID_ARGUMENT
/// with `refusal` when the request is not one.
fn websocket_accept(req: &Request<Incoming>, refusal: &str) -> Result<String, RpcError> {
    let headers = req.headers();
    let is_ws = headers.get(UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = headers.get("sec-websocket-key").map(|k| derive_accept_key(k.as_bytes()));
    match (is_ws, key) {
        (true, Some(accept)) => Ok(accept),
        _ => Err(RpcError::invalid_argument(refusal)),
    }
}

/// Once hyper hands the upgraded connection over, runs `serve` on it, metered: the
/// bytes of a message not yet whole draw on the server's partial-frame budget.
fn on_upgraded<F, Fut>(req: &mut Request<Incoming>, budget: Arc<FrameBudget>, serve: F)
where
    F: FnOnce(Metered<TokioIo<hyper::upgrade::Upgraded>>, rpc_transport::metered::Meter) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let on_upgrade = hyper::upgrade::on(req);
    tokio::task::spawn_local(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "websocket upgrade failed");
                return;
            }
        };
        let (socket, meter) = Metered::new(TokioIo::new(upgraded), Some(budget));
        serve(socket, meter).await;
    });
}

/// The `101 Switching Protocols` answer to an upgrade, with `protocol` if one was agreed.
fn switching_protocols(accept: &str, protocol: Option<&'static str>) -> Result<Response<Body>, RpcError> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        "sec-websocket-accept",
        HeaderValue::from_str(accept).map_err(|e| RpcError::new(Code::Internal, e.to_string()))?,
    );
    if let Some(p) = protocol {
        h.insert("sec-websocket-protocol", HeaderValue::from_static(p));
    }
    Ok(r)
}
