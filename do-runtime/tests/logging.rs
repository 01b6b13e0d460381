//! `dotdo serve --log-format json`: one JSON object per line on stderr, each session's
//! events inside its `session` span, and its end logged with the outcome (debug when
//! clean, warn when the peer breaks the protocol).

use std::io::{BufRead, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

struct Server {
    child: Child,
    http: String,
    tcp: String,
    logs: Receiver<serde_json::Value>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &std::path::Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dotdo"))
        .args(["serve", "--port", "0", "--tcp-port", "0", "--log-format", "json", "--data"])
        .arg(dir)
        .env("RUST_LOG", "info,rpc_server=debug,rpc_core::layer::trace=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dotdo starts");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut lines = Vec::new();
    for _ in 0..7 {
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the listening lines");
        lines.push(line.trim().to_string());
    }
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let http = lines[0].strip_prefix("dotdo listening on http://").expect("the http line").to_string();
    let tcp = lines
        .iter()
        .find_map(|l| l.strip_prefix("tcp://").and_then(|l| l.split_whitespace().next()))
        .expect("the tcp line")
        .to_string();
    let stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let (tx, logs) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let v = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            if tx.send(v).is_err() {
                return;
            }
        }
    });
    Server { child, http, tcp, logs }
}

/// The first log line that `pick` accepts, within ten seconds.
fn wait_for(logs: &Receiver<serde_json::Value>, pick: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match logs.recv_timeout(left) {
            Ok(v) if pick(&v) => return v,
            Ok(_) => {}
            Err(e) => panic!("no such log line: {e}"),
        }
    }
}

#[test]
fn sessions_are_spans_and_their_ends_are_logged() {
    let dir = std::env::temp_dir().join(format!("dotdo-logging-{}", std::process::id()));
    let server = start(&dir);
    let started = wait_for(&server.logs, |v| v["fields"]["message"] == "dotdo listening");
    assert_eq!(started["level"], "INFO");
    assert_eq!(started["fields"]["http"], server.http.as_str());

    // A clean WebSocket session: debug, inside its span.
    let session_id = rpc_client::run(async {
        let session = rpc_client::connect(&format!("ws://{}/rpc", server.http)).await.expect("connect");
        let n = rpc_client::negotiate(&session.bootstrap, "logging-test", &[], &[]).await.expect("negotiate");
        n.session_id
    });
    // Each call of the session is logged with a correlation id under the session's id.
    let call = wait_for(&server.logs, |v| {
        v["fields"]["message"] == "done"
            && v["fields"]["method"] == "gateway.negotiate"
            && v["span"]["id"] == *session_id
    });
    assert_eq!(call["level"], "DEBUG");
    assert_eq!(call["fields"]["code"], "OK");
    let id = call["fields"]["call"].as_str().expect("a correlation id");
    assert!(id.starts_with(&format!("{session_id}-")), "{id} is not under session {session_id}");
    let ended = wait_for(&server.logs, |v| v["fields"]["message"] == "session ended" && v["span"]["id"] == *session_id);
    assert_eq!(ended["level"], "DEBUG");
    assert_eq!(ended["span"]["name"], "session");
    assert_eq!(ended["span"]["transport"], "websocket");
    assert_eq!(ended["span"]["namespace"], "default");
    assert!(["closed", "disconnected"].contains(&ended["fields"]["outcome"].as_str().unwrap_or("")), "{ended}");

    // A TCP peer that sends a frame table claiming 2^32 segments breaks the protocol: warn.
    let mut tcp = std::net::TcpStream::connect(&server.tcp).expect("tcp connect");
    tcp.write_all(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).expect("write");
    let _ = tcp.read_to_end(&mut Vec::new());
    let aborted = wait_for(&server.logs, |v| v["fields"]["outcome"] == "aborted");
    assert_eq!(aborted["level"], "WARN");
    assert_eq!(aborted["span"]["transport"], "tcp");
    assert!(aborted["fields"]["code"].is_string(), "{aborted}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
