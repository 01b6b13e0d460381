//! dotdo's RPC layer: Cap'n Proto RPC (promise pipelining, capability passing and
//! release, from `capnp-rpc`) carried over WebSocket, HTTP batch and TCP, with
//! negotiation, typed errors that cross the wire, and per-session limits.
//!
//! The protocol pieces are plain types and functions testable without a socket:
//! [`framing`] (message framing), [`guard`] (limits on incoming messages),
//! [`negotiation`], [`namespace`], [`error`]. The transports in [`transport`] are thin
//! adapters that move frames between a socket and a [`vat::Link`]; [`server`] puts
//! them behind one HTTP listener and one TCP listener.
//!
//! Without the default `native` feature the crate is the protocol core alone (errors,
//! framing, limits, negotiation, the queue vat) and builds for `wasm32-unknown-unknown`.
//!
//! ```
//! use rpc_core::{Code, RpcError};
//! let e = RpcError::new(Code::NotFound, "no such file");
//! let on_the_wire: capnp::Error = e.clone().into();
//! assert_eq!(RpcError::from(on_the_wire), e);
//! ```

pub mod error;
pub mod framing;
pub mod guard;
#[cfg(feature = "native")]
pub mod layer;
pub mod limits;
pub mod metrics;
pub mod namespace;
pub mod negotiation;
#[cfg(feature = "native")]
pub mod server;
#[cfg(feature = "tokens")]
pub mod token;
#[cfg(feature = "native")]
pub mod transport;
pub mod vat;

pub use error::{Code, RpcError};
#[cfg(feature = "native")]
pub use layer::Layer;
pub use limits::Limits;
