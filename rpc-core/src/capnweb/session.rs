//! One Cap'n Web session: the import and export tables, the evaluation of what the
//! peer pushes (calls turned into Cap'n Proto calls through [`super::reflect`]), and
//! calls on the peer's own objects (callbacks) made by Cap'n Proto code.
//!
//! A session does no I/O: the transport feeds it each message ([`Session::receive`]),
//! sends what comes out of the receiver [`Session::new`] returns, and polls the
//! [`Driver`], which runs the session's work. So it runs on any executor.

use super::reflect;
use super::value::{Cap, PathKey, Value};
use super::wire::{self, Capture, Expr, Message};
use crate::{Code, RpcError};
use capnp::capability::Promise;
use futures::channel::{mpsc, oneshot};
use futures::future::{LocalBoxFuture, Shared};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};

type Outcome = Result<Value, RpcError>;
type SharedOutcome = Shared<LocalBoxFuture<'static, Outcome>>;

/// What one session may ask of the server.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Deepest nesting of one message's JSON.
    pub max_depth: usize,
    /// Calls the peer may have running at once; more are rejected OVERLOADED.
    pub max_calls_in_flight: usize,
    /// Entries the peer may have the session hold at once (results of pushes not yet
    /// released, stubs sent to it, its own objects); past it the session is aborted
    /// with LIMIT_EXCEEDED. A `capnweb` client releases each result once it has it.
    pub max_entries: usize,
}

impl SessionLimits {
    /// The Cap'n Web limits that follow from the server's limits.
    pub fn from_limits(l: &crate::Limits) -> Self {
        SessionLimits {
            max_depth: usize::try_from(l.nesting_limit).unwrap_or(64).clamp(8, 128),
            max_calls_in_flight: l.max_calls_in_flight,
            max_entries: (16 * l.max_calls_in_flight).max(65_536),
        }
    }
}

struct Export {
    value: SharedOutcome,
    refcount: u64,
}

#[derive(Default)]
struct Import {
    /// How many times the peer introduced this id (`export` expressions).
    introduced: u64,
    /// For our pushes and the peer's promises: where the resolution goes.
    resolver: Option<oneshot::Sender<Outcome>>,
}

struct State {
    exports: HashMap<i64, Export>,
    next_push: i64,
    next_export: i64,
    imports: HashMap<i64, Import>,
    next_import: i64,
    pulls: usize,
    in_flight: usize,
    closed: bool,
    drained: Vec<oneshot::Sender<()>>,
}

struct Inner {
    state: RefCell<State>,
    out: mpsc::UnboundedSender<String>,
    spawn: mpsc::UnboundedSender<LocalBoxFuture<'static, ()>>,
    limits: SessionLimits,
}

/// A Cap'n Web session serving `main` (export 0) to one peer.
#[derive(Clone)]
pub struct Session {
    inner: Rc<Inner>,
}

/// Runs a session's work (calls, pulls); poll it with the transport. It never ends by
/// itself: drop it when the transport ends.
pub struct Driver {
    incoming: mpsc::UnboundedReceiver<LocalBoxFuture<'static, ()>>,
    tasks: FuturesUnordered<LocalBoxFuture<'static, ()>>,
}

impl Future for Driver {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            while let Poll::Ready(Some(task)) = self.incoming.poll_next_unpin(cx) {
                self.tasks.push(task);
            }
            match self.tasks.poll_next_unpin(cx) {
                Poll::Ready(Some(())) => continue,
                _ => {
                    // A task may have spawned another while it ran.
                    if let Poll::Ready(Some(task)) = self.incoming.poll_next_unpin(cx) {
                        self.tasks.push(task);
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

fn ready(v: Outcome) -> SharedOutcome {
    futures::future::ready(v).boxed_local().shared()
}

fn not_found(what: &str, id: i64) -> RpcError {
    RpcError::new(Code::NotFound, format!("no {what} with id {id} in this session"))
}

/// Where a remap's instructions find ids: 0 the input, negative the captures,
/// positive the results of earlier instructions.
struct MapScope {
    input: Value,
    captures: Vec<Value>,
    results: RefCell<Vec<Value>>,
}

impl Session {
    /// A session whose export 0 is `main`; also the driver to poll and the messages to
    /// send, in order.
    pub fn new(main: Cap, limits: SessionLimits) -> (Session, Driver, mpsc::UnboundedReceiver<String>) {
        let (out, out_rx) = mpsc::unbounded();
        let (spawn, incoming) = mpsc::unbounded();
        let mut exports = HashMap::new();
        exports.insert(0, Export { value: ready(Ok(Value::Cap(main))), refcount: 1 });
        let state = State {
            exports,
            next_push: 1,
            next_export: -1,
            imports: HashMap::new(),
            next_import: 1,
            pulls: 0,
            in_flight: 0,
            closed: false,
            drained: Vec::new(),
        };
        let inner = Rc::new(Inner { state: RefCell::new(state), out, spawn, limits });
        (Session { inner }, Driver { incoming, tasks: FuturesUnordered::new() }, out_rx)
    }

    /// Handles one message from the peer. An error means the peer broke the protocol:
    /// an `abort` carrying it has been queued and the transport should close after
    /// sending what is queued.
    pub fn receive(&self, text: &str) -> Result<(), RpcError> {
        if self.inner.state.borrow().closed {
            return Err(RpcError::new(Code::Disconnected, "the session has ended"));
        }
        {
            let s = self.inner.state.borrow();
            let held = s.exports.len() + s.imports.len();
            if held >= self.inner.limits.max_entries {
                drop(s);
                return Err(self.abort(RpcError::new(
                    Code::LimitExceeded,
                    format!(
                        "the session holds {held} results and stubs: release some (the limit is {})",
                        self.inner.limits.max_entries
                    ),
                )));
            }
        }
        let message = match wire::parse_message(text, self.inner.limits.max_depth) {
            Ok(m) => m,
            Err(e) if is_push(text) => {
                // A push that does not parse still takes its id, so the ids that
                // follow stay in step; pulling it gives the error.
                self.push(Err(e));
                return Ok(());
            }
            Err(e) => return Err(self.abort(e)),
        };
        match message {
            Message::Push(e) => {
                self.push(Ok(e));
            }
            Message::Stream(e) => {
                let id = self.push(Ok(e));
                self.pull(id, true);
            }
            Message::Pull(id) => self.pull(id, false),
            Message::Release(id, n) => self.release(id, n),
            Message::Resolve(id, e) => self.settle(id, Ok(e)),
            Message::Reject(id, e) => self.settle(id, Err(e)),
            Message::Abort(_) => {
                self.close();
                return Err(RpcError::new(Code::Disconnected, "the peer aborted the session"));
            }
        }
        Ok(())
    }

    /// Queues an `abort` with `e` and ends the session; returns `e`.
    pub fn abort(&self, e: RpcError) -> RpcError {
        let _ = self.inner.out.unbounded_send(serde_json::json!(["abort", wire::error_expr(&e)]).to_string());
        self.close();
        e
    }

    /// Ends the session: drops every export (releasing the capabilities) and fails
    /// calls waiting on the peer.
    pub fn close(&self) {
        let (exports, imports, waiters) = {
            let mut s = self.inner.state.borrow_mut();
            s.closed = true;
            (std::mem::take(&mut s.exports), std::mem::take(&mut s.imports), std::mem::take(&mut s.drained))
        };
        drop((exports, imports));
        for w in waiters {
            let _ = w.send(());
        }
    }

    /// Resolves when no pulled result is still outstanding (an HTTP batch is answered
    /// then).
    pub fn drained(&self) -> impl Future<Output = ()> {
        let (tx, rx) = oneshot::channel();
        let mut s = self.inner.state.borrow_mut();
        if s.pulls == 0 || s.closed {
            let _ = tx.send(());
        } else {
            s.drained.push(tx);
        }
        rx.map(|_| ())
    }

    fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        let _ = self.inner.spawn.unbounded_send(task.boxed_local());
    }

    fn push(&self, e: Result<Expr, RpcError>) -> i64 {
        let inner = self.inner.clone();
        let value: SharedOutcome = match e {
            Ok(e) => async move { eval(inner, e, None).await }.boxed_local().shared(),
            Err(e) => ready(Err(e)),
        };
        // Start it now: a call runs whether or not anyone pulls it.
        let run = value.clone();
        self.spawn(async move {
            let _ = run.await;
        });
        let mut s = self.inner.state.borrow_mut();
        let id = s.next_push;
        s.next_push += 1;
        s.exports.insert(id, Export { value, refcount: 1 });
        id
    }

    fn pull(&self, id: i64, release_after: bool) {
        let value = self.inner.state.borrow().exports.get(&id).map(|e| e.value.clone());
        let value = value.unwrap_or_else(|| ready(Err(not_found("export", id))));
        self.inner.state.borrow_mut().pulls += 1;
        let session = self.clone();
        self.spawn(async move {
            let outcome = value.await;
            let text = match outcome {
                Ok(v) => {
                    let encoded = session.encode(&v);
                    wire::message_text("resolve", id, encoded)
                }
                Err(e) => wire::message_text("reject", id, wire::error_expr(&e)),
            };
            let _ = session.inner.out.unbounded_send(text);
            if release_after {
                session.release(id, 1);
            }
            let waiters = {
                let mut s = session.inner.state.borrow_mut();
                s.pulls -= 1;
                if s.pulls == 0 {
                    std::mem::take(&mut s.drained)
                } else {
                    Vec::new()
                }
            };
            for w in waiters {
                let _ = w.send(());
            }
        });
    }

    fn release(&self, id: i64, n: u64) {
        let removed = {
            let mut s = self.inner.state.borrow_mut();
            match s.exports.get_mut(&id) {
                Some(e) if e.refcount <= n => s.exports.remove(&id),
                Some(e) => {
                    e.refcount -= n;
                    None
                }
                None => None,
            }
        };
        drop(removed);
    }

    fn settle(&self, id: i64, e: Result<Expr, Expr>) {
        let resolver = self.inner.state.borrow_mut().imports.get_mut(&id).and_then(|i| i.resolver.take());
        let Some(resolver) = resolver else { return };
        let inner = self.inner.clone();
        self.spawn(async move {
            let outcome = match e {
                Ok(e) => eval(inner, e, None).await,
                Err(e) => match eval(inner, e, None).await {
                    Ok(Value::Error(e)) => Err(e),
                    Ok(other) => Err(RpcError::new(Code::Internal, format!("the peer rejected with {}", other.kind()))),
                    Err(e) => Err(e),
                },
            };
            let _ = resolver.send(outcome);
        });
    }

    /// Encodes a value, exporting each capability in it under a new id.
    fn encode(&self, v: &Value) -> serde_json::Value {
        let mut export = |cap: Cap| {
            let mut s = self.inner.state.borrow_mut();
            let id = s.next_export;
            s.next_export -= 1;
            s.exports.insert(id, Export { value: ready(Ok(Value::Cap(cap))), refcount: 1 });
            id
        };
        wire::encode(v, &mut export)
    }
}

fn is_push(text: &str) -> bool {
    let t = text.trim_start();
    t.strip_prefix('[')
        .is_some_and(|r| r.trim_start().starts_with("\"push\"") || r.trim_start().starts_with("\"stream\""))
}

fn eval(inner: Rc<Inner>, e: Expr, scope: Option<Rc<MapScope>>) -> LocalBoxFuture<'static, Outcome> {
    async move {
        match e {
            Expr::Value(v) => Ok(v),
            Expr::Array(items) => {
                let items = items.into_iter().map(|e| eval(inner.clone(), e, scope.clone()));
                Ok(Value::Array(futures::future::try_join_all(items).await?))
            }
            Expr::Object(fields) => {
                let (keys, exprs): (Vec<String>, Vec<Expr>) = fields.into_iter().unzip();
                let values =
                    futures::future::try_join_all(exprs.into_iter().map(|e| eval(inner.clone(), e, scope.clone())))
                        .await?;
                Ok(Value::Object(keys.into_iter().zip(values).collect()))
            }
            Expr::Export(id) => {
                if scope.is_some() {
                    return Err(RpcError::invalid_argument("a map's instructions cannot export"));
                }
                Ok(Value::Cap(peer_stub(&inner, id)))
            }
            Expr::Promise(id) => {
                let (tx, rx) = oneshot::channel();
                inner.state.borrow_mut().imports.insert(id, Import { introduced: 1, resolver: Some(tx) });
                rx.await.unwrap_or_else(|_| Err(RpcError::new(Code::Disconnected, "the session ended")))
            }
            Expr::Get { id, path, args } => {
                let base = lookup(&inner, id, scope.as_deref()).await?;
                match args {
                    None => navigate(base, &path),
                    Some(args) => {
                        let Some((method, to)) = path.split_last() else {
                            return Err(RpcError::invalid_argument("a call needs a method name in its path"));
                        };
                        let target = navigate(base, to)?;
                        let args = futures::future::try_join_all(
                            args.into_iter().map(|a| eval(inner.clone(), a, scope.clone())),
                        )
                        .await?;
                        call(&inner, target, method, args).await
                    }
                }
            }
            Expr::Remap { id, path, captures, instructions } => {
                let base = navigate(lookup(&inner, id, scope.as_deref()).await?, &path)?;
                let mut caps = Vec::new();
                for c in captures {
                    caps.push(match c {
                        Capture::Import(i) => lookup(&inner, i, scope.as_deref()).await?,
                        Capture::Export(i) => Value::Cap(peer_stub(&inner, i)),
                    });
                }
                remap(inner, base, caps, Rc::new(instructions)).await
            }
        }
    }
    .boxed_local()
}

/// `.map()`: runs the instructions once per element of an array (or once on a single
/// value; `null` and `undefined` map to themselves).
async fn remap(inner: Rc<Inner>, base: Value, captures: Vec<Value>, instructions: Rc<Vec<Expr>>) -> Outcome {
    let run = |input: Value| {
        let (inner, captures, instructions) = (inner.clone(), captures.clone(), instructions.clone());
        async move {
            let scope = Rc::new(MapScope { input, captures, results: RefCell::new(Vec::new()) });
            let mut last = Value::Undefined;
            for i in instructions.iter() {
                last = eval(inner.clone(), clone_expr(i)?, Some(scope.clone())).await?;
                scope.results.borrow_mut().push(last.clone());
            }
            Ok::<Value, RpcError>(last)
        }
    };
    match base {
        Value::Array(items) => Ok(Value::Array(futures::future::try_join_all(items.into_iter().map(run)).await?)),
        v @ (Value::Null | Value::Undefined) => Ok(v),
        v => run(v).await,
    }
}

/// Instructions run once per element, so they are copied (capabilities inside values
/// are shared, not copied). A map's instructions may not export or make promises: those
/// are refused here.
fn clone_expr(e: &Expr) -> Result<Expr, RpcError> {
    Ok(match e {
        Expr::Value(v) => Expr::Value(v.clone()),
        Expr::Array(items) => Expr::Array(items.iter().map(clone_expr).collect::<Result<_, _>>()?),
        Expr::Object(fields) => {
            Expr::Object(fields.iter().map(|(k, v)| Ok((k.clone(), clone_expr(v)?))).collect::<Result<_, RpcError>>()?)
        }
        Expr::Get { id, path, args } => Expr::Get {
            id: *id,
            path: path.clone(),
            args: args.as_ref().map(|a| a.iter().map(clone_expr).collect::<Result<_, _>>()).transpose()?,
        },
        Expr::Remap { id, path, captures, instructions } => Expr::Remap {
            id: *id,
            path: path.clone(),
            captures: captures.clone(),
            instructions: instructions.iter().map(clone_expr).collect::<Result<_, _>>()?,
        },
        Expr::Export(_) | Expr::Promise(_) => {
            return Err(RpcError::invalid_argument("a map's instructions cannot export or make promises"))
        }
    })
}

async fn lookup(inner: &Rc<Inner>, id: i64, scope: Option<&MapScope>) -> Outcome {
    if let Some(scope) = scope {
        return match id {
            0 => Ok(scope.input.clone()),
            i if i < 0 => scope.captures.get((-i - 1) as usize).cloned().ok_or_else(|| not_found("capture", i)),
            i => scope.results.borrow().get((i - 1) as usize).cloned().ok_or_else(|| not_found("instruction", i)),
        };
    }
    let value = inner.state.borrow().exports.get(&id).map(|e| e.value.clone());
    match value {
        Some(v) => v.await,
        None => Err(not_found("export", id)),
    }
}

fn navigate(mut v: Value, path: &[PathKey]) -> Outcome {
    for key in path {
        v = v.get(key)?;
    }
    Ok(v)
}

/// Calls `name` on a capability: the Cap'n Proto call of that method, built from the
/// schema.
async fn call(inner: &Rc<Inner>, target: Value, name: &PathKey, args: Vec<Value>) -> Outcome {
    let Value::Cap(cap) = target else {
        return Err(RpcError::invalid_argument(format!("cannot call `{name}` on {}", target.kind())));
    };
    let PathKey::Name(name) = name else {
        return Err(RpcError::invalid_argument(format!("`{name}` is not a method name")));
    };
    {
        let mut s = inner.state.borrow_mut();
        if s.in_flight >= inner.limits.max_calls_in_flight {
            return Err(RpcError::new(
                Code::Overloaded,
                format!("more than {} calls in flight on this session", inner.limits.max_calls_in_flight),
            ));
        }
        s.in_flight += 1;
    }
    let outcome = call_method(&cap, name, &args).await;
    inner.state.borrow_mut().in_flight -= 1;
    outcome
}

async fn call_method(cap: &Cap, name: &str, args: &[Value]) -> Outcome {
    let mut candidates: Vec<(u64, &'static schema::MethodDesc)> =
        reflect::method(cap.interface, name).into_iter().collect();
    if candidates.is_empty() {
        // A user's class reached as an `Object`: its own methods are on an interface
        // that extends `Object`; the first that the object implements answers.
        candidates = reflect::subinterfaces_with(cap.interface, name);
    }
    if candidates.is_empty() {
        return Err(RpcError::new(
            Code::Unimplemented,
            format!(
                "{} has no method `{name}` (methods: {})",
                reflect::interface_name(cap.interface),
                reflect::method_names(cap.interface).join(", ")
            ),
        ));
    }
    let last = candidates.len() - 1;
    for (i, (iface, m)) in candidates.into_iter().enumerate() {
        let what = format!("{}.{name}", reflect::interface_name(iface));
        let params = reflect::struct_schema((m.params)())?;
        let remote: capnp::capability::Client = capnp_rpc::new_client(Remote(cap.client.hook.add_ref()));
        let mut req: capnp::capability::Request<capnp::any_pointer::Owned, capnp::any_pointer::Owned> =
            remote.new_call(iface, m.ordinal, None);
        reflect::write_params(req.get(), params, args, &what)?;
        match req.send().promise.await {
            Ok(response) => {
                let results = reflect::struct_schema((m.results)())?;
                return reflect::read_results(response.get().map_err(RpcError::from)?, results);
            }
            Err(e) => {
                let e = RpcError::from(e);
                if e.code != Code::Unimplemented || i == last {
                    return Err(e);
                }
            }
        }
    }
    Err(RpcError::new(Code::Internal, "no candidate answered"))
}

// ---- calls into capabilities, as a remote peer's ----

/// A capability reached the way a remote peer's calls reach it (`ClientHook::call`,
/// not an in-process `new_call`), so its layers treat the JavaScript caller as the
/// remote caller it is: a token's membrane, say, wraps the modules its getters hand
/// out (and refuses those getters to in-process callers).
pub struct Remote(Box<dyn capnp::private::capability::ClientHook>);

impl Serve for Remote {
    fn serve(
        self: Rc<Self>,
        interface_id: u64,
        method_id: u16,
        params: capnp::capability::Params<capnp::any_pointer::Owned>,
        results: capnp::capability::Results<capnp::any_pointer::Owned>,
    ) -> Promise<(), capnp::Error> {
        self.0.call(interface_id, method_id, params.hook, results.hook)
    }
}

impl capnp::capability::FromServer<Remote> for capnp::capability::Client {
    type Dispatch = Served<Remote>;
    fn from_server(s: Rc<Remote>) -> Served<Remote> {
        Served(s)
    }
}

/// A server that takes any call (the interface and method as numbers): what
/// [`Remote`] and [`PeerTarget`] are, served through [`Served`].
pub trait Serve {
    /// Runs one call.
    fn serve(
        self: Rc<Self>,
        interface_id: u64,
        method_id: u16,
        params: capnp::capability::Params<capnp::any_pointer::Owned>,
        results: capnp::capability::Results<capnp::any_pointer::Owned>,
    ) -> Promise<(), capnp::Error>;
}

/// The capnp dispatch of a [`Serve`]r.
pub struct Served<T>(Rc<T>);

impl<T> Clone for Served<T> {
    fn clone(&self) -> Self {
        Served(self.0.clone())
    }
}

impl<T> std::ops::Deref for Served<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Serve> capnp::capability::Server for Served<T> {
    fn dispatch_call(
        self,
        interface_id: u64,
        method_id: u16,
        params: capnp::capability::Params<capnp::any_pointer::Owned>,
        results: capnp::capability::Results<capnp::any_pointer::Owned>,
    ) -> capnp::capability::DispatchCallResult {
        capnp::capability::DispatchCallResult::new(self.0.serve(interface_id, method_id, params, results), false)
    }

    fn as_ptr(&self) -> usize {
        Rc::as_ptr(&self.0) as usize
    }
}

// ---- the peer's objects, as Cap'n Proto capabilities ----

/// A stub the peer exported (e.g. an events `Handler` written in JavaScript), served to
/// Cap'n Proto code: each call becomes a push to the peer.
pub struct PeerTarget {
    session: Weak<Inner>,
    id: i64,
}

fn peer_stub(inner: &Rc<Inner>, id: i64) -> Cap {
    inner.state.borrow_mut().imports.entry(id).or_default().introduced += 1;
    let target = PeerTarget { session: Rc::downgrade(inner), id };
    Cap { client: capnp_rpc::new_client::<capnp::capability::Client, PeerTarget>(target), interface: 0 }
}

impl Drop for PeerTarget {
    fn drop(&mut self) {
        let Some(inner) = self.session.upgrade() else { return };
        let introduced = inner.state.borrow_mut().imports.remove(&self.id).map_or(0, |i| i.introduced);
        if introduced > 0 {
            let _ = inner.out.unbounded_send(serde_json::json!(["release", self.id, introduced]).to_string());
        }
    }
}

impl PeerTarget {
    async fn dispatch(
        self: Rc<Self>,
        interface_id: u64,
        method_id: u16,
        params: capnp::capability::Params<capnp::any_pointer::Owned>,
        mut results: capnp::capability::Results<capnp::any_pointer::Owned>,
    ) -> Result<(), capnp::Error> {
        let inner = self
            .session
            .upgrade()
            .ok_or_else(|| capnp::Error::from(RpcError::new(Code::Disconnected, "the JavaScript session has ended")))?;
        let (_, m) = schema::method(interface_id, method_id).ok_or_else(|| {
            capnp::Error::from(RpcError::new(
                Code::Unimplemented,
                format!("method {interface_id:#x}@{method_id} is not in the schema"),
            ))
        })?;
        let args = reflect::read_args(params.get()?, reflect::struct_schema((m.params)())?)?;
        let session = Session { inner: inner.clone() };
        let encoded: Vec<serde_json::Value> = args.iter().map(|a| session.encode(a)).collect();
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut s = inner.state.borrow_mut();
            if s.closed {
                return Err(RpcError::new(Code::Disconnected, "the JavaScript session has ended").into());
            }
            let id = s.next_import;
            s.next_import += 1;
            s.imports.insert(id, Import { introduced: 0, resolver: Some(tx) });
            id
        };
        let call = serde_json::json!(["push", ["pipeline", self.id, [m.name], encoded]]);
        let _ = inner.out.unbounded_send(call.to_string());
        let _ = inner.out.unbounded_send(serde_json::json!(["pull", id]).to_string());
        drop(inner);
        let outcome =
            rx.await.unwrap_or_else(|_| Err(RpcError::new(Code::Disconnected, "the JavaScript session ended")));
        if let Some(inner) = self.session.upgrade() {
            inner.state.borrow_mut().imports.remove(&id);
            let _ = inner.out.unbounded_send(serde_json::json!(["release", id, 1]).to_string());
        }
        let v = outcome?;
        reflect::write_results(results.get(), reflect::struct_schema((m.results)())?, &v, m.name)?;
        Ok(())
    }
}

impl Serve for PeerTarget {
    fn serve(
        self: Rc<Self>,
        interface_id: u64,
        method_id: u16,
        params: capnp::capability::Params<capnp::any_pointer::Owned>,
        results: capnp::capability::Results<capnp::any_pointer::Owned>,
    ) -> Promise<(), capnp::Error> {
        Promise::from_future(self.dispatch(interface_id, method_id, params, results))
    }
}

impl capnp::capability::FromServer<PeerTarget> for capnp::capability::Client {
    type Dispatch = Served<PeerTarget>;
    fn from_server(s: Rc<PeerTarget>) -> Served<PeerTarget> {
        Served(s)
    }
}
