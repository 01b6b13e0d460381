//! `dotdo codegen --from URL`: code generated from a live server's `describe` (its
//! schemas as `CodeGeneratorRequest`s) is the code generated from the `.capnp` files.

use do_runtime::cli::Lang;
use rpc_server::ServerConfig;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dotdo-codegen-from-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Generates from the example app's server (built-in schema plus the example classes).
fn from_server(lang: Lang, out: &Path) -> Vec<PathBuf> {
    // Each test its own data directory (tests run in parallel).
    let data = temp(&format!("data-{lang:?}"));
    std::fs::create_dir_all(&data).expect("data dir");
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        tcp_addr: None,
        workers: 1,
        ..Default::default()
    };
    let running = examples::js_app::app(&data).expect("app").start(config).expect("server");
    let url = format!("ws://{}/rpc", running.server.http_addr);
    let written = do_runtime::codegen::run(&[], &[], out, lang, Some(&url));
    running.server.stop();
    let _ = std::fs::remove_dir_all(&data);
    written.expect("codegen --from")
}

#[test]
fn rust_from_a_live_server_matches_rust_from_the_files() {
    let out = temp("rust");
    let written = from_server(Lang::Rust, &out);
    // The class's code, as `dotdo codegen examples/schema/counter.capnp` wrote it.
    for name in ["counter_capnp.rs", "counter_client.rs", "counter_interfaces.rs", "shop_capnp.rs"] {
        assert!(written.contains(&out.join(name)), "{name} not written: {written:?}");
        let fresh = std::fs::read(out.join(name)).expect("written");
        let checked_in = std::fs::read(repo().join("examples/generated").join(name)).expect("checked in");
        assert!(fresh == checked_in, "{name} from the server differs from the one made from the schema file");
    }
    // And the built-in schema's modules.
    let session = std::fs::read_to_string(out.join("session_capnp.rs")).expect("session module");
    assert!(session.contains("pub mod gateway"), "no Gateway in session_capnp.rs");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_server_that_cannot_be_reached_is_a_clear_error() {
    let out = temp("unreachable");
    let e = do_runtime::codegen::run(&[], &[], &out, Lang::Rust, Some("ws://127.0.0.1:1/rpc")).expect_err("refused");
    assert!(e.contains("describe"), "{e}");
}

#[test]
fn typescript_from_a_live_server_matches_typescript_from_the_files() {
    let out = temp("ts");
    let written = from_server(Lang::Ts, &out);
    let from_files = temp("ts-files");
    let schema = repo().join("examples/schema");
    let files = [schema.join("counter.capnp"), schema.join("shop.capnp"), repo().join("schema/capnp/session.capnp")];
    // Without the compiler only the live-server half can run.
    match do_runtime::codegen::run(&files, &[], &from_files, Lang::Ts, None) {
        Ok(expected) => {
            for path in &expected {
                let name = path.file_name().expect("a file name");
                assert!(written.contains(&out.join(name)), "{name:?} not written from the server: {written:?}");
                let a = std::fs::read(path).expect("from files");
                let b = std::fs::read(out.join(name)).expect("from the server");
                assert!(a == b, "{name:?} from the server differs from the one made from the schema files");
            }
        }
        Err(e) => {
            assert!(std::env::var("DOTDO_REQUIRE_CAPNP").is_err(), "DOTDO_REQUIRE_CAPNP=1 but: {e}");
            eprintln!("compared only the server's output: {e}");
        }
    }
    let counter = std::fs::read_to_string(out.join("counter.ts")).expect("counter.ts");
    assert!(counter.contains("interface Counter extends"), "{counter}");
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&from_files);
}
