//! What one remote client cannot exhaust: time (header, body, idle and partial-frame
//! timeouts), connections (the cap), memory in partial frames (the server-wide budget)
//! and file descriptors (accept backs off, open connections are still served).

mod common;

use common::*;
use rpc_core::{Code, Limits, RpcError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The code of the `Abort` message at the start of `bytes`.
fn abort_code(bytes: &[u8]) -> Code {
    let n = rpc_core::framing::message_len(bytes).expect("framed").expect("a whole message");
    let m = rpc_core::framing::decode(&bytes[..n], Default::default()).expect("a well-formed reply");
    let root: capnp_rpc::rpc_capnp::message::Reader = m.get_root().expect("root");
    let Ok(capnp_rpc::rpc_capnp::message::Abort(Ok(ex))) = root.which() else { panic!("expected an Abort") };
    let reason = ex.get_reason().expect("reason").to_string().expect("utf-8");
    RpcError::from_tagged(&reason).expect("a tagged reason").code
}

/// Everything the server sends until it closes (a reset counts as the end).
async fn until_closed(c: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The head of an HTTP response (through the blank line) and what follows of it.
async fn read_head(c: &mut TcpStream) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = got.split_off(end + 4);
            return (String::from_utf8_lossy(&got).into_owned(), rest);
        }
        let n = c.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed before a whole head: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
}

/// An HTTP response: its status and body (read to its content length).
async fn response(c: &mut TcpStream) -> (u16, String) {
    let (head, mut body) = read_head(c).await;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().expect("len")))
        .expect("a content length");
    while body.len() < len {
        let mut buf = [0u8; 4096];
        let n = c.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed mid-body");
        body.extend_from_slice(&buf[..n]);
    }
    (status, String::from_utf8_lossy(&body[..len]).into_owned())
}

/// `GET /health` on an open keep-alive connection.
async fn health(c: &mut TcpStream) -> (u16, String) {
    c.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").await.expect("write");
    response(c).await
}

/// The `code` of a JSON error body.
fn json_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["code"].as_str().expect("a code").to_string()
}

/// A WebSocket opened by hand, so the test can send partial frames.
async fn raw_ws(addr: std::net::SocketAddr) -> TcpStream {
    raw_ws_at(addr, "/rpc").await
}

/// [`raw_ws`] on `path`.
async fn raw_ws_at(addr: std::net::SocketAddr, path: &str) -> TcpStream {
    let mut c = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    c.write_all(request.as_bytes()).await.expect("write");
    let (head, rest) = read_head(&mut c).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(rest.is_empty());
    c
}

/// The head of a masked (mask 0) binary WebSocket frame of `len` bytes.
fn ws_head(len: u64) -> Vec<u8> {
    let mut h = vec![0x82, 0x80 | 127];
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&[0; 4]);
    h
}

/// The payloads of the binary frames in what a server sent.
fn ws_payloads(bytes: &[u8]) -> Vec<Vec<u8>> {
    ws_frames(bytes, 2)
}

/// The text frames in what a server sent.
fn ws_texts(bytes: &[u8]) -> Vec<String> {
    ws_frames(bytes, 1).into_iter().map(|t| String::from_utf8_lossy(&t).into_owned()).collect()
}

/// The payloads of the frames with opcode `opcode` in what a server sent.
fn ws_frames(mut bytes: &[u8], opcode: u8) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while bytes.len() >= 2 {
        let (op, short) = (bytes[0] & 0x0f, u64::from(bytes[1] & 0x7f));
        let (len, at) = match short {
            126 => (u64::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 => (u64::from_be_bytes(bytes[2..10].try_into().expect("8 bytes")), 10),
            n => (n, 2),
        };
        let end = at + usize::try_from(len).expect("len");
        if bytes.len() < end {
            break;
        }
        if op == opcode {
            out.push(bytes[at..end].to_vec());
        }
        bytes = &bytes[end..];
    }
    out
}

/// The code of the Abort a WebSocket session was closed with.
fn ws_abort_code(bytes: &[u8]) -> Code {
    let frames = ws_payloads(bytes);
    abort_code(frames.first().unwrap_or_else(|| panic!("no binary frame in {} bytes", bytes.len())))
}

/// A TCP frame head: one segment of `words` words.
fn tcp_head(words: u32) -> Vec<u8> {
    let mut h = 0u32.to_le_bytes().to_vec();
    h.extend_from_slice(&words.to_le_bytes());
    h
}

async fn still_serving(s: &rpc_server::ServerHandle) {
    for url in urls(s) {
        let session = connect_any(&url).await.expect("connect");
        assert_eq!(chain(&directory(&session.bootstrap), "x", "y").await.expect("chain"), "contents of x/y");
    }
    let mut c = TcpStream::connect(s.http_addr).await.expect("connect");
    assert_eq!(health(&mut c).await.0, 200);
}

#[test]
fn a_request_head_that_never_ends_is_closed() {
    let s = server(Limits { header_read_timeout: Duration::from_millis(300), ..Limits::default() });
    rpc_client::run(async {
        let mut c = TcpStream::connect(s.http_addr).await.expect("connect");
        c.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").await.expect("write");
        let got = within("the server to close a slow head", until_closed(&mut c)).await;
        assert!(!String::from_utf8_lossy(&got).contains("200 OK"), "{got:?}");
        still_serving(&s).await;
    });
    s.stop();
}

#[test]
fn a_batch_body_that_never_completes_is_answered_408() {
    let s = server(Limits { body_read_timeout: Duration::from_millis(300), ..Limits::default() });
    let post = |extra: &str| {
        format!("POST /rpc HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-capnp\r\n{extra}\r\n\r\n")
    };
    rpc_client::run(async {
        // The last byte missing; a chunked body that stops; a length never reached.
        let cases: [(String, &[u8]); 3] = [
            (post("Content-Length: 100"), &[0u8; 99]),
            (post("Transfer-Encoding: chunked"), b"10\r\n0123456789abcdef\r\n"),
            (post("Content-Length: 1000000000000"), &[0u8; 4096]),
        ];
        for (head, body) in cases {
            let mut c = TcpStream::connect(s.http_addr).await.expect("connect");
            c.write_all(head.as_bytes()).await.expect("write");
            c.write_all(body).await.expect("write");
            let (status, body) = within("an answer to a body that never completes", response(&mut c)).await;
            match status {
                408 => assert_eq!(json_code(&body), "TIMEOUT", "{head}"),
                // Refused by its announced length before any waiting.
                413 => assert_eq!(json_code(&body), "LIMIT_EXCEEDED", "{head}"),
                other => panic!("{head}: status {other}: {body}"),
            }
            let _ = within("the connection to close", until_closed(&mut c)).await;
        }
        still_serving(&s).await;
    });
    s.stop();
}

#[test]
fn idle_sessions_are_closed_with_timeout() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(300),
        call_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let s = server(limits);
    rpc_client::run(async {
        let mut tcp = TcpStream::connect(s.tcp_addr.expect("tcp")).await.expect("connect");
        let got = within("an idle TCP session to be closed", until_closed(&mut tcp)).await;
        assert_eq!(abort_code(&got), Code::Timeout);
        let mut ws = raw_ws(s.http_addr).await;
        let got = within("an idle WebSocket session to be closed", until_closed(&mut ws)).await;
        assert_eq!(ws_abort_code(&got), Code::Timeout);
        still_serving(&s).await;
    });
    s.stop();
}

#[test]
fn websocket_pings_keep_a_session_that_makes_no_calls() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let limits =
        Limits { idle_timeout: Duration::from_secs(1), call_timeout: Duration::from_secs(1), ..Limits::default() };
    let s = server(limits);
    rpc_client::run(async {
        let stream = TcpStream::connect(s.http_addr).await.expect("tcp");
        let (ws, _) =
            tokio_tungstenite::client_async(format!("ws://{}/rpc", s.http_addr), stream).await.expect("handshake");
        let (mut tx, mut rx) = ws.split();
        let pinging = std::rc::Rc::new(std::cell::Cell::new(true));
        let flag = pinging.clone();
        let reader = tokio::task::spawn_local(async move {
            while let Some(Ok(m)) = rx.next().await {
                if let Message::Binary(b) = m {
                    return (flag.get(), abort_code(&b));
                }
            }
            panic!("closed without an Abort");
        });
        // Three idle timeouts' worth of pings and nothing else.
        for _ in 0..30 {
            tx.send(Message::Ping(Vec::new().into())).await.expect("ping");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        pinging.set(false);
        let (while_pinging, code) =
            within("the session to be closed once the pings stop", reader).await.expect("reader");
        assert!(!while_pinging, "the session was closed while the client pinged");
        assert_eq!(code, Code::Timeout);
    });
    s.stop();
}

#[test]
fn a_frame_left_unfinished_is_closed_with_timeout() {
    let s = server(Limits { frame_read_timeout: Duration::from_millis(300), ..Limits::default() });
    rpc_client::run(async {
        let mut tcp = TcpStream::connect(s.tcp_addr.expect("tcp")).await.expect("connect");
        tcp.write_all(&tcp_head(100)).await.expect("write");
        tcp.write_all(&[0; 16]).await.expect("write");
        let got = within("a slow TCP frame to be cut off", until_closed(&mut tcp)).await;
        assert_eq!(abort_code(&got), Code::Timeout);
        let mut ws = raw_ws(s.http_addr).await;
        ws.write_all(&ws_head(1000)).await.expect("write");
        ws.write_all(&[0; 10]).await.expect("write");
        let got = within("a slow WebSocket frame to be cut off", until_closed(&mut ws)).await;
        assert_eq!(ws_abort_code(&got), Code::Timeout);
        still_serving(&s).await;
    });
    s.stop();
}

#[test]
fn partial_frames_past_the_budget_are_refused_and_the_rest_served() {
    const PARTIAL: usize = 3 << 19; // 1.5 MiB of a 4 MiB frame.
    let limits = Limits { partial_frame_budget: 4 << 20, max_frame_bytes: 8 << 20, ..Limits::default() };
    let s = server(limits);
    rpc_client::run(async {
        let mut conns = Vec::new();
        for i in 0..8 {
            let mut c = if i % 2 == 0 {
                let mut c = TcpStream::connect(s.tcp_addr.expect("tcp")).await.expect("connect");
                c.write_all(&tcp_head(4 << 17)).await.expect("write");
                c
            } else {
                let mut c = raw_ws(s.http_addr).await;
                c.write_all(&ws_head(4 << 20)).await.expect("write");
                c
            };
            // A refused connection may be reset while this is written.
            let _ = c.write_all(&vec![0u8; PARTIAL]).await;
            conns.push((i % 2 == 0, c));
        }
        // A refused session is closed with an Abort at once; the others hold on.
        let mut refused = 0;
        let mut held = Vec::new();
        for (is_tcp, mut c) in conns {
            match tokio::time::timeout(Duration::from_secs(2), until_closed(&mut c)).await {
                Ok(got) => {
                    if !got.is_empty() {
                        let code = if is_tcp { abort_code(&got) } else { ws_abort_code(&got) };
                        assert_eq!(code, Code::Overloaded);
                    }
                    refused += 1;
                }
                Err(_) => held.push(c),
            }
        }
        assert!(refused >= 4, "only {refused} of 8 refused: 1.5 MiB each over a 4 MiB budget");
        assert!(!held.is_empty(), "the budget admits some partial frames");
        still_serving(&s).await;
    });
    assert!(metric(&s, |m| &m.aborted_sessions) >= 4);
    s.stop();
}

#[test]
fn cap_n_web_partial_messages_draw_on_the_same_budget() {
    const PARTIAL: usize = 3 << 19; // 1.5 MiB of a 4 MiB text frame.
    let limits = Limits { partial_frame_budget: 4 << 20, max_message_bytes: 8 << 20, ..Limits::default() };
    let s = server(limits);
    rpc_client::run(async {
        let mut conns = Vec::new();
        for _ in 0..6 {
            let mut c = raw_ws_at(s.http_addr, "/capnweb").await;
            let mut head = ws_head(4 << 20);
            head[0] = 0x81; // a text frame
            c.write_all(&head).await.expect("write");
            let _ = c.write_all(&vec![b' '; PARTIAL]).await;
            conns.push(c);
        }
        let mut refused = 0;
        for mut c in conns {
            if let Ok(got) = tokio::time::timeout(Duration::from_secs(2), until_closed(&mut c)).await {
                if let Some(abort) = ws_texts(&got).first() {
                    let v: serde_json::Value = serde_json::from_str(abort).expect("an abort message");
                    assert_eq!(
                        (v[0].as_str(), v[1][4]["code"].as_str()),
                        (Some("abort"), Some("OVERLOADED")),
                        "{abort}"
                    );
                }
                refused += 1;
            }
        }
        assert!(refused >= 3, "only {refused} of 6 refused: 1.5 MiB each over a 4 MiB budget");
        still_serving(&s).await;
    });
    s.stop();
}

#[test]
fn connections_over_the_cap_are_refused() {
    let s = server(Limits { max_connections: Some(3), ..Limits::default() });
    rpc_client::run(async {
        let mut open = Vec::new();
        for _ in 0..3 {
            let mut c = TcpStream::connect(s.http_addr).await.expect("connect");
            assert_eq!(health(&mut c).await.0, 200);
            open.push(c);
        }
        let mut over = TcpStream::connect(s.http_addr).await.expect("connect");
        let (status, body) = within("a 503 over the cap", response(&mut over)).await;
        assert_eq!((status, json_code(&body).as_str()), (503, "OVERLOADED"));
        let mut tcp = TcpStream::connect(s.tcp_addr.expect("tcp")).await.expect("connect");
        assert!(within("the TCP connection over the cap to close", until_closed(&mut tcp)).await.is_empty());
        // The open ones are still served, and a closed one frees its place.
        assert_eq!(health(&mut open[0]).await.0, 200);
        drop(open.pop());
        within("a place to free up", async {
            loop {
                let mut c = TcpStream::connect(s.http_addr).await.expect("connect");
                if health(&mut c).await.0 == 200 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    });
    assert!(metric(&s, |m| &m.refused_connections) >= 2);
    s.stop();
}

/// The environment variable that makes [`child_server`] serve.
const CHILD: &str = "DOTDO_EXHAUSTION_CHILD";

/// Not a test of its own: run with [`CHILD`] set (by [`out_of_descriptors_the_server_backs_off_and_keeps_serving`],
/// under a low descriptor limit) it serves until its stdin closes.
#[test]
fn child_server() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    // No connection cap: the descriptors run out first.
    let s = server(Limits { max_connections: Some(100_000), ..Limits::default() });
    println!("listening {}", s.http_addr);
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
    s.stop();
}

/// User plus system CPU time of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which ends with ')'): state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

#[test]
fn out_of_descriptors_the_server_backs_off_and_keeps_serving() {
    use std::io::BufRead;
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = std::process::Command::new("prlimit")
        .arg("--nofile=256:256")
        .arg("--")
        .arg(exe)
        .args(["--exact", "child_server", "--nocapture", "--test-threads", "1"])
        .env(CHILD, "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("prlimit runs the child server");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let addr: std::net::SocketAddr = loop {
        line.clear();
        assert!(out.read_line(&mut line).expect("read") > 0, "the child ended before listening");
        // libtest writes its own words before it on the same line.
        if let Some((_, a)) = line.trim().split_once("listening ") {
            break a.parse().expect("an address");
        }
    };
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let pid = child.id();
    rpc_client::run(async {
        let mut kept = TcpStream::connect(addr).await.expect("connect");
        assert_eq!(health(&mut kept).await.0, 200);
        // More connections than the child has descriptors.
        let mut flood = Vec::new();
        for _ in 0..400 {
            match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
                Ok(Ok(c)) => flood.push(c),
                _ => break,
            }
        }
        assert!(flood.len() > 256, "only {} connections opened", flood.len());
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = cpu_ticks(pid);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let spent = cpu_ticks(pid) - before;
        // Clock ticks are 1/100 s on Linux: under half a second of CPU in one second.
        assert!(spent < 50, "the server spent {spent} ticks of CPU in 1 s out of descriptors: it spins");
        let (status, body) = within("/health on a connection opened before", health(&mut kept)).await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert!(v["metrics"]["refused_connections"].as_u64().expect("a count") > 0, "{body}");
        drop(flood);
        within("a new connection once descriptors are free", async {
            loop {
                if let Ok(mut c) = TcpStream::connect(addr).await {
                    if c.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").await.is_ok() {
                        let mut buf = [0u8; 16];
                        if c.read(&mut buf).await.is_ok_and(|n| buf[..n].starts_with(b"HTTP/1.1 200")) {
                            break;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
    });
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
}
