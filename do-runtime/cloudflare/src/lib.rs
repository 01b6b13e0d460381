//! dotdo on Cloudflare: the object classes and module servers of `do-modules` run as
//! real Durable Objects (workers-rs), and the Worker in front of them serves the same
//! session gateway and paths as `dotdo serve`.
//!
//! - The **Worker** ([`routes::fetch`]) answers `GET /rpc` (a WebSocket session,
//!   subprotocol `capnp-rpc`), `POST /rpc` (an HTTP batch), Cap'n Web's `/capnweb`
//!   (both transports) and `GET /health`. Each
//!   session's bootstrap is a [`gateway::Gateway`]; `gateway.object(class, name)`
//!   reaches the Durable Object named `namespace/class/name` ([`hop`]).
//! - Each **object** is one [`object::DotdoObject`] (a SQLite-backed Durable Object
//!   class): its class's instance over the object's `SqlStorage` ([`sql`]), clock,
//!   randomness and alarm ([`host`]); other objects through [`peers`].
//! - The **broker** ([`broker`]) is a Durable Object per namespace: tokens are minted,
//!   redeemed and checked there, and revocations kept, for every isolate alike.
//! - Between the Worker and an object, and between objects, the RPC runs over a
//!   WebSocket ([`socket`]): one Cap'n Proto message per binary message, so a call
//!   pipelined on a promise the Worker has not yet resolved goes on to the object
//!   without a round trip back to the client.
//!
//! The `entry` feature (default) declares the Worker's entry points, serving the
//! built-in class under every name and the examples' `Counter`. A crate of its own
//! classes depends on this one without it and declares its own:
//!
//! ```ignore
//! #[worker::event(start)]
//! fn start() {
//!     let mut classes = do_modules::class::Classes::default();
//!     classes.add::<my_classes::Shop>("Shop").expect("a class name");
//!     do_cloudflare::serve_classes(classes);
//! }
//! #[worker::event(fetch)]
//! async fn fetch(req: worker::Request, env: worker::Env, _: worker::Context) -> worker::Result<worker::Response> {
//!     do_cloudflare::routes::fetch(req, env).await
//! }
//! ```

// The `durable_object` macro adds undocumented items of its own.
#[allow(missing_docs)]
pub mod broker;
pub mod capnweb;
pub mod gateway;
pub mod hop;
pub mod host;
// The `durable_object` macro adds undocumented items of its own.
#[allow(missing_docs)]
pub mod object;
pub mod peers;
pub mod routes;
pub mod socket;
pub mod sql;

#[cfg(feature = "entry")]
mod entry;

use do_modules::class::Classes;
use std::cell::RefCell;
use std::rc::Rc;

/// The Durable Object binding of [`object::DotdoObject`] (`wrangler.toml`).
pub const OBJECTS_BINDING: &str = "OBJECTS";

/// The Durable Object binding of [`broker::DotdoBroker`] (`wrangler.toml`).
pub const BROKER_BINDING: &str = "BROKER";

thread_local! {
    static CLASSES: RefCell<Rc<Classes>> = RefCell::new(Rc::new(Classes::default()));
}

/// Serves `classes` (call it from the Worker's `start` event). Until it is called,
/// every valid class name is the built-in class, as with `dotdo serve`.
pub fn serve_classes(classes: Classes) {
    CLASSES.with(|c| *c.borrow_mut() = Rc::new(classes));
}

/// The classes served.
pub fn classes() -> Rc<Classes> {
    CLASSES.with(|c| c.borrow().clone())
}
