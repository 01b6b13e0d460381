//! Opening sessions: [`connect`] for the streaming transports (WebSocket, TCP), which
//! carry any number of calls both ways until closed, and [`batch`] for HTTP batch, whose
//! session is exactly one request: the calls (pipelined ones included) queued until
//! [`BatchSession::flush`] or the first wait, one `POST`, every reply in its response.

use crate::api::session::Gateway;
use crate::http;
use crate::url::{Scheme, Target};
use capnp::capability::{FromClientHook, Promise};
use capnp_rpc::rpc_twoparty_capnp::Side;
use rpc_core::guard::Guard;
use rpc_core::pump::Pump;
use rpc_core::vat::{rpc_system, Link};
use rpc_core::wsframe::Role;
use rpc_core::{Code, Limits, RpcError};
use rpc_transport::tcp::StreamFrames;
use rpc_transport::websocket::{client_handshake, WsFrames};

/// How to connect, beyond the URL.
///
/// ```
/// let options = rpc_client::Options { host: Some("acme.dotdo.dev".into()), ..Default::default() };
/// assert_eq!(options.limits, rpc_core::Limits::default());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Limits on what the server may send this client.
    pub limits: Limits,
    /// A `Host` header other than the URL's authority (WebSocket and HTTP), e.g. to pick
    /// a namespace (`acme.example.com` runs in namespace `acme`) through a proxy or test.
    pub host: Option<String>,
    /// The TLS configuration of `wss://` and `https://` ([`crate::tls`]); `None`: the
    /// platform's roots and `DOTDO_CA_FILE`'s.
    pub tls: Option<crate::tls::TlsConfig>,
}

/// A streaming session (WebSocket or TCP): the server's bootstrap capability, typed, and
/// the connection, which lasts until [`Session::close`] or until every capability of it
/// is dropped. Calls go out at once; the server can call back into capabilities you
/// pass it.
///
/// ```no_run
/// rpc_client::run(async {
///     let session = rpc_client::connect("ws://127.0.0.1:8787/rpc").await?;
///     let reply = session.bootstrap.demo().directory().echo(7).await?;
///     assert_eq!(reply.x, 7);
///     session.close().await
/// }).unwrap();
/// ```
pub struct Session<T = Gateway> {
    /// The server's bootstrap capability.
    pub bootstrap: T,
    /// The transport in use.
    pub scheme: Scheme,
    disconnector: capnp_rpc::Disconnector<Side>,
}

impl<T> Session<T> {
    /// Closes the connection and waits until it is closed.
    ///
    /// ```no_run
    /// rpc_client::run(async {
    ///     let session = rpc_client::connect("tcp://127.0.0.1:8788").await?;
    ///     session.close().await
    /// }).unwrap();
    /// ```
    pub async fn close(self) -> Result<(), RpcError> {
        self.disconnector.await.map_err(RpcError::from)
    }
}

/// An HTTP batch session: calls made on [`BatchSession::bootstrap`] (and on what they
/// return, pipelined) are queued and sent together in **one** `POST` when you call
/// [`BatchSession::flush`] or first wait for a result; every reply comes back in its
/// response. The session ends with that response: capabilities do not outlive it, and
/// the server cannot call back (use [`connect`] over WebSocket for callbacks). Open a
/// new one for the next batch.
///
/// ```no_run
/// rpc_client::run(async {
///     let batch = rpc_client::batch("http://127.0.0.1:8787/rpc").await?;
///     let dir = batch.bootstrap.demo().directory();
///     let (a, b) = (dir.echo(1), dir.open("docs").file().read());
///     batch.flush(); // both calls (and the pipelined chain) in one request
///     assert_eq!(a.await?.x, 1);
///     assert_eq!(b.await?.text, "contents of docs");
///     Ok::<_, rpc_client::RpcError>(())
/// }).unwrap();
/// ```
pub struct BatchSession<T = Gateway> {
    /// The server's bootstrap capability, for this one batch.
    pub bootstrap: T,
    send_now: http::SendNow,
}

impl<T> BatchSession<T> {
    /// Sends the queued calls now instead of when the caller first waits.
    ///
    /// ```no_run
    /// rpc_client::run(async {
    ///     let batch = rpc_client::batch("http://127.0.0.1:8787/rpc").await?;
    ///     let call = batch.bootstrap.demo().directory().echo(7);
    ///     batch.flush();
    ///     assert_eq!(call.await?.x, 7);
    ///     Ok::<_, rpc_client::RpcError>(())
    /// }).unwrap();
    /// ```
    pub fn flush(&self) {
        self.send_now.set();
    }
}

/// Connects over WebSocket (`ws://host:port/rpc`, `wss://` over TLS) or TCP
/// (`tcp://host:port`) and returns
/// the server's typed [`Gateway`]. An `http://` URL is refused with `INVALID_ARGUMENT`:
/// HTTP batch sessions are [`batch`]. Must run inside a `tokio::task::LocalSet` (see
/// [`crate::run`]).
///
/// ```no_run
/// rpc_client::run(async {
///     let session = rpc_client::connect("ws://127.0.0.1:8787/rpc").await?;
///     let text = session.bootstrap.demo().directory().open("docs").file().read().await?.text;
///     println!("{text}");
///     Ok::<_, rpc_client::RpcError>(())
/// }).unwrap();
/// ```
pub async fn connect(url: &str) -> Result<Session<Gateway>, RpcError> {
    connect_as(url, Options::default()).await
}

/// Like [`connect`], for any bootstrap interface `T` (a generated typed client, or a raw
/// capnp client), with [`Options`].
///
/// ```no_run
/// use rpc_client::api::demo::Directory;
/// rpc_client::run(async {
///     let options = rpc_client::Options { host: Some("acme.dotdo.dev".into()), ..Default::default() };
///     let session = rpc_client::connect_as::<rpc_client::api::session::Gateway>("ws://127.0.0.1:8787/rpc", options).await?;
///     let dir: Directory = session.bootstrap.demo().directory();
///     assert_eq!(dir.next(1).await?.n, 2);
///     Ok::<_, rpc_client::RpcError>(())
/// }).unwrap();
/// ```
pub async fn connect_as<T: FromClientHook>(url: &str, options: Options) -> Result<Session<T>, RpcError> {
    let Options { limits, host, tls } = options;
    let target = Target::parse(url)?;
    let host_header = host.unwrap_or_else(|| target.authority.clone());
    let link = Link::new();
    let guard = Guard::new(limits);
    let driver = match target.scheme {
        Scheme::Tcp => {
            let stream = tcp_connect(&target.authority).await?;
            Promise::from_future(Pump::new(StreamFrames::new(stream, limits.max_frame_bytes), link.clone(), guard))
        }
        Scheme::WebSocket if target.tls => {
            let stream = tcp_connect(&target.authority).await?;
            let config = match tls {
                Some(c) => c,
                None => crate::tls::default_config()?,
            };
            let stream = crate::tls::connect(&config, &target.authority, stream).await?;
            let (stream, buffered) = client_handshake(stream, &host_header, &target.path).await?;
            let ws = WsFrames::new(stream, Role::Client, &limits, buffered);
            Promise::from_future(Pump::new(ws, link.clone(), guard))
        }
        Scheme::WebSocket => {
            let stream = tcp_connect(&target.authority).await?;
            let (stream, buffered) = client_handshake(stream, &host_header, &target.path).await?;
            let ws = WsFrames::new(stream, Role::Client, &limits, buffered);
            Promise::from_future(Pump::new(ws, link.clone(), guard))
        }
        Scheme::Http => {
            return Err(RpcError::new(
                Code::InvalidArgument,
                format!("{url} is an HTTP batch endpoint: use rpc_client::batch, whose session is one request"),
            ))
        }
    };
    let (bootstrap, disconnector) = start(link, driver);
    Ok(Session { bootstrap, scheme: target.scheme, disconnector })
}

/// Opens an HTTP batch session on `http://host:port/rpc` (or `https://`); see
/// [`BatchSession`].
///
/// ```no_run
/// rpc_client::run(async {
///     let batch = rpc_client::batch("http://127.0.0.1:8787/rpc").await?;
///     // demo() -> open() -> read(): one POST.
///     let text = batch.bootstrap.demo().directory().open("docs").file().read().await?.text;
///     assert_eq!(text, "contents of docs");
///     Ok::<_, rpc_client::RpcError>(())
/// }).unwrap();
/// ```
pub async fn batch(url: &str) -> Result<BatchSession<Gateway>, RpcError> {
    batch_as(url, Options::default()).await
}

/// Like [`batch`], for any bootstrap interface `T`, with [`Options`].
///
/// ```no_run
/// rpc_client::run(async {
///     let batch = rpc_client::batch_as::<rpc_client::api::session::Gateway>(
///         "http://127.0.0.1:8787/rpc", rpc_client::Options::default()).await?;
///     assert_eq!(batch.bootstrap.demo().directory().echo(3).await?.x, 3);
///     Ok::<_, rpc_client::RpcError>(())
/// }).unwrap();
/// ```
pub async fn batch_as<T: FromClientHook>(url: &str, options: Options) -> Result<BatchSession<T>, RpcError> {
    let Options { limits, host, tls } = options;
    let target = Target::parse(url)?;
    if target.scheme != Scheme::Http {
        return Err(RpcError::new(
            Code::InvalidArgument,
            format!("{url} is not an http:// URL: use rpc_client::connect for WebSocket and TCP"),
        ));
    }
    let host = host.unwrap_or_else(|| target.authority.clone());
    let link = Link::new();
    let send_now = http::SendNow::default();
    let tls = match (target.tls, tls) {
        (false, _) => None,
        (true, Some(c)) => Some(c),
        (true, None) => Some(crate::tls::default_config()?),
    };
    let endpoint = http::Endpoint { authority: target.authority.clone(), host, path: target.path.clone(), tls };
    let driver = Promise::from_future(http::drive(link.clone(), endpoint, limits, send_now.clone()));
    let (bootstrap, _) = start(link, driver);
    Ok(BatchSession { bootstrap, send_now })
}

/// Connects on any transport and returns only the bootstrap capability, for code that
/// runs the same calls over each (over HTTP they form one batch, sent when the caller
/// first waits).
///
/// ```no_run
/// use rpc_client::api::session::Gateway;
/// rpc_client::run(async {
///     for url in ["ws://127.0.0.1:8787/rpc", "http://127.0.0.1:8787/rpc", "tcp://127.0.0.1:8788"] {
///         let gateway: Gateway = rpc_client::bootstrap(url).await?;
///         assert_eq!(gateway.demo().directory().echo(1).await?.x, 1);
///     }
///     Ok::<_, rpc_client::RpcError>(())
/// }).unwrap();
/// ```
pub async fn bootstrap<T: FromClientHook>(url: &str) -> Result<T, RpcError> {
    if Target::parse(url)?.scheme == Scheme::Http {
        Ok(batch_as(url, Options::default()).await?.bootstrap)
    } else {
        Ok(connect_as(url, Options::default()).await?.bootstrap)
    }
}

/// Starts the client's RPC engine over `link`, driven by `driver`, on this thread.
fn start<T: FromClientHook>(link: Link, driver: Promise<(), capnp::Error>) -> (T, capnp_rpc::Disconnector<Side>) {
    let mut system = rpc_system(Side::Client, link, driver, None);
    let bootstrap: T = system.bootstrap(Side::Server);
    let disconnector = system.get_disconnector();
    tokio::task::spawn_local(async move {
        let _ = system.await;
    });
    (bootstrap, disconnector)
}

async fn tcp_connect(authority: &str) -> Result<tokio::net::TcpStream, RpcError> {
    let s = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| RpcError::new(Code::Disconnected, format!("cannot connect to {authority}: {e}")))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}
