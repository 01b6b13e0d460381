//! Cap'n Web on the Worker, as `dotdo serve` answers it: `POST /capnweb` (an HTTP batch
//! of newline-separated JSON messages) and `GET /capnweb` (a WebSocket of text
//! messages), the protocol being rpc-core's `capnweb` over the session's [`Gateway`].

use crate::gateway::Gateway;
use crate::socket::{Message, Socket};
use capnp::traits::HasTypeId;
use futures::StreamExt;
use rpc_core::capnweb::batch::serve_batch;
use rpc_core::capnweb::{Cap, Session, SessionLimits};
use rpc_core::{Code, Limits, RpcError};
use std::task::Poll;
use worker::{Env, Request, Response};

fn main_cap(namespace: String, env: Env) -> Cap {
    Cap { client: Gateway::client(namespace, env).client, interface: schema::session_capnp::gateway::Client::TYPE_ID }
}

fn text_response(body: String) -> Result<Response, RpcError> {
    let mut r = Response::ok(body).map_err(|e| RpcError::new(Code::Internal, e.to_string()))?;
    r.headers_mut()
        .set("content-type", "text/plain; charset=utf-8")
        .map_err(|e| RpcError::new(Code::Internal, e.to_string()))?;
    Ok(r)
}

/// `POST /capnweb`: one batch, answered with every message the session sent.
pub async fn batch(mut req: Request, namespace: String, env: Env) -> Result<Response, RpcError> {
    let limits = Limits::default();
    let body = req.bytes().await.map_err(|e| RpcError::invalid_argument(format!("could not read the body: {e}")))?;
    if body.len() > limits.max_batch_bytes {
        let e = RpcError::new(
            Code::LimitExceeded,
            format!("batch of {} bytes exceeds the limit of {} bytes", body.len(), limits.max_batch_bytes),
        );
        return text_response(rpc_core::capnweb::batch::abort_line(&e));
    }
    let deadline = limits.call_timeout + std::time::Duration::from_secs(1);
    let answer = serve_batch(main_cap(namespace, env), &body, &limits, worker::Delay::from(deadline)).await;
    text_response(answer)
}

/// `GET /capnweb`: a WebSocket session of text messages.
pub fn session(req: &Request, namespace: String, env: Env) -> Result<Response, RpcError> {
    let refusal = "GET /capnweb must be a WebSocket upgrade (or use POST /capnweb for a batch)";
    crate::socket::accept(req, refusal, |socket| {
        wasm_bindgen_futures::spawn_local(run(socket, main_cap(namespace, env)));
    })
}

/// What woke the session's loop.
enum Event {
    Message(Option<Result<Message, RpcError>>),
    Out(Option<String>),
}

async fn run(mut socket: Socket, main: Cap) {
    let (session, mut driver, mut out) = Session::new(main, SessionLimits::from_limits(&Limits::default()));
    loop {
        // The driver runs the session's calls; the loop ends with the socket.
        let event = futures::future::poll_fn(|cx| {
            let _ = futures::FutureExt::poll_unpin(&mut driver, cx);
            if let Poll::Ready(line) = out.poll_next_unpin(cx) {
                return Poll::Ready(Event::Out(line));
            }
            socket.poll_message(cx).map(Event::Message)
        })
        .await;
        let refusal = match event {
            Event::Out(Some(line)) => match socket.send_text(&line) {
                Ok(()) => continue,
                Err(_) => break,
            },
            Event::Out(None) | Event::Message(None) => break,
            Event::Message(Some(Ok(Message::Text(text)))) => match session.receive(&text) {
                Ok(()) => continue,
                Err(e) if e.code == Code::Disconnected => break,
                Err(_) => None,
            },
            Event::Message(Some(Ok(Message::Binary(_)))) => Some(RpcError::invalid_argument(
                "Cap'n Web messages are text frames (binary Cap'n Proto is served at /rpc)",
            )),
            Event::Message(Some(Err(e))) => Some(e),
        };
        // The peer broke the protocol: tell it why, send what is queued, and end.
        if let Some(e) = refusal {
            session.abort(e);
        }
        while let Ok(line) = out.try_recv() {
            if socket.send_text(&line).is_err() {
                break;
            }
        }
        break;
    }
    session.close();
}
