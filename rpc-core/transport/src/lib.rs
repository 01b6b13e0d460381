//! dotdo's transports: thin async adapters that implement [`rpc_core::pump::FrameIo`]
//! over a real socket, so a [`rpc_core::pump::Pump`] can move a session's frames. The
//! protocol logic (limits, framing, the RPC engine) lives in `rpc-core`; a transport only
//! knows how to read and write frames.
//!
//! - [`websocket`]: one message per binary frame, subprotocol `capnp-rpc`;
//! - [`tcp`]: the standard Cap'n Proto stream (for native peers in any language).

pub mod tcp;
pub mod websocket;
