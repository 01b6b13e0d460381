//! dotdo's own WebSocket framing against an independent implementation (tungstenite) as
//! the peer: a message split into fragments with a ping between them, the pong, a large
//! message, and the closing handshake.

mod common;

use capnp::traits::HasTypeId;
use capnp_rpc::rpc_capnp::message;
use common::*;
use futures::{SinkExt, StreamExt};
use rpc_core::Limits;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};
use tokio_tungstenite::tungstenite::Message;

/// A framed `Bootstrap` asking question `id`.
fn bootstrap(id: u32) -> Vec<u8> {
    let mut b = capnp::message::Builder::new_default();
    b.init_root::<message::Builder>().init_bootstrap().set_question_id(id);
    rpc_core::framing::encode(&b)
}

fn answer_id(bytes: &[u8]) -> u32 {
    let m = rpc_core::framing::decode(bytes, Default::default()).expect("a framed reply");
    let root: message::Reader = m.get_root().expect("an rpc message");
    let Ok(message::Return(Ok(r))) = root.which() else { panic!("expected a Return") };
    r.get_answer_id()
}

fn fragment(opcode: OpCode, fin: bool, payload: &[u8]) -> Message {
    let header = FrameHeader { is_final: fin, opcode, ..FrameHeader::default() };
    Message::Frame(Frame::from_payload(header, payload.to_vec().into()))
}

#[test]
fn fragments_pings_and_close_work_with_another_implementation() {
    let s = server(Limits::default());
    rpc_client::run(async {
        let stream = tokio::net::TcpStream::connect(s.http_addr).await.expect("tcp");
        let (mut ws, _) =
            tokio_tungstenite::client_async(format!("ws://{}/rpc", s.http_addr), stream).await.expect("handshake");
        // One Bootstrap in three fragments, a ping between the first two.
        let msg = bootstrap(7);
        let (a, rest) = msg.split_at(5);
        let (b, c) = rest.split_at(6);
        ws.send(fragment(OpCode::Data(Data::Binary), false, a)).await.expect("first fragment");
        ws.send(Message::Ping(b"are you there".to_vec().into())).await.expect("ping");
        ws.send(fragment(OpCode::Data(Data::Continue), false, b)).await.expect("middle");
        ws.send(fragment(OpCode::Data(Data::Continue), true, c)).await.expect("last");
        let mut pong = None;
        let mut answered = None;
        while pong.is_none() || answered.is_none() {
            match within("the server's answers", ws.next()).await {
                Some(Ok(Message::Pong(p))) => pong = Some(p),
                Some(Ok(Message::Binary(b))) => answered = Some(answer_id(&b)),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(pong.as_deref(), Some(&b"are you there"[..]), "the pong echoes the ping");
        assert_eq!(answered, Some(7), "the reassembled Bootstrap was answered");
        // A message of 200 KB (several reads on the server) in one frame.
        let mut big = capnp::message::Builder::new_default();
        {
            let mut call = big.init_root::<message::Builder>().init_call();
            call.set_question_id(8);
            call.reborrow().init_target().init_promised_answer().set_question_id(7);
            call.set_interface_id(schema::session_capnp::gateway::Client::TYPE_ID);
            call.set_method_id(u16::MAX);
            let mut params = call.init_params().init_content();
            params.set_as::<capnp::data::Owned>(&vec![1u8; 200_000][..]).expect("params");
        }
        ws.send(Message::Binary(rpc_core::framing::encode(&big).into())).await.expect("big");
        match within("the answer to the big call", ws.next()).await {
            Some(Ok(Message::Binary(b))) => assert_eq!(answer_id(&b), 8),
            other => panic!("unexpected {other:?}"),
        }
        // The closing handshake: our close is answered with a close.
        ws.close(None).await.expect("close");
        let mut closed = false;
        while let Some(m) = within("the server's close", ws.next()).await {
            match m {
                Ok(Message::Close(_)) => closed = true,
                Ok(other) => panic!("unexpected {other:?}"),
                Err(_) => break,
            }
        }
        assert!(closed, "the server answered the close frame");
        // And the server still serves.
        let session = connect_any(&urls(&s)[0]).await.expect("connect");
        assert_eq!(chain(&directory(&session.bootstrap), "x", "y").await.expect("chain"), "contents of x/y");
    });
    s.stop();
}
