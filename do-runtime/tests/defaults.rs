//! Safer defaults of `dotdo serve`: beyond loopback, objects only through tokens unless
//! `--open` (said at start-up); with `--namespaces`, sessions of other namespaces are
//! refused.

use rpc_core::{Code, RpcError};
use schema::session_capnp::gateway;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};

/// A `dotdo serve` with `args`; its HTTP port and the lines it printed at start-up.
struct Served {
    child: Child,
    port: u16,
    banner: String,
    dir: std::path::PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn serve(name: &str, args: &[&str]) -> Served {
    let dir = std::env::temp_dir().join(format!("dotdo-defaults-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_dotdo"))
        .args(["serve", "--port", "0", "--no-tcp", "--data"])
        .arg(&dir)
        .args(args)
        .env_remove("DOTDO_REQUIRE_TOKENS")
        .env_remove("DOTDO_TOKEN_KEYS")
        .env_remove("DOTDO_TOKEN_KEY_FILE")
        .stdout(Stdio::piped())
        .spawn()
        .expect("dotdo starts");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut banner = String::new();
    // Up to the first endpoint line: the address, the data directory and any notice.
    while !banner.contains("POST /rpc") {
        let mut line = String::new();
        let read = stdout.read_line(&mut line).expect("read the banner");
        assert!(read > 0, "dotdo exited during start-up: {banner}");
        banner.push_str(&line);
    }
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let first = banner.lines().next().expect("a first line");
    let addr = first.strip_prefix("dotdo listening on http://").expect("where it listens");
    let port = addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
    Served { child, port, banner, dir }
}

/// `gateway.object` and one call on the object, over a WebSocket to 127.0.0.1.
async fn open_object(port: u16, host: Option<&str>) -> Result<u64, RpcError> {
    let url = format!("ws://127.0.0.1:{port}/rpc");
    let options = rpc_client::Options { host: host.map(String::from), ..Default::default() };
    let session = rpc_client::connect_as(&url, options).await?;
    let g: &gateway::Client = &session.bootstrap;
    let mut req = g.object_request();
    req.get().set_class("Default");
    req.get().set_name("x");
    let object = req.send().promise.await?.get()?.get_object()?;
    let storage = object.storage_request().send().pipeline.get_storage();
    let mut count = storage.count_request();
    count.get().set_query("{}");
    Ok(count.send().promise.await?.get()?.get_count())
}

#[test]
fn beyond_loopback_objects_need_tokens_unless_open() {
    let closed = serve("closed", &["--host", "0.0.0.0"]);
    assert!(closed.banner.contains("listening beyond loopback"), "{}", closed.banner);
    assert!(closed.banner.contains("--open"), "{}", closed.banner);
    let refused = rpc_client::run(open_object(closed.port, None)).expect_err("tokens required");
    assert_eq!(refused.code, Code::Unauthorized, "{refused}");
    drop(closed);

    let open = serve("open", &["--host", "0.0.0.0", "--open"]);
    assert!(open.banner.contains("--open: anyone"), "{}", open.banner);
    assert_eq!(rpc_client::run(open_object(open.port, None)), Ok(0));
    drop(open);

    let loopback = serve("loopback", &[]);
    assert!(!loopback.banner.contains("tokens"), "no notice on loopback: {}", loopback.banner);
    assert_eq!(rpc_client::run(open_object(loopback.port, None)), Ok(0));
}

#[test]
fn only_listed_namespaces_are_served() {
    let s = serve("namespaces", &["--namespaces", "acme,globex"]);
    rpc_client::run(async {
        assert_eq!(open_object(s.port, Some("acme.dotdo.dev")).await, Ok(0));
        assert_eq!(open_object(s.port, Some("globex.dotdo.dev")).await, Ok(0));
        for host in [Some("initech.dotdo.dev"), None] {
            let e = open_object(s.port, host).await.expect_err("not listed");
            assert_eq!(e.code, Code::NotFound, "{host:?}: {e}");
        }
        // Discovery is refused too: the whole session is.
        let options = rpc_client::Options { host: Some("initech.dotdo.dev".into()), ..Default::default() };
        let session = rpc_client::connect_as(&format!("ws://127.0.0.1:{}/rpc", s.port), options).await.expect("ws");
        let e = rpc_client::negotiate(&session.bootstrap, "t", &[], &[]).await.expect_err("refused");
        assert_eq!(e.code, Code::NotFound);
        // And over an HTTP batch.
        let options = rpc_client::Options { host: Some("initech.dotdo.dev".into()), ..Default::default() };
        let batch = rpc_client::batch_as(&format!("http://127.0.0.1:{}/rpc", s.port), options).await.expect("batch");
        let e = rpc_client::negotiate(&batch.bootstrap, "t", &[], &[]).await.expect_err("refused");
        assert_eq!(e.code, Code::NotFound);
    });
}
