//! JavaScript against a real server: the Node test suite (`js/test/gateway.test.mjs`,
//! the official `capnweb` client over `/capnweb`) and the browser test of the page
//! (`js/test/browser.test.mjs`, headless Chromium), each run with `node --test` against
//! the example app (`examples::js_app`) served from this process.
//!
//! They need Node and `npm ci` in `js/` (the browser test also needs `/usr/bin/chromium`);
//! without them they are skipped with a notice, unless `DOTDO_REQUIRE_NODE=1` (and
//! `DOTDO_REQUIRE_BROWSER=1`), as in CI, where a missing tool fails them.

use rpc_server::ServerConfig;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn required(var: &str) -> bool {
    std::env::var(var).as_deref() == Ok("1")
}

/// Why Node tests cannot run here, if they cannot.
fn node_missing() -> Option<String> {
    let version = Command::new("node").arg("--version").output();
    match version {
        Ok(o) if o.status.success() => {}
        _ => return Some("`node` is not on PATH".into()),
    }
    let capnweb = repo().join("js/node_modules/capnweb/dist/index.js");
    (!capnweb.exists()).then(|| format!("{} is missing: run `npm ci` in js/", capnweb.display()))
}

static RUN: AtomicU32 = AtomicU32::new(0);

/// Runs `node --test js/test/<file>` against a fresh server; panics with the output
/// when a test fails.
fn run_node_test(file: &str, extra_env: &[(&str, &str)]) {
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
    let mut cmd = Command::new("node");
    cmd.arg("--test").arg(format!("js/test/{file}")).current_dir(repo()).env("DOTDO_HTTP", &url);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("node runs");
    running.server.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "node --test js/test/{file} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    // `node --test` prints a summary; at least one test must have passed.
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with("# pass") && !l.trim_end().ends_with(" 0")),
        "no test passed in js/test/{file}:\n{stdout}"
    );
    println!("{stdout}");
}

#[test]
fn the_capnweb_client_calls_every_kind_of_capability() {
    if let Some(why) = node_missing() {
        assert!(!required("DOTDO_REQUIRE_NODE"), "DOTDO_REQUIRE_NODE=1 but {why}");
        eprintln!("skipping the JavaScript tests: {why}");
        return;
    }
    run_node_test("gateway.test.mjs", &[]);
}

#[test]
fn the_page_shows_things_live_in_chromium() {
    if let Some(why) = node_missing() {
        assert!(!required("DOTDO_REQUIRE_NODE"), "DOTDO_REQUIRE_NODE=1 but {why}");
        eprintln!("skipping the browser test: {why}");
        return;
    }
    if !Path::new("/usr/bin/chromium").exists() {
        assert!(!required("DOTDO_REQUIRE_BROWSER"), "DOTDO_REQUIRE_BROWSER=1 but /usr/bin/chromium is missing");
        eprintln!("skipping the browser test: /usr/bin/chromium is missing (apt-get install chromium)");
        return;
    }
    // The page imports /capnweb.js, which the server (in this process, run from
    // tests/) reads from ../js/node_modules.
    run_node_test("browser.test.mjs", &[]);
}
