//! The broker object: minting and checking capability tokens, routing calls to objects,
//! sharding and fan-out. This crate is a placeholder that the broker issue fills; it
//! depends on `rpc-core` so the workspace's dependency direction is fixed from the start.

/// The RPC layer the broker is built on.
pub use rpc_core as core;
