//! The RPC benchmark: one run prints every figure and its ratio to a baseline measured
//! in the same run. `cargo bench -p tests --bench rpc`; DOTDO_BENCH_SECS (default 1)
//! and DOTDO_BENCH_ROUNDS (default 3) set the seconds per run and the runs per figure.
//!
//! Baselines: the bare loopback round trip (64-byte ping-pong between two blocking
//! threads) and plain capnp-rpc (twoparty over TCP, the same demo server, no dotdo
//! layer). dotdo's server runs with one worker thread, so client and server each have
//! one of the machine's cores, as the baselines do.

use capnp_rpc::{rpc_twoparty_capnp::Side, twoparty, RpcSystem};
use futures::AsyncReadExt;
use rpc_core::Limits;
use rpc_server::ServerConfig;
use schema::demo_capnp::directory;
use schema::session_capnp::gateway;
use std::future::IntoFuture;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn secs() -> f64 {
    std::env::var("DOTDO_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0)
}

fn rounds() -> usize {
    std::env::var("DOTDO_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3)
}

/// DOTDO_BENCH_ONLY=3,5 runs only those figures (by their index in `main`), for profiling.
fn selected(i: usize) -> bool {
    match std::env::var("DOTDO_BENCH_ONLY") {
        Ok(list) => list.split(',').any(|x| x.trim().parse() == Ok(i)),
        Err(_) => true,
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The session's directory as a settled capability (not a pipelined promise), so the
/// timed calls go straight to it, as they do to the plain capnp-rpc bootstrap.
async fn settled_directory(g: &gateway::Client) -> directory::Client {
    let resp = g.demo_request().send().promise.await.expect("demo");
    resp.get().expect("results").get_directory().expect("directory")
}

/// Bare loopback: 64-byte ping-pong between two blocking threads.
fn loopback_round_trips_per_s() -> f64 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let _ = s.set_nodelay(true);
            let mut b = [0u8; 64];
            while s.read_exact(&mut b).is_ok() && s.write_all(&b).is_ok() {}
        }
    });
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    c.set_nodelay(true).expect("nodelay");
    let mut b = [7u8; 64];
    let (t0, mut n) = (Instant::now(), 0u64);
    while t0.elapsed().as_secs_f64() < secs() {
        c.write_all(&b).expect("write");
        c.read_exact(&mut b).expect("read");
        n += 1;
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

/// The same 64-byte ping-pong on tokio: a server thread with its own current-thread
/// runtime, the client on the caller's runtime. The floor for any RPC built on tokio
/// here: it pays the reactor's wake-ups and no RPC work at all.
async fn tokio_loopback_round_trips_per_s() -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = serve_on_thread(|l| async move {
        if let Ok((mut s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            let mut b = [0u8; 64];
            while s.read_exact(&mut b).await.is_ok() && s.write_all(&b).await.is_ok() {}
        }
    });
    let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
    c.set_nodelay(true).expect("nodelay");
    let mut b = [7u8; 64];
    let (t0, mut n) = (Instant::now(), 0u64);
    while t0.elapsed().as_secs_f64() < secs() {
        c.write_all(&b).await.expect("write");
        c.read_exact(&mut b).await.expect("read");
        n += 1;
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

/// A plain capnp-rpc (twoparty) server for the demo directory, on its own thread.
fn plain_capnp_server() -> std::net::SocketAddr {
    serve_on_thread(|l| async move {
        let stack = rpc_core::layer::Stack::new().layer(rpc_core::layer::Deadline::new(Duration::from_secs(30)));
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            s.set_nodelay(true).expect("nodelay");
            let dir: directory::Client = capnp_rpc::new_client(do_runtime::demo::directory(stack.clone()));
            let (r, w) = tokio_util::compat::TokioAsyncReadCompatExt::compat(s).split();
            let net = twoparty::VatNetwork::new(
                futures::io::BufReader::new(r),
                futures::io::BufWriter::new(w),
                Side::Server,
                Default::default(),
            );
            tokio::task::spawn_local(RpcSystem::new(Box::new(net), Some(dir.client)));
        }
    })
}

/// Binds a loopback listener and runs `serve` on it on a thread of its own (a
/// current-thread runtime in a `LocalSet`); returns the address.
fn serve_on_thread<F, Fut>(serve: F) -> std::net::SocketAddr
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        rpc_client::run(async move {
            l.set_nonblocking(true).expect("nonblocking");
            serve(tokio::net::TcpListener::from_std(l).expect("listener")).await;
        });
    });
    addr
}

async fn plain_capnp_client(addr: std::net::SocketAddr) -> directory::Client {
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let (r, w) = tokio_util::compat::TokioAsyncReadCompatExt::compat(s).split();
    let net = twoparty::VatNetwork::new(
        futures::io::BufReader::new(r),
        futures::io::BufWriter::new(w),
        Side::Client,
        Default::default(),
    );
    let mut sys = RpcSystem::new(Box::new(net), None);
    let dir: directory::Client = sys.bootstrap(Side::Server);
    tokio::task::spawn_local(sys);
    dir
}

async fn sequential(dir: &directory::Client) -> f64 {
    let (t0, mut n) = (Instant::now(), 0u64);
    while t0.elapsed().as_secs_f64() < secs() {
        let mut req = dir.echo_request();
        req.get().set_x(n);
        let x = req.send().promise.await.expect("echo").get().expect("results").get_x();
        assert_eq!(x, n);
        n += 1;
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

/// The same echo through the generated typed client (`dir.echo(n).await?.x`).
async fn sequential_typed(dir: &rpc_client::api::demo::Directory) -> f64 {
    let (t0, mut n) = (Instant::now(), 0u64);
    while t0.elapsed().as_secs_f64() < secs() {
        let x = dir.echo(n).await.expect("echo").x;
        assert_eq!(x, n);
        n += 1;
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

async fn in_flight_typed(dir: &rpc_client::api::demo::Directory, k: u64) -> f64 {
    let (t0, mut n) = (Instant::now(), 0u64);
    while t0.elapsed().as_secs_f64() < secs() {
        let calls: Vec<_> = (0..k).map(|i| dir.echo(i).into_future()).collect();
        for r in futures::future::join_all(calls).await {
            r.expect("echo");
        }
        n += k;
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

/// A fixed amount of work (1,000 calls, ten at a time) before the timed runs, so the
/// caches, allocators and connections are warm and a profile of one figure is not
/// swamped by the warm-up.
async fn warm_up(dir: &directory::Client) {
    for _ in 0..100 {
        echo_all(dir, 10).await;
    }
}

/// `k` echo calls at once, all awaited.
async fn echo_all(dir: &directory::Client, k: u64) {
    let calls: Vec<_> = (0..k)
        .map(|i| {
            let mut req = dir.echo_request();
            req.get().set_x(i);
            req.send().promise
        })
        .collect();
    for r in futures::future::join_all(calls).await {
        r.expect("echo");
    }
}

async fn in_flight(dir: &directory::Client, k: u64) -> f64 {
    let (t0, mut n) = (Instant::now(), 0u64);
    while t0.elapsed().as_secs_f64() < secs() {
        echo_all(dir, k).await;
        n += k;
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

/// open(name).child("c").read(): three dependent calls.
async fn chain(dir: &directory::Client, pipelined: bool) {
    let mut open = dir.open_request();
    open.get().set_name("a");
    if pipelined {
        let mut child = open.send().pipeline.get_file().child_request();
        child.get().set_name("c");
        let r = child.send().pipeline.get_file().read_request().send().promise.await.expect("read");
        assert!(r.get().expect("results").get_text().is_ok());
    } else {
        let file = open.send().promise.await.expect("open").get().expect("results").get_file().expect("file");
        let mut child = file.child_request();
        child.get().set_name("c");
        let file = child.send().promise.await.expect("child").get().expect("results").get_file().expect("file");
        let r = file.read_request().send().promise.await.expect("read");
        assert!(r.get().expect("results").get_text().is_ok());
    }
}

async fn ws_chain_us(dir: &directory::Client, pipelined: bool) -> f64 {
    let (t0, mut n) = (Instant::now(), 0u64);
    while t0.elapsed().as_secs_f64() < secs() / 2.0 {
        chain(dir, pipelined).await;
        n += 1;
    }
    t0.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// HTTP batch: pipelined is one session (one POST) per chain; awaited makes a session
/// (one POST) per call, as a client that waits for each result must.
async fn http_chain_us(url: &str, pipelined: bool) -> f64 {
    let (t0, mut n) = (Instant::now(), 0u64);
    while t0.elapsed().as_secs_f64() < secs() / 2.0 {
        if pipelined {
            let s = rpc_client::batch(url).await.expect("batch");
            let dir = s.bootstrap.demo_request().send().pipeline.get_directory();
            chain(&dir, true).await;
        } else {
            // Each batch ends its session, so each step reopens the path from the root.
            for depth in 1..=3 {
                let s = rpc_client::batch(url).await.expect("batch");
                let dir = s.bootstrap.demo_request().send().pipeline.get_directory();
                let mut open = dir.open_request();
                open.get().set_name("a");
                let file = open.send().pipeline.get_file();
                let r = match depth {
                    1 => file.name_request().send().promise.await.map(|_| ()),
                    2 => {
                        let mut c = file.child_request();
                        c.get().set_name("c");
                        c.send().pipeline.get_file().name_request().send().promise.await.map(|_| ())
                    }
                    _ => {
                        let mut c = file.child_request();
                        c.get().set_name("c");
                        c.send().pipeline.get_file().read_request().send().promise.await.map(|_| ())
                    }
                };
                r.expect("step");
            }
        }
        n += 1;
    }
    t0.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let plain_addr = plain_capnp_server();
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        tcp_addr: Some("127.0.0.1:0".parse().expect("addr")),
        workers: 1,
        limits: Limits::default(),
    };
    let server = do_runtime::Runtime::new(config).start().expect("server").server;
    let ws = format!("ws://{}/rpc", server.http_addr);
    let http = format!("http://{}/rpc", server.http_addr);
    let tcp = format!("tcp://{}", server.tcp_addr.expect("tcp"));

    rpc_client::run(async move {
        let plain = plain_capnp_client(plain_addr).await;
        let ws_session = rpc_client::connect(&ws).await.expect("ws");
        let tcp_session = rpc_client::connect(&tcp).await.expect("tcp");
        let ws_dir = settled_directory(&ws_session.bootstrap).await;
        let tcp_dir = settled_directory(&tcp_session.bootstrap).await;
        for d in [&plain, &ws_dir, &tcp_dir] {
            warm_up(d).await;
        }
        // Each figure is the median of ROUNDS runs, the rounds interleaved so that a
        // change in the machine's load hits every figure alike.
        let ws_typed = rpc_client::api::demo::Directory::from(ws_dir.clone());
        let mut runs: Vec<Vec<f64>> = vec![Vec::new(); 14];
        for _ in 0..rounds() {
            let only = |i: usize| selected(i);
            if only(0) {
                runs[0].push(loopback_round_trips_per_s());
            }
            if only(1) {
                runs[1].push(sequential(&plain).await);
            }
            if only(2) {
                runs[2].push(in_flight(&plain, 1000).await);
            }
            if only(3) {
                runs[3].push(sequential(&ws_dir).await);
            }
            if only(4) {
                runs[4].push(sequential(&tcp_dir).await);
            }
            if only(5) {
                runs[5].push(in_flight(&ws_dir, 1000).await);
            }
            if only(6) {
                runs[6].push(in_flight(&tcp_dir, 1000).await);
            }
            if only(7) {
                runs[7].push(ws_chain_us(&ws_dir, true).await);
            }
            if only(8) {
                runs[8].push(ws_chain_us(&ws_dir, false).await);
            }
            if only(9) {
                runs[9].push(http_chain_us(&http, true).await);
            }
            if only(10) {
                runs[10].push(http_chain_us(&http, false).await);
            }
            if only(11) {
                runs[11].push(sequential_typed(&ws_typed).await);
            }
            if only(12) {
                runs[12].push(in_flight_typed(&ws_typed, 1000).await);
            }
            if only(13) {
                runs[13].push(tokio_loopback_round_trips_per_s().await);
            }
        }
        let m: Vec<f64> = runs.iter_mut().map(|v| median(v)).collect();
        let (loopback, plain_seq, plain_k, ws_seq, tcp_seq, ws_k, tcp_k) = (m[0], m[1], m[2], m[3], m[4], m[5], m[6]);
        let (ws_chain_p, ws_chain_a, http_chain_p, http_chain_a) = (m[7], m[8], m[9], m[10]);
        println!("== baselines (same run, medians of {} rounds of {}s)", rounds(), secs());
        println!("bare loopback round trips/s (64 B ping-pong)  {loopback:>10.0}");
        let tokio_loopback = m[13];
        println!(
            "tokio loopback round trips/s (same ping-pong)  {tokio_loopback:>10.0}   {:.2}x bare loopback",
            tokio_loopback / loopback
        );
        println!("plain capnp-rpc TCP sequential calls/s        {plain_seq:>10.0}   {:.2}x bare loopback, {:.2}x tokio loopback", plain_seq / loopback, plain_seq / tokio_loopback);
        println!("plain capnp-rpc TCP 1000-in-flight calls/s    {plain_k:>10.0}");
        println!("== dotdo");
        println!("WebSocket sequential calls/s                  {ws_seq:>10.0}   {:.2}x bare loopback, {:.2}x tokio loopback, {:.2}x plain capnp-rpc", ws_seq / loopback, ws_seq / tokio_loopback, ws_seq / plain_seq);
        println!("TCP sequential calls/s                        {tcp_seq:>10.0}   {:.2}x bare loopback, {:.2}x plain capnp-rpc", tcp_seq / loopback, tcp_seq / plain_seq);
        println!("WebSocket 1000-in-flight calls/s              {ws_k:>10.0}   {:.2}x plain capnp-rpc", ws_k / plain_k);
        println!(
            "TCP 1000-in-flight calls/s                    {tcp_k:>10.0}   {:.2}x plain capnp-rpc",
            tcp_k / plain_k
        );
        println!("WebSocket 3-call chain, pipelined us          {ws_chain_p:>10.1}   awaited {ws_chain_a:.1} us: {:.2}x faster; {:.2}x one sequential call", ws_chain_a / ws_chain_p, ws_chain_p / (1e6 / ws_seq));
        println!("HTTP batch 3-call chain, pipelined us         {http_chain_p:>10.1}   awaited {http_chain_a:.1} us: {:.2}x faster", http_chain_a / http_chain_p);
        println!(
            "WebSocket transport overhead vs plain capnp-rpc TCP (sequential call time ratio): {:.2}",
            plain_seq / ws_seq
        );
        let (typed_seq, typed_k) = (m[11], m[12]);
        println!("== the generated typed client vs raw capnp calls (same WebSocket session)");
        println!("typed sequential calls/s                      {typed_seq:>10.0}   {:.2}x raw", typed_seq / ws_seq);
        println!("typed 1000-in-flight calls/s                  {typed_k:>10.0}   {:.2}x raw", typed_k / ws_k);
    });
    server.stop();
}
