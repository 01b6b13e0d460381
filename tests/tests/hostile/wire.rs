//! Raw frames over TCP and WebSocket, answered with a typed `Abort` or `Return`.

use super::*;
use capnp::traits::HasTypeId;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::{coding, Frame};
use tokio_tungstenite::tungstenite::Message;

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

fn gateway_id() -> u64 {
    schema::session_capnp::gateway::Client::TYPE_ID
}

/// `bootstrap`, `demo()` and a `depth` call whose tree has `k` children per node over
/// `levels` levels, every node of a level sharing one children list through far
/// pointers: about `levels * k` words on the wire, `k^levels` nodes to walk.
fn amplified_depth(k: u32, levels: u64) -> Vec<Vec<u8>> {
    let demo = msg(|m| {
        let mut c = m.init_call();
        c.set_question_id(1);
        c.set_interface_id(gateway_id());
        c.set_method_id(2);
        c.reborrow().init_target().init_promised_answer().set_question_id(0);
        c.init_params().init_content();
    });
    let mut b = capnp::message::Builder::new_default();
    {
        let mut c = b.init_root::<message::Builder>().init_call();
        c.set_question_id(2);
        c.set_interface_id(directory::Client::TYPE_ID);
        c.set_method_id(7);
        let mut target = c.reborrow().init_target().init_promised_answer();
        target.set_question_id(1);
        target.init_transform(1).get(0).set_get_pointer_field(0);
        let params = c.init_params().init_content().init_as::<directory::depth_params::Builder>();
        params.init_tree().init_children(k);
    }
    let segments = b.get_segments_for_output();
    assert_eq!(segments.len(), 1, "the envelope fits one segment");
    let mut seg0 = segments[0].to_vec();
    let k = u64::from(k);
    let tag = (k << 2) | (1 << 48);
    let list_ptr = 1 | (7 << 32) | (k << 35);
    let far = |offset: u64| 2 | (offset << 3) | (1 << 32);
    let at = seg0.chunks(8).position(|w| w == tag.to_le_bytes()).expect("the children list's tag word");
    for i in 0..k as usize {
        seg0[(at + 1 + i) * 8..(at + 2 + i) * 8].copy_from_slice(&far(0).to_le_bytes());
    }
    // Segment 1: per level a landing pad (a list pointer) and the list it points to, whose
    // every element's children point at the next level's landing pad.
    let mut seg1 = Vec::new();
    for level in 0..levels {
        let next = if level + 1 < levels { far((level + 1) * (k + 2)) } else { 0 };
        seg1.extend([list_ptr, tag]);
        seg1.extend((0..k).map(|_| next));
    }
    let mut frame = raw(&[(seg0.len() / 8) as u32, seg1.len() as u32], &[]);
    frame.extend_from_slice(&seg0);
    frame.extend(seg1.iter().flat_map(|w| w.to_le_bytes()));
    vec![bootstrap(0), demo, frame]
}

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
        c("traversal amplification: 64^4 tree nodes in 2 KiB", amplified_depth(64, 3), Code::LimitExceeded),
        c(
            "peer abort with a 32 KiB reason",
            vec![msg(|m| m.init_abort().set_reason("x".repeat(32 << 10)))],
            Code::InvalidArgument,
        ),
        c(
            "peer abort over max_message_bytes",
            vec![msg(|m| m.init_abort().set_reason("x".repeat(128 << 10)))],
            Code::LimitExceeded,
        ),
    ]
}

async fn tcp_case(tcp: std::net::SocketAddr, bytes: &[u8]) -> Result<Code, String> {
    let mut c = tokio::net::TcpStream::connect(tcp).await.map_err(|e| e.to_string())?;
    // The server may answer and close before it has read everything: a failed write is
    // only a failure if no typed answer came back.
    let written = c.write_all(bytes).await;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        if let Some(code) = error_in(&buf)? {
            return Ok(code);
        }
        match c.read(&mut chunk).await {
            Ok(0) => {
                return Err(format!("closed without a typed error after {} bytes (write: {written:?})", buf.len()))
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e} (write: {written:?})")),
        }
    }
}

async fn ws_case(s: &rpc_server::ServerHandle, msgs: Vec<Message>) -> Result<Code, String> {
    let mut ws = raw_ws(s).await;
    for m in msgs {
        if let Err(e) = ws.send(m).await {
            return ws_reply(&mut ws).await.map_err(|r| format!("{r} (send: {e})"));
        }
    }
    ws_reply(&mut ws).await
}

async fn ws_reply(ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) -> Result<Code, String> {
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
