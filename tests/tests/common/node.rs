//! Node test files (`js/test/*.mjs`, the official `capnweb` client) run with `node
//! --test` against a server. They need Node and `npm ci` in `js/`; without them a test
//! is skipped with a notice, unless `DOTDO_REQUIRE_NODE=1` (as in CI).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Whether the environment variable `var` is `1`.
pub fn required(var: &str) -> bool {
    std::env::var(var).as_deref() == Ok("1")
}

/// Why Node tests cannot run here, if they cannot.
pub fn node_missing() -> Option<String> {
    let version = Command::new("node").arg("--version").output();
    match version {
        Ok(o) if o.status.success() => {}
        _ => return Some("`node` is not on PATH".into()),
    }
    let capnweb = repo().join("js/node_modules/capnweb/dist/index.js");
    (!capnweb.exists()).then(|| format!("{} is missing: run `npm ci` in js/", capnweb.display()))
}

/// Whether Node tests can run; false (after a notice) when they cannot and need not.
pub fn node_ready(what: &str) -> bool {
    match node_missing() {
        None => true,
        Some(why) => {
            assert!(!required("DOTDO_REQUIRE_NODE"), "DOTDO_REQUIRE_NODE=1 but {why}");
            eprintln!("skipping {what}: {why}");
            false
        }
    }
}

/// Runs `node --test [args] js/test/<file>` against the server at `http`
/// (`http://host:port`); panics with the output when a test fails or none passed, and
/// returns the output.
pub fn run_node_test_at(file: &str, http: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new("node");
    cmd.arg("--test").args(args).arg(format!("js/test/{file}")).current_dir(repo()).env("DOTDO_HTTP", http);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "node --test js/test/{file} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    // `node --test` prints a summary; at least one test must have passed.
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with("# pass") && !l.trim_end().ends_with(" 0")),
        "no test passed in js/test/{file}:\n{stdout}"
    );
    stdout
}
