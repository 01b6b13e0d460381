//! dotdo's client: connect to a dotdo server (or any Cap'n Proto RPC server) over
//! WebSocket, HTTP batch or TCP and get the same typed bootstrap client.
//!
//! Clients are generated from the schema by `capnpc` (see `dotdo codegen`); calls on
//! results that have not returned yet are pipelined, so a chain of dependent calls
//! costs one round trip on every transport. Capabilities are `!Send`: run the client
//! inside a `tokio::task::LocalSet` (or use [`run`]).
//!
//! ```no_run
//! rpc_client::run(async {
//!     let session = rpc_client::connect("ws://127.0.0.1:8787/rpc").await?;
//!     let dir = session.bootstrap.demo_request().send().pipeline.get_directory();
//!     let mut open = dir.open_request();
//!     open.get().set_name("a");
//!     let file = open.send().pipeline.get_file();
//!     // Three dependent calls, one round trip:
//!     let text = file.read_request().send().promise.await?;
//!     println!("{}", text.get()?.get_text()?.to_str()?);
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! }).unwrap();
//! ```

pub mod http;
pub mod schedule;
pub mod url;

use capnp::capability::FromClientHook;
use capnp::capability::Promise;
use capnp_rpc::rpc_twoparty_capnp::Side;
use rpc_core::guard::Guard;
use rpc_core::pump::{Pump, WS_SUBPROTOCOL};
use rpc_core::vat::{rpc_system, Link};
use rpc_core::{Code, Limits, RpcError};
use rpc_transport::tcp::StreamFrames;
use rpc_transport::websocket::{ws_config, WsFrames};
use schema::session_capnp::gateway;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
pub use url::{Scheme, Target};

/// A client session: the server's bootstrap capability and a handle on the connection.
pub struct Session<T = gateway::Client> {
    /// The server's bootstrap capability, typed.
    pub bootstrap: T,
    /// The transport in use.
    pub scheme: Scheme,
    send_now: Option<http::SendNow>,
    disconnector: capnp_rpc::Disconnector<Side>,
}

impl<T> Session<T> {
    /// HTTP batch: sends the queued batch now instead of when the caller next waits.
    /// A no-op on streaming transports, which send at once.
    pub fn send(&self) {
        if let Some(flag) = &self.send_now {
            flag.set();
        }
    }

    /// Closes the connection and waits until it is closed.
    pub async fn close(self) -> Result<(), RpcError> {
        self.disconnector.await.map_err(RpcError::from)
    }
}

/// Connects to a dotdo server and returns its `Gateway`. `url` is `ws://host:port/rpc`,
/// `http://host:port/rpc` (one batch per session) or `tcp://host:port`.
/// Must run inside a `tokio::task::LocalSet`.
pub async fn connect(url: &str) -> Result<Session<gateway::Client>, RpcError> {
    connect_as(url, Options::default()).await
}

/// How to connect, beyond the URL.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Limits on what the server may send this client.
    pub limits: Limits,
    /// A `Host` header other than the URL's authority (WebSocket and HTTP), e.g. to pick
    /// a namespace (`acme.example.com` runs in namespace `acme`) through a proxy or test.
    pub host: Option<String>,
}

/// Like [`connect`], for any bootstrap interface `T`, with [`Options`].
pub async fn connect_as<T: FromClientHook>(url: &str, options: Options) -> Result<Session<T>, RpcError> {
    let Options { limits, host } = options;
    let target = Target::parse(url)?;
    let host_header = host.unwrap_or_else(|| target.authority.clone());
    let link = Link::new();
    let guard = Guard::new(limits);
    let (driver, send_now) = match target.scheme {
        Scheme::Tcp => {
            let stream = tcp_connect(&target.authority).await?;
            (
                Promise::from_future(Pump::new(StreamFrames::new(stream, limits.max_frame_bytes), link.clone(), guard)),
                None,
            )
        }
        Scheme::WebSocket => {
            let stream = tcp_connect(&target.authority).await?;
            let mut req = format!("ws://{}{}", target.authority, target.path)
                .into_client_request()
                .map_err(|e| RpcError::new(Code::InvalidArgument, format!("bad websocket url: {e}")))?;
            req.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(WS_SUBPROTOCOL));
            let host = HeaderValue::from_str(&host_header)
                .map_err(|e| RpcError::new(Code::InvalidArgument, format!("bad host {host_header:?}: {e}")))?;
            req.headers_mut().insert("host", host);
            let (ws, _) = tokio_tungstenite::client_async_with_config(req, stream, Some(ws_config(&limits)))
                .await
                .map_err(|e| RpcError::new(Code::Disconnected, format!("websocket handshake failed: {e}")))?;
            (Promise::from_future(Pump::new(WsFrames::new(ws), link.clone(), guard)), None)
        }
        Scheme::Http => {
            let now = http::SendNow::default();
            let driver = http::drive(
                link.clone(),
                http::Endpoint { authority: target.authority.clone(), host: host_header, path: target.path.clone() },
                limits,
                now.clone(),
            );
            (Promise::from_future(driver), Some(now))
        }
    };
    let mut system = rpc_system(Side::Client, link, driver, None);
    let bootstrap: T = system.bootstrap(Side::Server);
    let disconnector = system.get_disconnector();
    tokio::task::spawn_local(async move {
        let _ = system.await;
    });
    Ok(Session { bootstrap, scheme: target.scheme, send_now, disconnector })
}

async fn tcp_connect(authority: &str) -> Result<tokio::net::TcpStream, RpcError> {
    let s = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| RpcError::new(Code::Disconnected, format!("cannot connect to {authority}: {e}")))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Negotiates a session: the first call a client makes. Returns the agreed version,
/// features, session id and namespace, or the server's typed refusal.
pub async fn negotiate(
    gateway: &gateway::Client,
    client_id: &str,
    supported: &[&str],
    required: &[&str],
) -> Result<Negotiated, RpcError> {
    let mut req = gateway.negotiate_request();
    {
        let mut r = req.get().init_request();
        r.set_client_id(client_id);
        r.set_min_version(1);
        r.set_max_version(rpc_core::negotiation::PROTOCOL_VERSION);
        let mut s = r.reborrow().init_supported_features(supported.len() as u32);
        for (i, f) in supported.iter().enumerate() {
            s.set(i as u32, *f);
        }
        let mut q = r.init_required_features(required.len() as u32);
        for (i, f) in required.iter().enumerate() {
            q.set(i as u32, *f);
        }
    }
    let resp = req.send().promise.await?;
    let n = resp.get()?.get_result()?;
    let list = |l: capnp::Result<capnp::text_list::Reader<'_>>| -> Result<Vec<String>, RpcError> {
        let mut out = Vec::new();
        for t in l? {
            out.push(t?.to_string().map_err(|e| RpcError::new(Code::InvalidArgument, e.to_string()))?);
        }
        Ok(out)
    };
    let text = |t: capnp::Result<capnp::text::Reader<'_>>| -> Result<String, RpcError> {
        t?.to_string().map_err(|e| RpcError::new(Code::InvalidArgument, e.to_string()))
    };
    Ok(Negotiated {
        version: n.get_version(),
        client_id: text(n.get_client_id())?,
        enabled: list(n.get_enabled_features())?,
        available: list(n.get_available_features())?,
        session_id: text(n.get_session_id())?,
        namespace: text(n.get_namespace())?,
    })
}

/// The outcome of [`negotiate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The agreed protocol version.
    pub version: u32,
    /// The client id, echoed.
    pub client_id: String,
    /// The features enabled for this session.
    pub enabled: Vec<String>,
    /// Every feature the server has.
    pub available: Vec<String>,
    /// The server's id for this session.
    pub session_id: String,
    /// The namespace the session runs in.
    pub namespace: String,
}

/// One interface the server offers, from `describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Its display name, e.g. `demo.capnp:Directory`.
    pub name: String,
    /// Its interface id.
    pub id: u64,
    /// Its methods: (name, ordinal).
    pub methods: Vec<(String, u16)>,
}

/// Lists the interfaces and methods the server offers.
pub async fn describe(gateway: &gateway::Client) -> Result<Vec<Interface>, RpcError> {
    let resp = gateway.describe_request().send().promise.await?;
    let mut out = Vec::new();
    for i in resp.get()?.get_interfaces()? {
        let mut methods = Vec::new();
        for m in i.get_methods()? {
            methods.push((
                m.get_name()?.to_string().map_err(|e| RpcError::new(Code::InvalidArgument, e.to_string()))?,
                m.get_ordinal(),
            ));
        }
        let name = i.get_name()?.to_string().map_err(|e| RpcError::new(Code::InvalidArgument, e.to_string()))?;
        out.push(Interface { name, id: i.get_id(), methods });
    }
    Ok(out)
}

/// Runs `f` on a fresh single-threaded runtime inside a `LocalSet`, as clients need.
pub fn run<F: std::future::Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime can be built");
    tokio::task::LocalSet::new().block_on(&rt, f)
}
