//! Malformed frames, truncated messages, garbage bodies, wrong content types, unknown
//! paths and unknown methods get clear, typed errors, and the server goes on serving.

mod common;

use capnp::traits::HasTypeId;
use common::*;
use futures::{SinkExt, StreamExt};
use rpc_core::{Code, Limits};
use schema::demo_capnp::directory;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

#[test]
fn malformed_websocket_frames_are_aborted_with_invalid_argument() {
    let s = server(Limits::default());
    rpc_client::run(async {
        for bad in [Message::Binary(b"\xff\xff\xff\x7fnot capnp".to_vec().into()), Message::Text("hello".into())] {
            let mut ws = raw_ws(&s).await;
            ws.send(bad).await.expect("send");
            let reply = ws.next().await.expect("a reply").expect("a frame");
            let Message::Binary(b) = reply else { panic!("expected a binary Abort, got {reply:?}") };
            assert_eq!(abort_code(&b), Code::InvalidArgument);
        }
        // A message cut short: valid header, missing body.
        let mut ws = raw_ws(&s).await;
        let mut whole = Vec::new();
        whole.extend_from_slice(&0u32.to_le_bytes());
        whole.extend_from_slice(&4u32.to_le_bytes());
        whole.extend_from_slice(&[0u8; 8]);
        ws.send(Message::Binary(whole.into())).await.expect("send");
        let Some(Ok(Message::Binary(b))) = ws.next().await else { panic!("expected an Abort") };
        assert_eq!(abort_code(&b), Code::InvalidArgument);
        still_serving(&s).await;
    });
    assert!(metric(&s, |m| &m.aborted_sessions) >= 3);
    s.stop();
}

#[test]
fn garbage_and_truncation_on_tcp_leave_the_server_serving() {
    let s = server(Limits::default());
    let tcp = s.tcp_addr.expect("tcp");
    rpc_client::run(async {
        let mut c = tokio::net::TcpStream::connect(tcp).await.expect("tcp");
        c.write_all(&[0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4]).await.expect("write");
        let mut reply = Vec::new();
        c.read_to_end(&mut reply).await.expect("read until the server closes");
        assert_eq!(abort_code(&reply), Code::InvalidArgument);
        // Half a message, then hang up.
        let mut c = tokio::net::TcpStream::connect(tcp).await.expect("tcp");
        c.write_all(&[0, 0, 0, 0, 9, 0, 0, 0, 1, 2]).await.expect("write");
        drop(c);
        still_serving(&s).await;
    });
    s.stop();
}

/// A framed call to import 42, which the server never exported.
fn call_to_unknown_import() -> Vec<u8> {
    let mut b = capnp::message::Builder::new_default();
    {
        let mut c = b.init_root::<capnp_rpc::rpc_capnp::message::Builder>().init_call();
        c.set_question_id(0);
        c.set_interface_id(1);
        c.reborrow().init_target().set_imported_cap(42);
        c.init_params().init_content();
    }
    rpc_core::framing::encode(&b)
}

/// A framed `Abort` from the peer with a reason of `len` bytes.
fn peer_abort(len: usize) -> Vec<u8> {
    let mut b = capnp::message::Builder::new_default();
    b.init_root::<capnp_rpc::rpc_capnp::message::Builder>().init_abort().set_reason("x".repeat(len));
    rpc_core::framing::encode(&b)
}

#[test]
fn the_engines_own_aborts_carry_a_code_and_a_short_reason() {
    let s = server(Limits::default());
    let tcp = s.tcp_addr.expect("tcp");
    rpc_client::run(async {
        let mut c = tokio::net::TcpStream::connect(tcp).await.expect("tcp");
        c.write_all(&call_to_unknown_import()).await.expect("write");
        let mut reply = Vec::new();
        c.read_to_end(&mut reply).await.expect("read until the server closes");
        assert_eq!(abort_code(&reply), Code::InvalidArgument, "a protocol error by the peer");
        // A peer's 4 MB abort reason is not echoed back whole.
        let mut c = tokio::net::TcpStream::connect(tcp).await.expect("tcp");
        c.write_all(&peer_abort(4 << 20)).await.expect("write");
        let mut reply = Vec::new();
        c.read_to_end(&mut reply).await.expect("read until the server closes");
        assert!(reply.len() <= 2 * rpc_core::guard::MAX_ABORT_REASON, "{} bytes came back", reply.len());
        assert_eq!(abort_code(&reply), Code::InvalidArgument, "the echo is typed too");
        still_serving(&s).await;
    });
    s.stop();
}

#[test]
fn bad_http_requests_get_json_errors_with_codes() {
    let s = server(Limits::default());
    rpc_client::run(async {
        let (status, body) = http(&s, "POST", "/rpc", "application/x-capnp", b"\x01\x00\x00\x00garbage").await;
        assert_eq!((status, json_code(&body)), (400, Code::InvalidArgument));
        let (status, body) = http(&s, "POST", "/rpc", "application/json", b"{}").await;
        assert_eq!((status, json_code(&body)), (400, Code::InvalidArgument));
        assert!(body.contains("application/x-capnp"), "the error names the right type: {body}");
        let (status, body) = http(&s, "GET", "/nowhere", "text/plain", b"").await;
        assert_eq!((status, json_code(&body)), (404, Code::NotFound));
        let (status, body) = http(&s, "GET", "/rpc", "text/plain", b"").await;
        assert_eq!((status, json_code(&body)), (400, Code::InvalidArgument));
        let (status, body) = http(&s, "PUT", "/rpc", "application/x-capnp", b"").await;
        assert_eq!((status, json_code(&body)), (400, Code::InvalidArgument));
        let (status, body) = http(&s, "GET", "/health", "text/plain", b"").await;
        assert_eq!(status, 200);
        assert!(body.contains("\"status\":\"ok\""));
        still_serving(&s).await;
    });
    assert!(metric(&s, |m| &m.refused_requests) >= 5);
    s.stop();
}

#[test]
fn requests_hyper_cannot_parse_get_json_errors_too() {
    let s = server(Limits::default());
    rpc_client::run(async {
        let (status, body) = raw_http(&s, b"GET /health HTTP/1.1 junk\r\nHost: x\r\n\r\n").await;
        assert_eq!((status, json_code(&body)), (400, Code::InvalidArgument), "{body}");
        let mut many = b"GET /health HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..200 {
            many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let (status, body) = raw_http(&s, &many).await;
        assert_eq!((status, json_code(&body)), (431, Code::LimitExceeded), "{body}");
        still_serving(&s).await;
    });
    s.stop();
}

#[test]
fn a_websocket_with_another_subprotocol_is_refused() {
    let s = server(Limits::default());
    rpc_client::run(async {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://{}/rpc", s.http_addr).into_client_request().unwrap();
        req.headers_mut().insert("sec-websocket-protocol", "graphql-ws".parse().unwrap());
        let stream = tokio::net::TcpStream::connect(s.http_addr).await.unwrap();
        match tokio_tungstenite::client_async(req, stream).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), Code::Unsupported.http_status(), "refused as UNSUPPORTED");
            }
            Err(e) => panic!("refused with the wrong error: {e}"),
            Ok(_) => panic!("a WebSocket with another subprotocol was accepted"),
        }
    });
    s.stop();
}

#[test]
fn unknown_methods_interfaces_and_wrong_types_get_typed_errors() {
    let s = server(Limits::default());
    for url in urls(&s) {
        rpc_client::run(async {
            let session = connect_any(&url).await.expect("connect");
            let dir = directory(&session.bootstrap);
            let unknown_method = dir
                .client
                .new_call::<capnp::any_pointer::Owned, capnp::any_pointer::Owned>(directory::Client::TYPE_ID, 99, None)
                .send();
            let unknown_iface =
                dir.client.new_call::<capnp::any_pointer::Owned, capnp::any_pointer::Owned>(0x1234, 0, None).send();
            // open() with a blob where a struct should be.
            let mut wrong = dir.client.new_call::<capnp::any_pointer::Owned, capnp::any_pointer::Owned>(
                directory::Client::TYPE_ID,
                0,
                None,
            );
            wrong.get().set_as::<capnp::data::Owned>(&b"not a struct"[..]).expect("set");
            let wrong = wrong.send();
            let mut empty = dir.open_request();
            empty.get().set_name("");
            let empty = empty.send();
            assert_eq!(code(unknown_method.promise.await), Code::Unimplemented, "over {url}");
            assert_eq!(code(unknown_iface.promise.await), Code::Unimplemented, "over {url}");
            assert_eq!(code(wrong.promise.await), Code::InvalidArgument, "over {url}");
            assert_eq!(code(empty.promise.await), Code::InvalidArgument, "over {url}");
        });
    }
    rpc_client::run(still_serving(&s));
    s.stop();
}
