//! Sessions over WebSockets inside Cloudflare: serving a capability on an accepted
//! socket, and dialing a Durable Object (an object's, from the Worker's gateway, the
//! broker or another object; the broker's, from the gateway) for its capability.
//!
//! A dial returns at once with a promise of the object's capability: calls made on it
//! meanwhile queue and go out, pipelined, once the socket is open, so a client's chain
//! `gateway.object(..).storage().get(..)` still costs the client one round trip.

use crate::socket::Socket;
use capnp::capability::Promise;
use capnp_rpc::rpc_twoparty_capnp::Side;
use rpc_core::guard::Guard;
use rpc_core::pump::Pump;
use rpc_core::vat::{rpc_system, Link};
use rpc_core::{ident, Code, Limits, RpcError};
use schema::object_capnp::object;
use std::cell::RefCell;
use std::rc::Rc;
use worker::{Headers, ObjectNamespace, Request, RequestInit, Response};

/// The header naming the object's namespace on a dial.
pub const NAMESPACE_HEADER: &str = "x-dotdo-namespace";
/// The header naming the object's class on a dial.
pub const CLASS_HEADER: &str = "x-dotdo-class";
/// The header naming the object on a dial.
pub const NAME_HEADER: &str = "x-dotdo-name";

/// An object's name: (namespace, class, name), checked by rpc-core's naming rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// The namespace (from the session's `Host`).
    pub namespace: String,
    /// The class.
    pub class: String,
    /// The name.
    pub name: String,
}

impl Key {
    /// A checked key: INVALID_ARGUMENT for a name that breaks the rules.
    pub fn new(namespace: &str, class: &str, name: &str) -> Result<Key, RpcError> {
        ident::namespace(namespace)?;
        ident::class(class)?;
        ident::object_name(name)?;
        Ok(Key { namespace: namespace.into(), class: class.into(), name: name.into() })
    }

    /// The key named by a dial's headers.
    pub fn from_headers(headers: &Headers) -> Result<Key, RpcError> {
        let get = |h: &str| {
            headers
                .get(h)
                .ok()
                .flatten()
                .ok_or_else(|| RpcError::invalid_argument(format!("a dial must name the object ({h})")))
        };
        Key::new(&get(NAMESPACE_HEADER)?, &get(CLASS_HEADER)?, &unescape(&get(NAME_HEADER)?)?)
    }

    /// The name its Durable Object is found by (`idFromName`): the three parts, one
    /// per line (none of them may hold a newline).
    pub fn durable_name(&self) -> String {
        format!("{}\n{}\n{}", self.namespace, self.class, self.name)
    }
}

/// Serves `bootstrap` on `socket` until the session ends.
pub fn serve(socket: Socket, bootstrap: capnp::capability::Client, limits: Limits) {
    let link = Link::new();
    let pump = Pump::new(socket, link.clone(), Guard::new(limits));
    let system = rpc_system(Side::Server, link, Promise::from_future(pump), Some(bootstrap));
    wasm_bindgen_futures::spawn_local(async move {
        let _ = system.await;
    });
}

/// A connection to one Durable Object: its bootstrap capability and the way to close it.
#[derive(Clone)]
pub struct Hop {
    /// The object's capability (a promise until the socket is open).
    pub client: capnp::capability::Client,
    state: Rc<RefCell<HopState>>,
}

#[derive(Default)]
struct HopState {
    disconnector: Option<capnp_rpc::Disconnector<Side>>,
    closed: bool,
}

impl Hop {
    /// The capability as an `Object`.
    pub fn object(&self) -> object::Client {
        object::Client { client: self.client.clone() }
    }

    /// Closes the connection (the object sees its session end).
    pub fn close(&self) {
        let mut state = self.state.borrow_mut();
        state.closed = true;
        if let Some(d) = state.disconnector.take() {
            wasm_bindgen_futures::spawn_local(async move {
                let _ = d.await;
            });
        }
    }
}

/// Dials the object's Durable Object for `key` in `objects`.
pub fn connect(objects: ObjectNamespace, key: Key) -> Hop {
    let headers = vec![
        (NAMESPACE_HEADER, key.namespace.clone()),
        (CLASS_HEADER, key.class.clone()),
        (NAME_HEADER, escape(&key.name)),
    ];
    dial(objects, key.durable_name(), headers)
}

/// Dials the Durable Object named `durable_name` in `namespace`, with `headers` on the
/// upgrade request; returns at once with a promise of its bootstrap capability.
pub fn dial(namespace: ObjectNamespace, durable_name: String, headers: Vec<(&'static str, String)>) -> Hop {
    let state: Rc<RefCell<HopState>> = Rc::default();
    let (tx, rx) = futures::channel::oneshot::channel::<Result<capnp::capability::Client, RpcError>>();
    let task_state = state.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let socket = match open_socket(&namespace, &durable_name, &headers).await {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        if task_state.borrow().closed {
            return;
        }
        let link = Link::new();
        let pump = Pump::new(socket, link.clone(), Guard::new(Limits::default()));
        let mut system = rpc_system(Side::Client, link, Promise::from_future(pump), None);
        let client: capnp::capability::Client = system.bootstrap(Side::Server);
        task_state.borrow_mut().disconnector = Some(system.get_disconnector());
        let _ = tx.send(Ok(client));
        let _ = system.await;
    });
    let client = capnp_rpc::new_future_client(async move {
        match rx.await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(RpcError::new(Code::Disconnected, "the connection to the object was dropped").into()),
        }
    });
    Hop { client, state }
}

async fn open_socket(
    namespace: &ObjectNamespace,
    durable_name: &str,
    extra: &[(&'static str, String)],
) -> Result<Socket, RpcError> {
    let platform = |e: worker::Error| RpcError::new(Code::Unavailable, format!("could not reach the object: {e}"));
    let stub = namespace.id_from_name(durable_name).map_err(platform)?.get_stub().map_err(platform)?;
    let headers = Headers::new();
    headers.set("upgrade", "websocket").map_err(platform)?;
    for (h, v) in extra {
        headers.set(h, v).map_err(platform)?;
    }
    let mut init = RequestInit::new();
    init.with_headers(headers);
    let req = Request::new_with_init("https://object.dotdo/connect", &init).map_err(platform)?;
    let mut resp = stub.fetch_with_request(req).await.map_err(platform)?;
    if resp.status_code() != 101 {
        return Err(error_of(&mut resp).await);
    }
    let ws =
        resp.websocket().ok_or_else(|| RpcError::new(Code::Internal, "the object answered 101 with no WebSocket"))?;
    let socket = Socket::new(&ws)?;
    ws.accept().map_err(platform)?;
    Ok(socket)
}

/// The typed error of a refused dial: the body `{"code", "message"}` the object sent.
async fn error_of(resp: &mut Response) -> RpcError {
    let status = resp.status_code();
    let body = resp.text().await.unwrap_or_default();
    let parsed: Option<(String, String)> = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| Some((v.get("code")?.as_str()?.to_string(), v.get("message")?.as_str()?.to_string())));
    match parsed {
        Some((code, message)) => RpcError::new(Code::parse(&code).unwrap_or(Code::Internal), message),
        None => RpcError::new(Code::Internal, format!("the object answered {status}: {body}")),
    }
}

/// An object name as a header value: any byte but a letter, a digit or `-._~` as `%XX`
/// (names are any UTF-8 without control characters; header values are not).
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The name [`escape`] wrote; INVALID_ARGUMENT for a value it could not have.
pub fn unescape(value: &str) -> Result<String, RpcError> {
    let bad = || RpcError::invalid_argument("a dial's object name is not escaped");
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = tail.get(..2).and_then(|h| std::str::from_utf8(h).ok()).ok_or_else(bad)?;
            bytes.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).map_err(|_| bad())
}
