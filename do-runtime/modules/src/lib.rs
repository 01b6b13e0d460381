//! dotdo's module servers: storage (Things and the query language), events, schedule,
//! key-value entries and workflows; each is
//! a Cap'n Proto capability server behind the RPC layer. They reach SQL, time,
//! randomness and background work only through the traits in [`host`], so the same
//! servers run natively (rusqlite, tokio) and inside Cloudflare Durable Objects
//! (wasm32: `cargo check -p do-modules --target wasm32-unknown-unknown`).

pub mod class;
pub mod events;
pub mod host;
pub mod kv;
pub mod object;
pub mod output_gate;
pub mod schedule;
pub mod snapshot;
pub mod storage;
pub mod workflow;
pub mod wrap_modules;
