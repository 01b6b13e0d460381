//! dotdo's RPC protocol core: Cap'n Proto RPC (promise pipelining, capability passing
//! and release, from `capnp-rpc`) driven over message queues, with negotiation, typed
//! errors that cross the wire, and per-session limits. Nothing here does I/O.
//!
//! The pieces are plain types and functions testable without a socket: [`framing`]
//! (message framing), [`guard`] (limits on incoming messages), [`negotiation`],
//! the naming rules ([`ident`]), reading parameters ([`params`]),
//! [`namespace`], [`error`], the queue [`vat`] the engine runs on, the [`pump`] that a
//! transport drives, and the HTTP [`batch`] protocol and WebSocket framing ([`wsframe`]). The async transports live in the
//! `rpc-transport` crate and the listeners in `rpc-server`.
//!
//! Cross-cutting concerns (deadlines, metrics, tracing, error tags, token checks) are
//! [`layer`]s stacked around capabilities. The layers that keep time (deadline, metrics,
//! trace) need the default `timer` feature, as does [`batch::serve_batch`] (a tokio
//! deadline; [`batch::serve_batch_until`] takes the host's timer instead); without it the crate builds for `wasm32-unknown-unknown`.
//!
//! ```
//! use rpc_core::{Code, RpcError};
//! let e = RpcError::new(Code::NotFound, "no such file");
//! let on_the_wire: capnp::Error = e.clone().into();
//! assert_eq!(RpcError::from(on_the_wire), e);
//! ```

pub mod batch;
pub mod bootstrap;
pub mod capnweb;
pub mod demo;
pub mod error;
pub mod framing;
pub mod guard;
pub mod ident;
pub mod layer;
pub mod limits;
pub mod metrics;
pub mod namespace;
pub mod negotiation;
pub mod params;
pub mod pump;
pub mod vat;
pub mod wsframe;

pub use error::{Code, RpcError};
pub use layer::Stack;
pub use limits::Limits;
