//! The client half of `scripts/load-idle.sh`: loads a running `dotdo serve` (loopback
//! only) from its own process and reports the server's memory, read from
//! `/proc/<pid>/status`.
//!
//! - `idle <ws-url> <server-pid> <sessions> <calls>`: opens `sessions` WebSocket sessions
//!   and leaves them idle, then makes `calls` calls spread over them; prints the server's
//!   RSS before and after, and per idle session.
//! - `partial <http-addr> <tcp-addr> <server-pid> <connections> <frame-bytes>`: opens
//!   `connections` connections (half TCP, half WebSocket), each sending a frame of
//!   `frame-bytes` bytes but its last; prints how many the server refused (OVERLOADED)
//!   and its RSS while it holds the rest.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most connections either mode opens, and the longest it runs.
const MAX_CONNECTIONS: usize = 20_000;
const MAX_RUN: Duration = Duration::from_secs(600);

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server's /proc status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number of kB")
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| panic!("argument {i}: {what}"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let started = Instant::now();
    rpc_client::run(async {
        let work = async {
            match args.get(1).map(String::as_str) {
                Some("idle") => idle(&args).await,
                Some("partial") => partial(&args).await,
                _ => panic!(
                    "usage: load_idle idle <ws-url> <pid> <sessions> <calls> | partial <http> <tcp> <pid> <n> <bytes>"
                ),
            }
        };
        tokio::time::timeout(MAX_RUN, work).await.expect("the load ran past its time bound");
    });
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
}

async fn idle(args: &[String]) {
    let url: String = arg(args, 2, "ws url");
    assert!(url.starts_with("ws://127.0.0.1:"), "loopback only");
    let pid: u32 = arg(args, 3, "server pid");
    let n: usize = arg::<usize>(args, 4, "sessions").min(MAX_CONNECTIONS);
    let calls: usize = arg(args, 5, "calls");
    // One session first, so the server's per-process setup is not counted.
    let warm = rpc_client::connect(&url).await.expect("connect");
    ping(&warm.bootstrap).await.expect("a first call");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);
    let mut sessions = Vec::with_capacity(n);
    while sessions.len() < n {
        let batch = (n - sessions.len()).min(200);
        let opened = futures::future::join_all((0..batch).map(|_| rpc_client::connect(&url))).await;
        for s in opened {
            sessions.push(s.expect("connect"));
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / n as f64;
    println!("idle websocket sessions: {n}");
    println!("server VmRSS before: {before} KiB, after: {after} KiB");
    println!("server RSS per idle session: {:.1} KiB ({per:.0} bytes)", per / 1024.0);
    let step = (n / calls.max(1)).max(1);
    let mut ok = 0;
    for s in sessions.iter().step_by(step).take(calls) {
        if ping(&s.bootstrap).await.is_ok() {
            ok += 1;
        }
    }
    println!("calls on idle sessions answered: {ok} of {}", calls.min(n));
    println!("server VmRSS after the calls: {} KiB", rss_kib(pid));
}

/// A cheap call: a sum over the demo directory.
async fn ping(g: &rpc_client::api::session::Gateway) -> Result<i64, rpc_core::RpcError> {
    let dir = g.demo_request().send().pipeline.get_directory();
    let mut req = dir.sum_request();
    let mut list = req.get().init_values(3);
    for i in 0..3 {
        list.set(i, 1);
    }
    Ok(req.send().promise.await?.get()?.get_total())
}

async fn partial(args: &[String]) {
    let http: std::net::SocketAddr = arg(args, 2, "http addr");
    let tcp: std::net::SocketAddr = arg(args, 3, "tcp addr");
    assert!(http.ip().is_loopback() && tcp.ip().is_loopback(), "loopback only");
    let pid: u32 = arg(args, 4, "server pid");
    let n: usize = arg::<usize>(args, 5, "connections").min(MAX_CONNECTIONS);
    let frame: usize = arg(args, 6, "frame bytes");
    let before = rss_kib(pid);
    let mut tasks = Vec::new();
    for i in 0..n {
        tasks.push(tokio::task::spawn_local(async move {
            let mut c = if i % 2 == 0 { tcp_partial(tcp, frame).await } else { ws_partial(http, frame).await };
            // Everything but the last byte, until done or refused.
            let chunk = vec![0u8; 256 << 10];
            let mut left = frame - 1;
            while left > 0 {
                let k = left.min(chunk.len());
                if c.write_all(&chunk[..k]).await.is_err() {
                    break;
                }
                left -= k;
            }
            c
        }));
    }
    let mut conns = Vec::new();
    for t in tasks {
        conns.push(t.await.expect("writer"));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A refused connection has been closed by the server; a held one reads nothing yet.
    let mut refused = 0;
    for c in &mut conns {
        let mut buf = [0u8; 64];
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(5), c.read(&mut buf)).await {
            refused += 1;
        }
    }
    let after = rss_kib(pid);
    println!("connections sending a partial frame of {frame} bytes: {n}");
    println!("refused (OVERLOADED or closed): {refused}, held: {}", n - refused);
    println!(
        "server VmRSS before: {before} KiB, while held: {after} KiB (+{} MiB)",
        after.saturating_sub(before) / 1024
    );
}

async fn tcp_partial(addr: std::net::SocketAddr, frame: usize) -> TcpStream {
    let mut c = TcpStream::connect(addr).await.expect("connect");
    let words = u32::try_from((frame - 8) / 8).expect("frame size");
    let mut head = 0u32.to_le_bytes().to_vec();
    head.extend_from_slice(&words.to_le_bytes());
    c.write_all(&head).await.expect("write");
    c
}

async fn ws_partial(addr: std::net::SocketAddr, frame: usize) -> TcpStream {
    let mut c = TcpStream::connect(addr).await.expect("connect");
    c.write_all(
        b"GET /rpc HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .expect("write");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut b).await.expect("the upgrade answer");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    let mut h = vec![0x82, 0x80 | 127];
    h.extend_from_slice(&(frame as u64).to_be_bytes());
    h.extend_from_slice(&[0; 4]);
    c.write_all(&h).await.expect("write");
    c
}
