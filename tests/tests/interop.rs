//! Native Cap'n Proto peers that are not dotdo's client talk to dotdo's TCP listener
//! (plain Cap'n Proto stream framing): capnp-rpc's own `twoparty` network in Rust, and
//! pycapnp in Python.

mod common;

use capnp::capability::Rc;
use capnp_rpc::{rpc_twoparty_capnp::Side, twoparty, RpcSystem};
use common::*;
use futures::AsyncReadExt;
use rpc_core::Limits;
use schema::demo_capnp::callback;
use schema::session_capnp::gateway;
use std::cell::Cell;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A Gateway bootstrapped over capnp-rpc's `twoparty::VatNetwork` on a plain TCP stream:
/// no dotdo code on the client side. Must run inside `rpc_client::run` (a LocalSet).
async fn twoparty_gateway(addr: SocketAddr) -> gateway::Client {
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect to dotdo's TCP listener");
    s.set_nodelay(true).expect("nodelay");
    let (r, w) = tokio_util::compat::TokioAsyncReadCompatExt::compat(s).split();
    let net = twoparty::VatNetwork::new(
        futures::io::BufReader::new(r),
        futures::io::BufWriter::new(w),
        Side::Client,
        Default::default(),
    );
    let mut sys = RpcSystem::new(Box::new(net), None);
    let gateway: gateway::Client = sys.bootstrap(Side::Server);
    tokio::task::spawn_local(sys);
    gateway
}

/// A client-side callback: replies `rust:<VALUE>` and counts its calls.
struct Shout {
    calls: std::rc::Rc<Cell<u32>>,
}

impl callback::Server for Shout {
    async fn notify(
        self: Rc<Self>,
        params: callback::NotifyParams,
        mut results: callback::NotifyResults,
    ) -> capnp::Result<()> {
        self.calls.set(self.calls.get() + 1);
        let v = params.get()?.get_value()?.to_string().map_err(|e| capnp::Error::failed(e.to_string()))?;
        results.get().set_reply(format!("rust:{}", v.to_uppercase()));
        Ok(())
    }
}

#[test]
fn a_twoparty_capnp_rpc_client_runs_a_pipelined_chain() {
    let s = server(Limits::default());
    let addr = s.tcp_addr.expect("tcp listener");
    let sessions = metric(&s, |m| &m.tcp_sessions);
    rpc_client::run(async {
        let gateway = twoparty_gateway(addr).await;
        // gateway.demo().directory.open("a").file.child("b").file.read(), all pipelined.
        let dir = gateway.demo_request().send().pipeline.get_directory();
        let mut open = dir.open_request();
        open.get().set_name("a");
        let mut child = open.send().pipeline.get_file().child_request();
        child.get().set_name("b");
        let read = child.send().pipeline.get_file().read_request().send().promise.await.expect("read() over twoparty");
        let text = read.get().expect("read results").get_text().expect("text field");
        assert_eq!(text.to_str().expect("utf-8 text"), "contents of a/b");
    });
    assert_eq!(metric(&s, |m| &m.tcp_sessions) - sessions, 1, "the chain ran over dotdo's TCP listener");
    s.stop();
}

#[test]
fn a_twoparty_capnp_rpc_client_passes_a_callback_the_server_calls() {
    let s = server(Limits::default());
    let addr = s.tcp_addr.expect("tcp listener");
    rpc_client::run(async {
        let gateway = twoparty_gateway(addr).await;
        let calls = std::rc::Rc::new(Cell::new(0));
        let cb: callback::Client = capnp_rpc::new_client(Shout { calls: calls.clone() });
        let mut req = gateway.demo_request().send().pipeline.get_directory().subscribe_request();
        req.get().set_callback(cb);
        req.get().set_value("hello");
        let resp = req.send().promise.await.expect("subscribe() over twoparty");
        let reply = resp.get().expect("subscribe results").get_reply().expect("reply field");
        assert_eq!(reply.to_str().expect("utf-8 reply"), "rust:HELLO", "the server returns the callback's reply");
        assert_eq!(calls.get(), 1, "the server called the client's capability exactly once");
    });
    s.stop();
}

/// Whether `python3` can import pycapnp; `Err` says why not.
fn pycapnp_available() -> Result<(), String> {
    let out = Command::new("python3")
        .args(["-c", "import capnp; print(capnp.__version__)"])
        .output()
        .map_err(|e| format!("python3 could not be run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!("`python3 -c 'import capnp'` failed: {}", stderr.trim().lines().last().unwrap_or("no output")))
    }
}

/// Runs `cmd` to completion, killing it after `limit`; returns (success, stdout, stderr).
fn run_with_timeout(cmd: &mut Command, limit: Duration) -> (bool, String, String) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("python3 starts");
    let t0 = Instant::now();
    while child.try_wait().expect("python3 can be waited for").is_none() {
        if t0.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("python3 output after kill");
            panic!(
                "the pycapnp client did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("python3 output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_pycapnp_client_runs_a_pipelined_chain_and_a_callback() {
    if let Err(why) = pycapnp_available() {
        assert!(
            std::env::var("DOTDO_REQUIRE_PYCAPNP").as_deref() != Ok("1"),
            "DOTDO_REQUIRE_PYCAPNP=1 but pycapnp is unavailable: {why}"
        );
        eprintln!("skipping the pycapnp interop test ({why}); `pip install pycapnp` to run it");
        return;
    }
    let s = server(Limits::default());
    let addr = s.tcp_addr.expect("tcp listener");
    let sessions = metric(&s, |m| &m.tcp_sessions);
    let manifest = env!("CARGO_MANIFEST_DIR");
    let script = format!("{manifest}/tests/interop_pycapnp.py");
    let schema_dir = format!("{manifest}/../schema/capnp");
    let (ok, stdout, stderr) = run_with_timeout(
        Command::new("python3").arg(&script).arg(addr.ip().to_string()).arg(addr.port().to_string()).arg(&schema_dir),
        Duration::from_secs(60),
    );
    if !stderr.trim().is_empty() {
        eprintln!("pycapnp client stderr:\n{stderr}");
    }
    assert!(ok, "the pycapnp client failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, ["chain: contents of a/b", "subscribe: py:HELLO"], "pycapnp's output (stderr:\n{stderr})");
    assert_eq!(metric(&s, |m| &m.tcp_sessions) - sessions, 1, "pycapnp connected to dotdo's TCP listener");
    s.stop();
}
