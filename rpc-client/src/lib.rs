//! dotdo's client: connect to a dotdo server (or any Cap'n Proto RPC server) over
//! WebSocket, TCP ([`connect`]) or HTTP batch ([`batch`]) and call it through typed
//! clients generated from the schema ([`api`] for dotdo's own; `dotdo codegen` for
//! yours). Each method takes plain Rust values and returns a [`Call`]: `.await` it for a
//! plain Rust reply, or call the capabilities it returns before it arrives, so a chain
//! of dependent calls costs one round trip on every transport. Errors are
//! [`RpcError`]s with a stable [`Code`]; per-call deadlines are [`CallOptions`].
//!
//! Capabilities are `!Send`: run the client inside a `tokio::task::LocalSet` (or use
//! [`run`]).
//!
//! ```no_run
//! rpc_client::run(async {
//!     let session = rpc_client::connect("ws://127.0.0.1:8787/rpc").await?;
//!     let dir = session.bootstrap.demo().directory();
//!     // Four dependent calls, one round trip:
//!     let text = dir.open("docs").file().child("intro").file().read().await?.text;
//!     assert_eq!(text, "contents of docs/intro");
//!     Ok::<_, rpc_client::RpcError>(())
//! }).unwrap();
//! ```
//!
//! The raw capnp API stays reachable: a typed client's `raw()` (or `Deref`) is capnpc's
//! client, and a [`Call`]'s `into_raw()` its `RemotePromise`.

pub mod api;
mod call;
pub mod codegen;
mod http;
pub mod schedule;
mod session;
pub mod tls;
pub mod url;

pub use call::{Call, CallFuture, CallOptions, FromResults};
pub use rpc_core::{Code, RpcError};
pub use session::{batch, batch_as, bootstrap, connect, connect_as, BatchSession, Options, Session};
pub use url::{Scheme, Target};

use api::session::{Gateway, NegotiateRequest};

/// Negotiates a session: the first call a client makes. Returns the agreed version,
/// features, session id and namespace, or the server's typed refusal.
///
/// ```no_run
/// rpc_client::run(async {
///     let session = rpc_client::connect("ws://127.0.0.1:8787/rpc").await?;
///     let n = rpc_client::negotiate(&session.bootstrap, "my-app", &["pipelining"], &[]).await?;
///     println!("protocol v{} in namespace {}", n.version, n.namespace);
///     Ok::<_, rpc_client::RpcError>(())
/// }).unwrap();
/// ```
pub async fn negotiate(
    gateway: &Gateway,
    client_id: &str,
    supported: &[&str],
    required: &[&str],
) -> Result<Negotiated, RpcError> {
    let request = NegotiateRequest {
        client_id: client_id.to_string(),
        min_version: 1,
        max_version: rpc_core::negotiation::PROTOCOL_VERSION,
        supported_features: supported.iter().map(std::string::ToString::to_string).collect(),
        required_features: required.iter().map(std::string::ToString::to_string).collect(),
    };
    let n = gateway.negotiate(&request).await?.result;
    Ok(Negotiated {
        version: n.version,
        client_id: n.client_id,
        enabled: n.enabled_features,
        available: n.available_features,
        session_id: n.session_id,
        namespace: n.namespace,
    })
}

/// The outcome of [`negotiate`].
///
/// ```no_run
/// # async fn example(gateway: rpc_client::api::session::Gateway) -> Result<(), rpc_client::RpcError> {
/// let n: rpc_client::Negotiated = rpc_client::negotiate(&gateway, "me", &["pipelining"], &[]).await?;
/// assert!(n.enabled.iter().all(|f| n.available.contains(f)));
/// # Ok(()) }
/// ```
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
///
/// ```no_run
/// # async fn example(gateway: rpc_client::api::session::Gateway) -> Result<(), rpc_client::RpcError> {
/// let all: Vec<rpc_client::Interface> = rpc_client::describe(&gateway).await?;
/// let gw = all.iter().find(|i| i.name == "session.capnp:Gateway").expect("listed");
/// assert!(gw.methods.contains(&("negotiate".to_string(), 0)));
/// # Ok(()) }
/// ```
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
///
/// ```no_run
/// rpc_client::run(async {
///     let session = rpc_client::connect("ws://127.0.0.1:8787/rpc").await?;
///     for i in rpc_client::describe(&session.bootstrap).await? {
///         println!("{} has {} methods", i.name, i.methods.len());
///     }
///     Ok::<_, rpc_client::RpcError>(())
/// }).unwrap();
/// ```
pub async fn describe(gateway: &Gateway) -> Result<Vec<Interface>, RpcError> {
    Ok(describe_all(gateway).await?.0)
}

/// The interfaces the server offers and the schemas they come from: each schema is a
/// `CodeGeneratorRequest` (as `capnp compile -o-` writes it), with every type and doc
/// comment, from which `dotdo codegen --from` generates Rust or TypeScript.
pub async fn describe_all(gateway: &Gateway) -> Result<(Vec<Interface>, Vec<Vec<u8>>), RpcError> {
    let described = gateway.describe().await?;
    let interfaces = described
        .interfaces
        .into_iter()
        .map(|i| Interface {
            name: i.name,
            id: i.id,
            methods: i.methods.into_iter().map(|m| (m.name, m.ordinal)).collect(),
        })
        .collect();
    Ok((interfaces, described.schemas))
}

/// Runs `f` on a fresh single-threaded runtime inside a `LocalSet`, as clients need.
///
/// ```
/// let answer = rpc_client::run(async { 6 * 7 });
/// assert_eq!(answer, 42);
/// ```
pub fn run<F: std::future::Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime can be built");
    tokio::task::LocalSet::new().block_on(&rt, f)
}
