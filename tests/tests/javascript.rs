//! JavaScript against a real server: the Node test suite (`js/test/gateway.test.mjs`,
//! the official `capnweb` client over `/capnweb`) and the browser test of the page
//! (`js/test/browser.test.mjs`, headless Chromium), each run with `node --test` against
//! the example app (`examples::js_app`) served from this process.
//!
//! They need Node and `npm ci` in `js/` (the browser test also needs `/usr/bin/chromium`);
//! without them they are skipped with a notice, unless `DOTDO_REQUIRE_NODE=1` (and
//! `DOTDO_REQUIRE_BROWSER=1`), as in CI, where a missing tool fails them.

mod common;

use common::node::{node_ready, run_node_test_at};
use rpc_server::ServerConfig;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

static RUN: AtomicU32 = AtomicU32::new(0);

/// Runs `node --test js/test/<file>` against a fresh server of the example app; panics
/// with the output when a test fails.
fn run_node_test(file: &str) {
    let dir =
        std::env::temp_dir().join(format!("dotdo-js-{}-{}", std::process::id(), RUN.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&dir).expect("data dir");
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        tcp_addr: None,
        workers: 2,
        ..ServerConfig::default()
    };
    let running = examples::js_app::app(&dir).expect("app").start(config).expect("server starts");
    let url = format!("http://{}", running.server.http_addr);
    let out = std::panic::catch_unwind(|| run_node_test_at(file, &url, &[], &[]));
    running.server.stop();
    let _ = std::fs::remove_dir_all(&dir);
    match out {
        Ok(stdout) => println!("{stdout}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[test]
fn the_capnweb_client_calls_every_kind_of_capability() {
    if !node_ready("the JavaScript tests") {
        return;
    }
    run_node_test("gateway.test.mjs");
}

#[test]
fn the_page_shows_things_live_in_chromium() {
    if !node_ready("the browser test") {
        return;
    }
    if !Path::new("/usr/bin/chromium").exists() {
        assert!(
            !common::node::required("DOTDO_REQUIRE_BROWSER"),
            "DOTDO_REQUIRE_BROWSER=1 but /usr/bin/chromium is missing"
        );
        eprintln!("skipping the browser test: /usr/bin/chromium is missing (apt-get install chromium)");
        return;
    }
    // The page imports /capnweb.js, which the server (in this process, run from
    // tests/) reads from ../js/node_modules.
    run_node_test("browser.test.mjs");
}
