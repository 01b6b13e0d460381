//! dotdo's transports: thin async adapters that implement [`rpc_core::pump::FrameIo`]
//! over a real socket, so a [`rpc_core::pump::Pump`] can move a session's frames. The
//! protocol logic (limits, framing, the RPC engine) lives in `rpc-core`; a transport only
//! knows how to read and write frames.
//!
//! - [`websocket`]: one message per binary frame, subprotocol `capnp-rpc`;
//! - [`tcp`]: the standard Cap'n Proto stream (for native peers in any language);
//! - [`budget`]: the server-wide budget for bytes held in partial frames;
//! - [`timeouts`]: a session's idle and partial-frame deadlines;
//! - [`metered`]: the socket wrapper that lets a WebSocket's partial frames be counted.

pub mod budget;
pub mod metered;
pub mod tcp;
pub mod timeouts;
pub mod websocket;
