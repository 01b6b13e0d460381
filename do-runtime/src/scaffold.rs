//! `dotdo new NAME`: a ready crate with one user class (the `Counter` of the examples),
//! its generated code checked in (no `capnp` compiler needed to build), a server and a
//! test, depending on a dotdo checkout by path.

use clap::Args;
use rpc_core::{Code, RpcError};
use std::path::{Path, PathBuf};

/// The arguments of `dotdo new`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct NewArgs {
    /// The crate's name (and directory): lowercase letters, digits, `-` and `_`.
    pub name: String,
    /// Where to create it [default: the current directory].
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// The dotdo checkout its dependencies point at [default: the one this binary was
    /// built from].
    #[arg(long, value_name = "PATH")]
    pub dotdo: Option<PathBuf>,
}

/// The checkout this binary was built from.
pub fn default_checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check_name(name: &str) -> Result<(), RpcError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok && !matches!(name, "test" | "core" | "std" | "alloc" | "proc_macro" | "self" | "crate" | "super") {
        Ok(())
    } else {
        Err(RpcError::invalid_argument(format!(
            "{name:?} is not a crate name here: a lowercase letter, then lowercase letters, digits, - or _ (at most 64)"
        )))
    }
}

const COUNTER_CAPNP: &str = include_str!("../../examples/schema/counter.capnp");
const COUNTER_RS: &str = include_str!("../../examples/classes/src/counter.rs");
const GENERATED: [(&str, &str); 3] = [
    ("counter_capnp.rs", include_str!("../../examples/generated/counter_capnp.rs")),
    ("counter_client.rs", include_str!("../../examples/generated/counter_client.rs")),
    ("counter_interfaces.rs", include_str!("../../examples/generated/counter_interfaces.rs")),
];
/// The schema's `CodeGeneratorRequest`, which the interfaces table embeds (for `describe`).
const GENERATED_SCHEMA: (&str, &[u8]) =
    ("counter_schema.bin", include_bytes!("../../examples/generated/counter_schema.bin"));

fn cargo_toml(name: &str, dotdo: &Path) -> String {
    let p = |sub: &str| dotdo.join(sub).display().to_string().replace('\\', "/");
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
do-runtime = {{ path = "{runtime}", default-features = false }}
do-modules = {{ path = "{modules}" }}
rpc-client = {{ path = "{client}" }}
rpc-core = {{ path = "{core}" }}
rpc-server = {{ path = "{server}" }}
schema = {{ path = "{schema}" }}
capnp = "0.27"
capnp-rpc = "0.27"
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

# A workspace of its own (not a member of one it happens to sit in).
[workspace]
"#,
        runtime = p("do-runtime"),
        modules = p("do-runtime/modules"),
        client = p("rpc-client"),
        core = p("rpc-core"),
        server = p("rpc-core/server"),
        schema = p("schema"),
    )
}

const LIB_RS: &str = r#"//! Your Durable Object classes. `Counter` is the first: edit `schema/counter.capnp`, run
//! `dotdo codegen schema/counter.capnp --out src/generated`, implement what changed in
//! `src/counter.rs`.

pub mod counter;

/// capnpc's module of `schema/counter.capnp` (generated; at the crate root, where its
/// code expects it).
#[allow(clippy::all, clippy::pedantic, unused, missing_docs)]
pub mod counter_capnp {
    include!("generated/counter_capnp.rs");
}

/// The typed client of `Counter`.
pub mod counter_client {
    include!("generated/counter_client.rs");
}

/// The table of its methods and `$scope`s (for tokens).
pub mod counter_interfaces {
    include!("generated/counter_interfaces.rs");
}

/// The app: every class this server hosts.
pub fn app() -> do_runtime::App {
    do_runtime::App::new().class::<counter::Counter>("Counter")
}
"#;

fn main_rs(name: &str) -> String {
    format!(
        r#"//! Serves this crate's classes on 127.0.0.1 (HTTP batch and WebSocket on /rpc).
//! `cargo run` (port 8787), `cargo run -- --port 9000`, or PORT=9000 cargo run.

fn main() -> Result<(), Box<dyn std::error::Error>> {{
    let mut args = std::env::args().skip(1);
    let mut port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8787);
    while let Some(a) = args.next() {{
        match (a.as_str(), args.next()) {{
            ("--port", Some(p)) => port = p.parse()?,
            _ => return Err("usage: {name} [--port N]".into()),
        }}
    }}
    let server = rpc_server::ServerConfig {{
        http_addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        tcp_addr: None,
        ..rpc_server::ServerConfig::default()
    }};
    let host = do_runtime::HostConfig {{ data_dir: ".dotdo".into(), ..Default::default() }};
    let running = {crate_name}::app().host(host).start(server)?;
    println!("{name} serving Counter on ws://{{}}/rpc and http://{{}}/rpc", running.server.http_addr, running.server.http_addr);
    running.server.wait();
    Ok(())
}}
"#,
        crate_name = name.replace('-', "_"),
    )
}

fn test_rs(name: &str) -> String {
    format!(
        r#"//! The class on a real server on 127.0.0.1, called pipelined over WebSocket.

use {crate_name}::counter_client::Counter;

#[test]
fn counter_counts() {{
    let dir = std::env::temp_dir().join(format!("{name}-test-{{}}", std::process::id()));
    let server = rpc_server::ServerConfig {{
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        tcp_addr: None,
        workers: 1,
        ..rpc_server::ServerConfig::default()
    }};
    let host = do_runtime::HostConfig {{ data_dir: dir.clone(), ..Default::default() }};
    let running = {crate_name}::app().host(host).start(server).expect("server");
    let url = format!("ws://{{}}/rpc", running.server.http_addr);
    rpc_client::run(async {{
        let session = rpc_client::connect(&url).await.expect("connect");
        // gateway.object(..) and increment on it: one round trip.
        let counter = Counter::new(session.bootstrap.object("Counter", "c1").object().cast());
        assert_eq!(counter.increment(2).await.expect("increment").value, 2);
        assert_eq!(counter.increment(3).await.expect("increment").value, 5);
        assert_eq!(counter.get().await.expect("get").value, 5);
    }});
    running.server.stop();
    let _ = std::fs::remove_dir_all(dir);
}}
"#,
        crate_name = name.replace('-', "_"),
    )
}

fn readme(name: &str) -> String {
    format!(
        "# {name}\n\nA dotdo server with one Durable Object class, `Counter`.\n\n\
         ```sh\ncargo run            # serves on 127.0.0.1:8787 (--port N to change)\ncargo test           # the class on a real server\n```\n\n\
         To change the class: edit `schema/counter.capnp`, run\n\
         `dotdo codegen schema/counter.capnp --out src/generated` (needs the `capnp` compiler),\n\
         then implement the new methods in `src/counter.rs`. Add classes the same way and\n\
         register them in `app()` (`src/lib.rs`).\n"
    )
}

/// Writes the crate `args.name` under `args.dir`; returns its directory. Refuses a bad
/// name (INVALID_ARGUMENT) and an existing directory (CONFLICT).
pub fn create(args: &NewArgs) -> Result<PathBuf, RpcError> {
    check_name(&args.name)?;
    let dotdo = args.dotdo.clone().unwrap_or_else(default_checkout);
    let dotdo = std::fs::canonicalize(&dotdo)
        .map_err(|e| RpcError::invalid_argument(format!("the dotdo checkout {}: {e}", dotdo.display())))?;
    if !dotdo.join("do-runtime").join("Cargo.toml").is_file() {
        return Err(RpcError::invalid_argument(format!("{} is not a dotdo checkout", dotdo.display())));
    }
    let root = args.dir.join(&args.name);
    if root.exists() {
        return Err(RpcError::new(Code::Conflict, format!("{} already exists", root.display())));
    }
    let io = |e: std::io::Error| RpcError::new(Code::Internal, format!("cannot write the crate: {e}"));
    let write = |rel: &str, text: &str| -> Result<(), RpcError> {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::fs::write(path, text).map_err(io)
    };
    write("Cargo.toml", &cargo_toml(&args.name, &dotdo))?;
    write("README.md", &readme(&args.name))?;
    write("schema/counter.capnp", COUNTER_CAPNP)?;
    write("src/lib.rs", LIB_RS)?;
    write("src/counter.rs", COUNTER_RS)?;
    write("src/main.rs", &main_rs(&args.name))?;
    write("tests/counter.rs", &test_rs(&args.name))?;
    write(".gitignore", "/target\n/.dotdo\n")?;
    for (file, text) in GENERATED {
        write(&format!("src/generated/{file}"), text)?;
    }
    std::fs::write(root.join("src/generated").join(GENERATED_SCHEMA.0), GENERATED_SCHEMA.1).map_err(io)?;
    // The checkout's lock file: the same versions, so it builds offline.
    if let Ok(lock) = std::fs::read_to_string(dotdo.join("Cargo.lock")) {
        write("Cargo.lock", &lock)?;
    }
    Ok(root)
}
