//! `dotdo new demo`: the crate it writes builds offline against this checkout, its test
//! passes, and `cargo run` serves the class (called here over WebSocket). The crate's
//! dependencies compile once into `<target>/scaffold`, reused by later runs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn dotdo_new(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dotdo")).arg("new").args(args).output().expect("dotdo runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The workspace's target directory, from this test binary's path (target/debug/deps/..).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors().nth(3).expect("target/<profile>/deps/<binary>").to_path_buf()
}

fn cargo(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(dir).args(args).env("CARGO_TARGET_DIR", target_dir().join("scaffold"));
    c
}

#[test]
fn dotdo_new_writes_a_crate_that_builds_tests_and_serves() {
    let parent = std::env::temp_dir().join(format!("dotdo-new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&parent);
    std::fs::create_dir_all(&parent).expect("dir");
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let p = parent.to_string_lossy().to_string();
    let c = checkout.to_string_lossy().to_string();

    let (ok, out) = dotdo_new(&["Bad Name", "--dir", &p, "--dotdo", &c]);
    assert!(!ok && out.contains("INVALID_ARGUMENT"), "{out}");
    let (ok, out) = dotdo_new(&["demo", "--dir", &p, "--dotdo", &c]);
    assert!(ok, "{out}");
    let demo = parent.join("demo");
    for f in [
        "Cargo.toml",
        "Cargo.lock",
        "schema/counter.capnp",
        "src/lib.rs",
        "src/main.rs",
        "src/counter.rs",
        "tests/counter.rs",
    ] {
        assert!(demo.join(f).is_file(), "{f} is written");
    }
    let (ok, out) = dotdo_new(&["demo", "--dir", &p, "--dotdo", &c]);
    assert!(!ok && out.contains("CONFLICT"), "an existing directory is not overwritten: {out}");

    // Its own test, offline, against this checkout.
    let test = cargo(&demo, &["test", "--offline", "-q"]).output().expect("cargo runs");
    let log = format!("{}{}", String::from_utf8_lossy(&test.stdout), String::from_utf8_lossy(&test.stderr));
    assert!(test.status.success(), "cargo test in the new crate:\n{log}");
    assert!(log.contains("1 passed"), "{log}");

    // cargo run serves the class; call it.
    let mut server = cargo(&demo, &["run", "--offline", "-q", "--", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cargo run");
    let stdout = server.stdout.take().expect("stdout");
    let line = BufReader::new(stdout).lines().map_while(Result::ok).find(|l| l.contains("serving Counter"));
    let url = line
        .as_deref()
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("ws://")))
        .map(str::to_string)
        .expect("the server prints its WebSocket URL");
    let served = rpc_client::run(async {
        let session = rpc_client::connect(&url).await.expect("connect");
        let info = session.bootstrap.object("Counter", "c1").object().info().await;
        let unknown = session.bootstrap.object("Nope", "x").object().info().await;
        (info.map(|i| i.class), unknown.map(|_| ()).map_err(|e| e.code))
    });
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(served.0.expect("the Counter class answers"), "Counter");
    assert_eq!(served.1, Err(rpc_core::Code::NotFound), "only the crate's classes are served");
    let _ = std::fs::remove_dir_all(&parent);
}
