//! What the fuzz targets share: a bounded single-threaded runtime per input, the demo
//! bootstrap capability the session targets serve, and the fixed token key.
//!
//! Each target (in `fuzz_targets/`) feeds one decoder of outside input; this crate is
//! not part of the main workspace because `cargo fuzz` needs a nightly toolchain.

use rpc_core::layer::{Deadline, Stack, TagErrors};
use rpc_core::Limits;
use schema::demo_capnp::directory;
use std::future::Future;
use std::time::Duration;

/// How long (in the runtime's paused, virtual time) one input may run before it is cut
/// off: longer than the call deadline, so every path that ends does end.
pub const INPUT_DEADLINE: Duration = Duration::from_secs(120);

/// Runs `f` on a fresh current-thread runtime inside a `LocalSet` (the RPC engine is
/// `!Send`), with time paused: timers fire as soon as nothing else can run, so an input
/// that waits for a deadline costs no wall time, and each input ends within
/// [`INPUT_DEADLINE`] of virtual time.
pub fn run_local<F: Future>(f: F) -> Option<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async { tokio::time::timeout(INPUT_DEADLINE, f).await.ok() })
}

/// The demo directory (`demo.capnp`) behind the error-tag and deadline layers, as a
/// session's bootstrap: it opens files, pipelines, calls back into the client and sleeps.
pub fn demo_bootstrap(limits: &Limits) -> capnp::capability::Client {
    let stack = Stack::new().layer(TagErrors).layer(Deadline::new(limits.call_timeout));
    let dir: directory::Client = stack.server(do_runtime::demo::directory(stack.clone()));
    dir.client
}

/// The fixed HMAC secret (base64url) of the `token` target's key `k1`.
pub const TOKEN_SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";

/// The time the `token` target verifies at (ms since the epoch).
pub const TOKEN_NOW: i64 = 1_700_000_000_000;
