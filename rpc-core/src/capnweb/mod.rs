//! Cap'n Web, the JSON object-capability protocol of Cloudflare's `capnweb` npm
//! package, bridged onto dotdo's Cap'n Proto capabilities, so JavaScript (a browser,
//! Node, a Worker) calls every capability with the unmodified `capnweb` client.
//!
//! - [`wire`]: the messages and expressions of the protocol (`push`, `pull`,
//!   `resolve`, `reject`, `release`, `abort`, `stream`; `pipeline`, `import`, `export`,
//!   `promise`, `remap`, `error`, `date`, `bytes`, `bigint`, escaped arrays).
//! - [`reflect`]: values to and from Cap'n Proto structs, driven by the schema (no
//!   code per interface; a user's class is bridged from its registered table).
//! - [`session`]: the import and export tables, evaluation and pipelining, `.map()`,
//!   and the peer's objects (callbacks) as Cap'n Proto capabilities.
//!
//! - [`batch`]: an HTTP batch of newline-separated messages, given the host's timer.
//!
//! The transports (a WebSocket, the HTTP listener) live in `rpc-server` and in the
//! Cloudflare Worker; nothing here does I/O.

pub mod batch;
pub mod reflect;
pub mod session;
pub mod value;
pub mod wire;

pub use session::{Driver, Session, SessionLimits};
pub use value::{Cap, PathKey, Value};
