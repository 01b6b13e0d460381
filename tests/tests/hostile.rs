//! Issue 8's hostile-input suite: inputs an attacker would send over TCP, WebSocket and
//! HTTP, to storage and to the token broker. Each case is a row of data (name, input,
//! expected code); one runner per group sends it to a server shared by the group and
//! checks (a) the typed code the server answers with and (b) that the server and its
//! data are intact afterwards. Failures are collected and reported by case name.

mod common;

use capnp::traits::HasTypeId;
use capnp_rpc::rpc_capnp::message;
use common::*;
use futures::{SinkExt, StreamExt};
use rpc_broker::token::{KeyRing, MintRequest, Scope};
use rpc_core::{Code, Limits, RpcError};
use schema::demo_capnp::directory;
use schema::object_capnp::storage;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::{coding, Frame};
use tokio_tungstenite::tungstenite::Message;

/// The limits of the shared servers: small enough that the limit cases stay cheap.
fn limits() -> Limits {
    Limits {
        max_message_bytes: 64 << 10,
        max_frame_bytes: 256 << 10,
        nesting_limit: 16,
        max_batch_messages: 8,
        max_batch_bytes: 512 << 10,
        ..Limits::default()
    }
}

/// Fails the test naming every case whose outcome was not the expected one.
fn report(group: &str, failures: Vec<String>, cases: usize) {
    assert!(cases >= 5, "{group}: too few cases");
    assert!(failures.is_empty(), "{group}: {} of {cases} cases failed:\n{}", failures.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------------
// Raw Cap'n Proto messages.

/// A framed rpc message written by `f`.
fn msg(f: impl FnOnce(message::Builder<'_>)) -> Vec<u8> {
    let mut b = capnp::message::Builder::new_default();
    f(b.init_root());
    rpc_core::framing::encode(&b)
}

/// Little-endian bytes of a segment table for segments of `sizes` words, then `words`.
fn raw(sizes: &[u32], words: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(sizes.len() as u32).wrapping_sub(1).to_le_bytes());
    for s in sizes {
        out.extend_from_slice(&s.to_le_bytes());
    }
    if sizes.len().is_multiple_of(2) {
        out.extend_from_slice(&[0; 4]);
    }
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out
}

fn bootstrap(q: u32) -> Vec<u8> {
    msg(|m| m.init_bootstrap().set_question_id(q))
}

/// A call of `iface.method` (null params) on the answer to question `on`.
fn call_on(q: u32, on: u32, iface: u64, method: u16) -> Vec<u8> {
    msg(|m| {
        let mut c = m.init_call();
        c.set_question_id(q);
        c.set_interface_id(iface);
        c.set_method_id(method);
        c.reborrow().init_target().init_promised_answer().set_question_id(on);
        c.init_params().init_content();
    })
}

fn call_import(q: u32, import: u32) -> Vec<u8> {
    msg(|m| {
        let mut c = m.init_call();
        c.set_question_id(q);
        c.set_interface_id(directory::Client::TYPE_ID);
        c.reborrow().init_target().set_imported_cap(import);
        c.init_params().init_content();
    })
}

fn gateway_id() -> u64 {
    schema::session_capnp::gateway::Client::TYPE_ID
}

/// The typed code in the first Abort, or in the first Return carrying an exception,
/// among the complete frames at the start of `buf`; `None` if there is none yet.
fn error_in(buf: &[u8]) -> Result<Option<Code>, String> {
    let mut rest = buf;
    while let Ok(Some(len)) = rpc_core::framing::message_len(rest) {
        if rest.len() < len {
            break;
        }
        let m = rpc_core::framing::decode(&rest[..len], Default::default()).map_err(|e| format!("reply: {e}"))?;
        let root: message::Reader = m.get_root().map_err(|e| format!("reply root: {e}"))?;
        let ex = match root.which() {
            Ok(message::Abort(Ok(ex))) => Some(ex),
            Ok(message::Return(Ok(r))) => match r.which() {
                Ok(capnp_rpc::rpc_capnp::return_::Exception(Ok(ex))) => Some(ex),
                _ => None,
            },
            _ => None,
        };
        if let Some(ex) = ex {
            let reason = ex.get_reason().ok().and_then(|r| r.to_string().ok()).unwrap_or_default();
            return RpcError::from_tagged(&reason)
                .map(|e| Some(e.code))
                .ok_or_else(|| format!("an untagged reason: {reason:.200}"));
        }
        rest = &rest[len..];
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------
// TCP and WebSocket: raw frames.

/// Messages sent back to back: one TCP write, or one WebSocket frame each.
struct WireCase {
    name: &'static str,
    msgs: Vec<Vec<u8>>,
    /// The code over TCP, where a header announces what follows.
    tcp: Code,
    /// The code over WebSocket, where the frame says how long a message is.
    ws: Code,
}

fn wire_cases() -> Vec<WireCase> {
    let c = |name, msgs: Vec<Vec<u8>>, want| WireCase { name, msgs, tcp: want, ws: want };
    // A header whose sizes lie: over TCP it announces too much, over WebSocket the frame
    // is simply cut short.
    let lies = |name, bytes| WireCase { name, msgs: vec![bytes], tcp: Code::LimitExceeded, ws: Code::InvalidArgument };
    let frame_words = (limits().max_frame_bytes / 8) as u32;
    let mut many_segments = vec![999u32.to_le_bytes().to_vec()];
    many_segments.extend((0..1000).map(|_| 1u32.to_le_bytes().to_vec()));
    vec![
        c("garbage header", vec![vec![0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4]], Code::InvalidArgument),
        c("segment count 2^32", vec![vec![0xff; 8]], Code::InvalidArgument),
        c("1000 segments", vec![many_segments.concat()], Code::InvalidArgument),
        lies("segment of 2^32-1 words", raw(&[u32::MAX], &[])),
        lies("header announcing a frame over max_frame_bytes", raw(&[frame_words + 1], &[])),
        lies("two segments summing over max_frame_bytes", raw(&[frame_words, frame_words], &[])),
        c("root is a list pointer", vec![raw(&[1], &[0x0000_0001_0000_0001])], Code::InvalidArgument),
        c("root struct out of bounds", vec![raw(&[1], &[(1u64 << 32) | (100 << 2)])], Code::InvalidArgument),
        c("far pointer into a missing segment", vec![raw(&[1], &[(5u64 << 32) | 2])], Code::InvalidArgument),
        c("unknown message kind 999", vec![raw(&[2], &[1u64 << 32, 999])], Code::InvalidArgument),
        c("call to an unknown import", vec![call_import(0, 42)], Code::InvalidArgument),
        c("call with an unknown interface id", vec![bootstrap(0), call_on(1, 0, 0x1234_5678, 0)], Code::Unimplemented),
        c("call with an unknown method id", vec![bootstrap(0), call_on(1, 0, gateway_id(), 999)], Code::Unimplemented),
        c("bootstrap twice with one question id", vec![bootstrap(0), bootstrap(0)], Code::InvalidArgument),
        c(
            "release of an unknown import",
            vec![msg(|m| {
                let mut r = m.init_release();
                r.set_id(55);
                r.set_reference_count(1);
            })],
            Code::InvalidArgument,
        ),
        c(
            "return for a question never asked",
            vec![msg(|m| {
                let mut r = m.init_return();
                r.set_answer_id(9);
                r.init_results().init_content();
            })],
            Code::InvalidArgument,
        ),
        c(
            "disembargo of an unknown import",
            vec![msg(|m| {
                let mut d = m.init_disembargo();
                d.reborrow().init_target().set_imported_cap(99);
                d.init_context().set_sender_loopback(5);
            })],
            Code::InvalidArgument,
        ),
        c(
            "peer abort with a 32 KiB reason",
            vec![msg(|m| m.init_abort().set_reason("x".repeat(32 << 10)))],
            Code::InvalidArgument,
        ),
        c(
            "peer abort over max_message_bytes",
            vec![msg(|m| m.init_abort().set_reason("x".repeat(1 << 20)))],
            Code::LimitExceeded,
        ),
    ]
}

/// A session on TCP and one on WebSocket still answer `echo` after each case.
async fn echo_works(url: &str) -> Result<(), String> {
    let session = connect_any(url).await.map_err(|e| format!("reconnect: {e}"))?;
    let mut echo = directory(&session.bootstrap).echo_request();
    echo.get().set_x(41);
    let r = echo.send().promise.await.map_err(|e| format!("echo after the case: {e}"))?;
    match r.get().map(directory::echo_results::Reader::get_x) {
        Ok(41) => Ok(()),
        other => Err(format!("echo answered {other:?}")),
    }
}

async fn tcp_case(tcp: std::net::SocketAddr, bytes: &[u8]) -> Result<Code, String> {
    let mut c = tokio::net::TcpStream::connect(tcp).await.map_err(|e| e.to_string())?;
    c.write_all(bytes).await.map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        if let Some(code) = error_in(&buf)? {
            return Ok(code);
        }
        match c.read(&mut chunk).await {
            Ok(0) => return Err(format!("closed without a typed error after {} bytes", buf.len())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

async fn ws_case(s: &rpc_server::ServerHandle, msgs: Vec<Message>) -> Result<Code, String> {
    let mut ws = raw_ws(s).await;
    for m in msgs {
        ws.send(m).await.map_err(|e| format!("send: {e}"))?;
    }
    let mut buf = Vec::new();
    loop {
        if let Some(code) = error_in(&buf)? {
            return Ok(code);
        }
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => buf.extend_from_slice(&b),
            Some(Ok(Message::Close(c))) => return Err(format!("closed without a typed error: {c:?}")),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("read: {e}")),
            None => return Err("closed without a typed error".into()),
        }
    }
}

/// The outcome of one case, or a failure if the server has not answered within 5 s.
async fn answer(f: impl std::future::Future<Output = Result<Code, String>>) -> Result<Code, String> {
    tokio::time::timeout(Duration::from_secs(5), f).await.unwrap_or_else(|_| Err("no answer within 5 s".into()))
}

fn check(failures: &mut Vec<String>, name: &str, got: Result<Code, String>, want: Code, intact: Result<(), String>) {
    match got {
        Ok(code) if code == want => {}
        Ok(code) => failures.push(format!("{name}: answered {code}, expected {want}")),
        Err(e) => failures.push(format!("{name}: {e} (expected {want})")),
    }
    if let Err(e) = intact {
        failures.push(format!("{name}: not intact afterwards: {e}"));
    }
}

#[test]
fn hostile_frames_on_tcp_and_websocket_get_typed_aborts() {
    let s = server(limits());
    let tcp = s.tcp_addr.expect("tcp listener");
    let [ws_url, _, tcp_url] = urls(&s);
    let mut failures = Vec::new();
    let cases = wire_cases();
    rpc_client::run(async {
        for case in &cases {
            let got = answer(tcp_case(tcp, &case.msgs.concat())).await;
            let intact = echo_works(&tcp_url).await;
            check(&mut failures, &format!("tcp: {}", case.name), got, case.tcp, intact);
            let frames = case.msgs.iter().map(|m| Message::Binary(m.clone().into())).collect();
            let got = answer(ws_case(&s, frames)).await;
            let intact = echo_works(&ws_url).await;
            check(&mut failures, &format!("ws: {}", case.name), got, case.ws, intact);
        }
        let ws_only: Vec<(&str, Message, Code)> = vec![
            ("text frame", Message::Text("hello".into()), Code::InvalidArgument),
            ("empty binary frame", Message::Binary(Vec::new().into()), Code::InvalidArgument),
            (
                "continuation without a start",
                Message::Frame(Frame::message(bootstrap(0), coding::OpCode::Data(coding::Data::Continue), true)),
                Code::InvalidArgument,
            ),
            (
                "binary frame over max_frame_bytes",
                Message::Binary(vec![0u8; limits().max_frame_bytes + 8].into()),
                Code::LimitExceeded,
            ),
        ];
        for (name, m, want) in ws_only {
            let got = answer(ws_case(&s, vec![m])).await;
            let intact = echo_works(&ws_url).await;
            check(&mut failures, &format!("ws: {name}"), got, want, intact);
        }
        still_serving(&s).await;
    });
    report("wire", failures, cases.len());
    s.stop();
}

// ---------------------------------------------------------------------------------
// Calls a well-behaved client library can be made to send, on every transport.

type CallCase = (&'static str, fn(&directory::Client) -> capnp::capability::Promise<(), capnp::Error>, Code);

fn untyped(dir: &directory::Client, iface: u64, method: u16) -> capnp::capability::Promise<(), capnp::Error> {
    let p = dir.client.new_call::<capnp::any_pointer::Owned, capnp::any_pointer::Owned>(iface, method, None).send();
    capnp::capability::Promise::from_future(async move { p.promise.await.map(|_| ()) })
}

fn call_cases() -> Vec<CallCase> {
    vec![
        ("unknown method id", |d| untyped(d, directory::Client::TYPE_ID, 99), Code::Unimplemented),
        ("unknown interface id", |d| untyped(d, 0x1234, 0), Code::Unimplemented),
        (
            "a blob where a struct should be",
            |d| {
                let mut r = d.client.new_call::<capnp::any_pointer::Owned, capnp::any_pointer::Owned>(
                    directory::Client::TYPE_ID,
                    0,
                    None,
                );
                let _ = r.get().set_as::<capnp::data::Owned>(&b"not a struct"[..]);
                let p = r.send().promise;
                capnp::capability::Promise::from_future(async move { p.await.map(|_| ()) })
            },
            Code::InvalidArgument,
        ),
        (
            "params over max_message_bytes",
            |d| {
                let mut r = d.sum_request();
                r.get().init_values(20_000);
                let p = r.send().promise;
                capnp::capability::Promise::from_future(async move { p.await.map(|_| ()) })
            },
            Code::LimitExceeded,
        ),
        (
            "params nested beyond nesting_limit",
            |d| {
                let mut r = d.depth_request();
                let mut node = r.get().init_tree();
                for _ in 1..40 {
                    node = node.init_children(1).get(0);
                }
                let p = r.send().promise;
                capnp::capability::Promise::from_future(async move { p.await.map(|_| ()) })
            },
            Code::LimitExceeded,
        ),
    ]
}

#[test]
fn hostile_calls_get_typed_exceptions_on_every_transport() {
    let s = server(limits());
    let mut failures = Vec::new();
    let cases = call_cases();
    for url in urls(&s) {
        rpc_client::run(async {
            for (name, send, want) in &cases {
                // A session per case, the case and an echo sent together: over HTTP
                // they are one batch, and the echo shows the batch's session went on.
                let session = connect_any(&url).await.expect("connect");
                let dir = directory(&session.bootstrap);
                let case = send(&dir);
                let mut echo = dir.echo_request();
                echo.get().set_x(7);
                let echo = echo.send().promise;
                let got = match within(name, case).await.map_err(RpcError::from) {
                    Ok(()) => Err("the call succeeded".to_string()),
                    Err(e) => Ok(e.code),
                };
                let intact = match echo.await {
                    Ok(r) if r.get().map(directory::echo_results::Reader::get_x).ok() == Some(7) => Ok(()),
                    Ok(_) => Err("echo answered wrongly".to_string()),
                    Err(e) => Err(format!("echo in the same session: {e}")),
                };
                check(&mut failures, &format!("{url}: {name}"), got, *want, intact);
            }
        });
    }
    rpc_client::run(still_serving(&s));
    report("calls", failures, cases.len());
    s.stop();
}

// ---------------------------------------------------------------------------------
// HTTP: whole requests answered with a status and a JSON `{"code": ...}` body.

fn post(path: &str, ctype: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn bare(method: &str, path: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

const CAPNP: &str = "application/x-capnp";

fn http_cases() -> Vec<(&'static str, Vec<u8>, u16, Code)> {
    let mut many_headers = b"GET /health HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..200 {
        many_headers.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many_headers.extend_from_slice(b"\r\n");
    let huge_header = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(1 << 20)).into_bytes();
    let whole = bootstrap(0);
    let truncated = whole[..whole.len() - 4].to_vec();
    let nine: Vec<u8> = (0..9).flat_map(bootstrap).collect();
    let big = msg(|m| m.init_abort().set_reason("x".repeat(600 << 10)));
    vec![
        ("wrong content type", post("/rpc", "application/json", b"{}"), 400, Code::InvalidArgument),
        ("garbage batch", post("/rpc", CAPNP, b"\x01\x00\x00\x00garbage"), 400, Code::InvalidArgument),
        ("truncated batch", post("/rpc", CAPNP, &truncated), 400, Code::InvalidArgument),
        (
            "batch of a list-pointer root",
            post("/rpc", CAPNP, &raw(&[1], &[0x0000_0001_0000_0001])),
            400,
            Code::InvalidArgument,
        ),
        ("too many messages", post("/rpc", CAPNP, &nine), 413, Code::LimitExceeded),
        ("body over max_batch_bytes", post("/rpc", CAPNP, &big), 413, Code::LimitExceeded),
        ("batch calling an unknown import", post("/rpc", CAPNP, &call_import(0, 42)), 400, Code::InvalidArgument),
        ("GET /rpc without an upgrade", bare("GET", "/rpc"), 400, Code::InvalidArgument),
        ("PUT /rpc", bare("PUT", "/rpc"), 400, Code::InvalidArgument),
        ("DELETE /rpc", bare("DELETE", "/rpc"), 400, Code::InvalidArgument),
        ("unknown path", bare("GET", "/nowhere"), 404, Code::NotFound),
        ("path traversal", bare("GET", "/../../etc/passwd"), 404, Code::NotFound),
        ("200 headers", many_headers, 431, Code::LimitExceeded),
        ("a 1 MiB header", huge_header, 431, Code::LimitExceeded),
        ("garbage request line", b"GET /health HTTP/1.1 junk\r\nHost: x\r\n\r\n".to_vec(), 400, Code::InvalidArgument),
        (
            "Content-Length not a number",
            b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-capnp\r\nContent-Length: lots\r\n\r\n"
                .to_vec(),
            400,
            Code::InvalidArgument,
        ),
    ]
}

#[test]
fn hostile_http_requests_get_a_status_and_a_json_code() {
    let s = server(limits());
    let [_, http_url, _] = urls(&s);
    let mut failures = Vec::new();
    let cases = http_cases();
    rpc_client::run(async {
        for (name, request, status, want) in &cases {
            let (got_status, body) = within(name, raw_http(&s, request)).await;
            let got = match serde_json::from_str::<Value>(&body).ok().and_then(|v| v["code"].as_str().map(String::from))
            {
                Some(c) if got_status == *status => Code::parse(&c).ok_or(format!("unknown code {c}")),
                _ => Err(format!("status {got_status} with body {body:.200} (expected {status})")),
            };
            let intact = echo_works(&http_url).await;
            check(&mut failures, name, got, *want, intact);
        }
        still_serving(&s).await;
    });
    report("http", failures, cases.len());
    s.stop();
}

// ---------------------------------------------------------------------------------
// Storage: Things CRUD, query and patch through RPC.

/// One storage call.
enum Op {
    Create(&'static str, &'static str, String),
    Get(&'static str),
    Update(&'static str, String, u64),
    Replace(&'static str, &'static str),
    Restore(&'static str),
    Upsert(&'static str, &'static str),
    Query(String),
    Count(String),
    BulkUpdate(String, String),
    /// `gateway.object(class, name).storage().count("{}")`.
    Open(&'static str, &'static str),
}

/// The sentinel written before the cases; every case must leave it as it was.
const KEEP: &str = "keep";

fn keep_data() -> Value {
    json!({"n": 1, "s": "text", "big": i64::MAX, "f": 1.0e308})
}

fn storage_cases() -> Vec<(&'static str, Op, Code)> {
    let q = |v: Value| v.to_string();
    let mut deep = json!({"a": 1});
    for _ in 0..12 {
        deep = json!({ "$and": [deep] });
    }
    use Code::*;
    use Op::*;
    vec![
        ("query: unknown operator", Query(q(json!({"where": {"n": {"$where": "1"}}}))), InvalidArgument),
        ("query: $gt with an object", Query(q(json!({"where": {"n": {"$gt": {"x": 1}}}}))), InvalidArgument),
        ("query: $in with a number", Query(q(json!({"where": {"n": {"$in": 5}}}))), InvalidArgument),
        ("query: $exists with a string", Query(q(json!({"where": {"n": {"$exists": "yes"}}}))), InvalidArgument),
        ("query: $and with an object", Query(q(json!({"where": {"$and": {"n": 1}}}))), InvalidArgument),
        ("query: unclosed regex", Query(q(json!({"where": {"s": {"$regex": "(unclosed"}}}))), InvalidArgument),
        ("query: nesting too deep", Query(q(json!({ "where": deep }))), LimitExceeded),
        ("query: not JSON", Query("{\"where\": ".into()), InvalidArgument),
        ("query: an array", Query("[1, 2]".into()), InvalidArgument),
        ("query: unknown field", Query(q(json!({"bogus": 1}))), InvalidArgument),
        ("query: limit 5000", Query(q(json!({"limit": 5000}))), LimitExceeded),
        ("query: limit -1", Query(q(json!({"limit": -1}))), InvalidArgument),
        ("query: limit 2^64", Query("{\"limit\": 18446744073709551616}".into()), InvalidArgument),
        ("query: cursor garbage", Query(q(json!({"cursor": "bm9uc2Vuc2U"}))), InvalidArgument),
        ("query: cursor not base64", Query(q(json!({"cursor": "!!!"}))), InvalidArgument),
        ("query: sort by a number", Query(q(json!({"sort": [5]}))), InvalidArgument),
        ("query: field with SQL", Query(q(json!({"where": {"a'); DROP TABLE things; --": 1}}))), InvalidArgument),
        ("count: unknown operator", Count(q(json!({"where": {"n": {"$bogus": 1}}}))), InvalidArgument),
        ("create: data not JSON", Create("Note", "", "{nope".into()), InvalidArgument),
        ("create: data an array", Create("Note", "", "[1]".into()), InvalidArgument),
        ("create: data over 1 MiB", Create("Note", "", json!({"x": "y".repeat(1 << 20)}).to_string()), LimitExceeded),
        ("create: duplicate id", Create("Note", KEEP, "{}".into()), Conflict),
        ("create: empty type", Create("", "", "{}".into()), InvalidArgument),
        ("create: id with NUL", Create("Note", "a\0b", "{}".into()), InvalidArgument),
        (
            "create: id of 200 bytes",
            Create("Note", Box::leak("i".repeat(200).into_boxed_str()), "{}".into()),
            InvalidArgument,
        ),
        ("get: missing id", Get("missing"), NotFound),
        ("get: empty id", Get(""), NotFound),
        ("update: missing id", Update("missing", "{}".into(), 0), NotFound),
        ("update: unknown patch operator", Update(KEEP, q(json!({"$bogus": {"n": 1}})), 0), InvalidArgument),
        ("update: patch not JSON", Update(KEEP, "{$set".into(), 0), InvalidArgument),
        ("update: patch an array", Update(KEEP, "[1]".into(), 0), InvalidArgument),
        ("update: $inc on a string", Update(KEEP, q(json!({"$inc": {"s": 1}})), 0), InvalidArgument),
        ("update: $inc integer overflow", Update(KEEP, q(json!({"$inc": {"big": 1}})), 0), InvalidArgument),
        ("update: $inc float overflow", Update(KEEP, q(json!({"$inc": {"f": 1.0e308}})), 0), InvalidArgument),
        ("update: $set of version", Update(KEEP, q(json!({"$set": {"version": 9}})), 0), InvalidArgument),
        ("update: stale expected version", Update(KEEP, q(json!({"$set": {"n": 2}})), 99), Conflict),
        ("replace: data an array", Replace(KEEP, "[1]"), InvalidArgument),
        ("restore: missing id", Restore("missing"), NotFound),
        ("upsert: the id as another type", Upsert("Other", KEEP), Conflict),
        ("bulkUpdate: $inc on a string", BulkUpdate(q(json!({})), q(json!({"$inc": {"s": 1}}))), InvalidArgument),
        ("object: class with ..", Open("../../escape", "x"), InvalidArgument),
        ("object: class with a slash", Open("Vault/x", "x"), InvalidArgument),
        ("object: class with NUL", Open("Va\0lt", "x"), InvalidArgument),
        ("object: empty class", Open("", "x"), InvalidArgument),
        ("object: empty name", Open("Vault", ""), InvalidArgument),
        ("object: name of 64 KiB", Open("Vault", Box::leak("n".repeat(64 << 10).into_boxed_str())), InvalidArgument),
    ]
}

async fn run_op(g: &schema::session_capnp::gateway::Client, st: &storage::Client, op: &Op) -> Result<(), RpcError> {
    match op {
        Op::Create(t, id, data) => {
            let mut r = st.create_request();
            r.get().set_type(*t);
            r.get().set_id(*id);
            r.get().set_data(data.as_str());
            r.send().promise.await?;
        }
        Op::Get(id) => {
            let mut r = st.get_request();
            r.get().set_id(*id);
            r.send().promise.await?;
        }
        Op::Update(id, patch, version) => {
            let mut r = st.update_request();
            r.get().set_id(*id);
            r.get().set_patch(patch.as_str());
            r.get().set_expected_version(*version);
            r.send().promise.await?;
        }
        Op::Replace(id, data) => {
            let mut r = st.replace_request();
            r.get().set_id(*id);
            r.get().set_data(*data);
            r.send().promise.await?;
        }
        Op::Restore(id) => {
            let mut r = st.restore_request();
            r.get().set_id(*id);
            r.send().promise.await?;
        }
        Op::Upsert(t, id) => {
            let mut r = st.upsert_request();
            r.get().set_type(*t);
            r.get().set_id(*id);
            r.get().set_data("{}");
            r.send().promise.await?;
        }
        Op::Query(q) => {
            let mut r = st.query_request();
            r.get().set_query(q.as_str());
            r.send().promise.await?;
        }
        Op::Count(q) => {
            let mut r = st.count_request();
            r.get().set_query(q.as_str());
            r.send().promise.await?;
        }
        Op::BulkUpdate(q, patch) => {
            let mut r = st.bulk_update_request();
            r.get().set_query(q.as_str());
            r.get().set_patch(patch.as_str());
            r.send().promise.await?;
        }
        Op::Open(class, name) => {
            let mut r = storage_of(g, class, name).count_request();
            r.get().set_query("{}");
            r.send().promise.await?;
        }
    }
    Ok(())
}

/// (data, version) of the sentinel, and the number of things in the object.
async fn sentinel(st: &storage::Client) -> Result<(Value, u64, u64), RpcError> {
    // Both calls are sent before either is awaited: over HTTP they are one batch.
    let mut get = st.get_request();
    get.get().set_id(KEEP);
    let get = get.send().promise;
    let mut count = st.count_request();
    count.get().set_query("{}");
    let count = count.send().promise;
    let r = get.await?;
    let t = r.get()?.get_thing()?;
    let internal = |e: String| RpcError::new(Code::Internal, e);
    let text = t.get_data()?.to_str().map_err(|e| internal(e.to_string()))?;
    let data = serde_json::from_str(text).map_err(|e| internal(e.to_string()))?;
    let n = count.await?.get()?.get_count();
    Ok((data, t.get_version(), n))
}

#[test]
fn hostile_storage_calls_get_typed_errors_and_change_nothing() {
    let dir = data_dir("hostile-storage");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    let mut failures = Vec::new();
    let cases = storage_cases();
    rpc_client::run(async {
        let session = connect_any(&ws).await.expect("connect");
        let g = &session.bootstrap;
        let st = storage_of(g, "Vault", "v1");
        let mut create = st.create_request();
        create.get().set_type("Note");
        create.get().set_id(KEEP);
        create.get().set_data(keep_data().to_string());
        create.send().promise.await.expect("the sentinel is written");
        let before = sentinel(&st).await.expect("the sentinel reads back");
        assert_eq!(before.0, keep_data());
        for (name, op, want) in &cases {
            let got = match within(name, run_op(g, &st, op)).await {
                Ok(()) => Err("the call succeeded".to_string()),
                Err(e) => Ok(e.code),
            };
            let intact = match sentinel(&st).await {
                Ok(now) if now == before => Ok(()),
                Ok(now) => Err(format!("the object changed: {now:?}, was {before:?}")),
                Err(e) => Err(format!("the session no longer answers: {e}")),
            };
            check(&mut failures, name, got, *want, intact);
        }
    });
    // The data is on disk: a new session after the cases sees the same.
    rpc_client::run(async {
        let session = connect_any(&urls(&s)[2]).await.expect("connect");
        let (data, version, n) = sentinel(&storage_of(&session.bootstrap, "Vault", "v1")).await.expect("sentinel");
        assert_eq!((data, version, n), (keep_data(), 1, 1));
    });
    report("storage", failures, cases.len());
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------
// Tokens: broker mint, redeem and verify.

const ADMIN: &str = "admin-secret-for-hostile-tests";
const K1: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";
const K2: &str = "YW5vdGhlci1zZWNyZXQtYW5vdGhlci1zZWNyZXQtYW5vdGhlcg";
const TARGET: &str = "Vault/v1";

/// One broker call.
enum Tok {
    /// redeem(token, target).storage().create(...).
    Write(String, &'static str),
    /// redeem(token).storage().count("{}").
    Read(String),
    Verify(String),
    Mint {
        key: &'static str,
        target: &'static str,
        methods: Vec<&'static str>,
        scope: &'static str,
    },
    Revoke(&'static str, &'static str),
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn local_mint(keys: &str, kid: &str, target: &str, methods: &[&str], scope: Scope, now: i64, ttl: u64) -> String {
    KeyRing::parse(keys, Some(kid))
        .expect("keys")
        .mint(
            &MintRequest {
                target: target.into(),
                methods: methods.iter().map(ToString::to_string).collect(),
                scope,
                ttl_ms: ttl,
                subject: "hostile".into(),
                namespace: "default".into(),
            },
            now,
            "hostile-local",
        )
        .expect("mint")
}

/// The cases, given a valid write token, a read token, a narrow token and a revoked one.
fn token_cases(write: &str, read: &str, only_get: &str, revoked: &str) -> Vec<(&'static str, Tok, Code)> {
    use Code::*;
    use Tok::*;
    let (head, sig) = write.split_once('.').expect("payload.signature");
    let mut flipped = sig.to_string();
    flipped.replace_range(0..1, if sig.starts_with('A') { "B" } else { "A" });
    let admin_head = {
        use base64::Engine;
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut p: Value = serde_json::from_slice(&b.decode(head).expect("b64")).expect("json");
        p["scope"] = "admin".into();
        p["tgt"] = "Vault/other".into();
        b64(p.to_string().as_bytes())
    };
    let mut no_kid: Value = serde_json::from_slice(&{
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(head).expect("b64")
    })
    .expect("json");
    no_kid["alg"] = "none".into();
    no_kid.as_object_mut().expect("object").remove("kid");
    let now = rpc_core::params::now_ms();
    let keys = format!("k1:{K1}");
    let expired = local_mint(&keys, "k1", TARGET, &["*"], Scope::Admin, 1_000, 1);
    let stranger = local_mint(&format!("k9:{K2}"), "k9", TARGET, &["*"], Scope::Admin, now, 60_000);
    let other_object = local_mint(&keys, "k1", "Vault/v2", &["*"], Scope::Admin, now, 60_000);
    let caveats = format!("{head}{}.{sig}", ".e30".repeat(40));
    vec![
        ("forged signature", Write(format!("{head}.{flipped}"), ""), InvalidSignature),
        ("payload widened, old signature", Write(format!("{admin_head}.{sig}"), ""), InvalidSignature),
        ("signed by an unknown key", Write(stranger, ""), InvalidSignature),
        ("payload only", Write(head.to_string(), ""), Malformed),
        ("signature cut off", Write(format!("{head}."), ""), Malformed),
        ("truncated payload", Write(format!("{}.{sig}", &head[..head.len() / 2]), ""), Malformed),
        ("payload not base64url", Write(format!("!!{head}.{sig}"), ""), Malformed),
        ("signature not base64url", Write(format!("{head}.{sig}!!"), ""), Malformed),
        ("payload not JSON", Write(format!("{}.{sig}", b64(b"{not json")), ""), Malformed),
        (
            "alg none, no key id",
            Write(format!("{}.{}", b64(no_kid.to_string().as_bytes()), b64(b"none")), ""),
            Malformed,
        ),
        ("empty token", Write(String::new(), ""), Malformed),
        ("40 caveats", Write(caveats, ""), Malformed),
        ("a 64 KiB token", Write(format!("{}.{sig}", "A".repeat(64 << 10)), ""), Malformed),
        ("expired", Write(expired, ""), Expired),
        ("for another object", Write(other_object, TARGET), WrongTarget),
        ("redeemed at another target", Write(write.to_string(), "Vault/v2"), WrongTarget),
        ("a method it does not allow", Write(only_get.to_string(), ""), Forbidden),
        ("read scope writing", Write(read.to_string(), ""), InsufficientScope),
        ("revoked", Read(revoked.to_string()), Revoked),
        ("verify garbage", Verify("a.b.c".into()), Malformed),
        ("verify forged", Verify(format!("{head}.{flipped}")), InvalidSignature),
        ("mint without the admin key", Mint { key: "", target: TARGET, methods: vec!["*"], scope: "admin" }, Forbidden),
        (
            "mint with a wrong admin key",
            Mint { key: "admin-secret-for-hostile-test", target: TARGET, methods: vec!["*"], scope: "admin" },
            Forbidden,
        ),
        ("mint scope root", Mint { key: ADMIN, target: TARGET, methods: vec!["*"], scope: "root" }, InvalidArgument),
        ("mint no methods", Mint { key: ADMIN, target: TARGET, methods: vec![], scope: "read" }, InvalidArgument),
        ("mint empty target", Mint { key: ADMIN, target: "", methods: vec!["*"], scope: "read" }, InvalidArgument),
        ("revoke without the admin key", Revoke("wrong", "some-id"), Forbidden),
    ]
}

fn broker_of(g: &schema::session_capnp::gateway::Client, key: &str) -> schema::broker_capnp::broker::Client {
    let mut req = g.broker_request();
    req.get().set_api_key(key);
    req.send().pipeline.get_broker()
}

async fn redeemed(g: &schema::session_capnp::gateway::Client, token: &str, target: &str) -> storage::Client {
    let mut redeem = broker_of(g, "").redeem_request();
    redeem.get().set_token(token);
    redeem.get().set_target(target);
    redeem.send().pipeline.get_object().storage_request().send().pipeline.get_storage()
}

async fn run_tok(url: &str, op: &Tok) -> Result<(), RpcError> {
    let session = connect_any(url).await?;
    let g = &session.bootstrap;
    match op {
        Tok::Write(token, target) => {
            let mut r = redeemed(g, token, target).await.create_request();
            r.get().set_type("Note");
            r.get().set_data("{\"by\": \"hostile\"}");
            r.send().promise.await?;
        }
        Tok::Read(token) => {
            let mut r = redeemed(g, token, "").await.count_request();
            r.get().set_query("{}");
            r.send().promise.await?;
        }
        Tok::Verify(token) => {
            let mut r = broker_of(g, "").verify_request();
            r.get().set_token(token.as_str());
            r.send().promise.await?;
        }
        Tok::Mint { key, target, methods, scope } => {
            let mut r = broker_of(g, key).mint_request();
            let mut m = r.get().init_request();
            m.set_target(*target);
            m.set_scope(*scope);
            m.set_ttl_ms(60_000);
            let mut list = m.init_methods(methods.len() as u32);
            for (i, x) in methods.iter().enumerate() {
                list.set(i as u32, *x);
            }
            r.send().promise.await?;
        }
        Tok::Revoke(key, id) => {
            let mut r = broker_of(g, key).revoke_request();
            r.get().set_token_id(*id);
            r.send().promise.await?;
        }
    }
    Ok(())
}

#[test]
fn hostile_tokens_get_typed_refusals_and_open_nothing() {
    let dir = data_dir("hostile-tokens");
    let s = broker_server(&dir, &format!("k1:{K1}"), "k1", ADMIN);
    let ws = format!("ws://{}/rpc", s.http_addr);
    let http = format!("http://{}/rpc", s.http_addr);
    let mut failures = Vec::new();
    let mut n = 0;
    rpc_client::run(async {
        let session = connect_any(&ws).await.expect("connect");
        let g = &session.bootstrap;
        let keys = format!("k1:{K1}");
        let now = rpc_core::params::now_ms();
        let admin = local_mint(&keys, "k1", TARGET, &["*"], Scope::Admin, now, 600_000);
        let write = local_mint(&keys, "k1", TARGET, &["storage.*"], Scope::Write, now, 600_000);
        let read = local_mint(&keys, "k1", TARGET, &["storage.*"], Scope::Read, now, 600_000);
        let only_get = local_mint(&keys, "k1", TARGET, &["storage.get"], Scope::Write, now, 600_000);
        let revoked = {
            let mut mint = broker_of(g, ADMIN).mint_request();
            let mut m = mint.get().init_request();
            m.set_target(TARGET);
            m.set_scope("read");
            m.set_ttl_ms(600_000);
            m.init_methods(1).set(0, "*");
            let t = mint.send().promise.await.expect("mint");
            let t = t.get().expect("results").get_token().expect("token").to_string().expect("UTF-8");
            let mut verify = broker_of(g, "").verify_request();
            verify.get().set_token(&t);
            let claims = verify.send().promise.await.expect("verify");
            let id = claims.get().expect("claims").get_claims().expect("claims").get_token_id().expect("id");
            let mut revoke = broker_of(g, ADMIN).revoke_request();
            revoke.get().set_token_id(id.to_str().expect("UTF-8"));
            revoke.send().promise.await.expect("revoke");
            t
        };
        let vault = redeemed(g, &admin, "").await;
        let mut create = vault.create_request();
        create.get().set_type("Note");
        create.get().set_id(KEEP);
        create.get().set_data(keep_data().to_string());
        create.send().promise.await.expect("the sentinel is written");
        let before = sentinel(&vault).await.expect("sentinel");
        let cases = token_cases(&write, &read, &only_get, &revoked);
        n = cases.len();
        for (name, op, want) in &cases {
            for url in [&ws, &http] {
                let got = match within(name, run_tok(url, op)).await {
                    Ok(()) => Err("the call succeeded".to_string()),
                    Err(e) => Ok(e.code),
                };
                // A fresh redeem of the admin token still reads the same data.
                let intact =
                    match sentinel(&redeemed(&connect_any(url).await.expect("c").bootstrap, &admin, "").await).await {
                        Ok(now) if now == before => Ok(()),
                        Ok(now) => Err(format!("the object changed: {now:?}, was {before:?}")),
                        Err(e) => Err(format!("a valid token no longer works: {e}")),
                    };
                let kind = if url.starts_with("ws") { "ws" } else { "http" };
                check(&mut failures, &format!("{kind}: {name}"), got, *want, intact);
            }
        }
    });
    report("tokens", failures, n);
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}
