//! A Worker's WebSocket, owned with its listeners (removed when the session ends):
//! Cap'n Proto frames ([`FrameIo`] for rpc-core's pump, one message per binary
//! WebSocket message), or Cap'n Web's text messages ([`Socket::poll_message`]).

use bytes::Bytes;
use rpc_core::pump::FrameIo;
use rpc_core::{Code, RpcError};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

/// One WebSocket message.
pub enum Message {
    /// A binary message.
    Binary(Bytes),
    /// A text message.
    Text(String),
}

#[derive(Default)]
struct Inbox {
    frames: VecDeque<Result<Message, RpcError>>,
    closed: bool,
    waker: Option<Waker>,
}

impl Inbox {
    fn push(&mut self, item: Option<Result<Message, RpcError>>) {
        match item {
            Some(frame) => self.frames.push_back(frame),
            None => self.closed = true,
        }
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

type Listener = Closure<dyn FnMut(JsValue)>;

/// An accepted WebSocket carrying one session.
pub struct Socket {
    ws: WebSocket,
    inbox: Rc<RefCell<Inbox>>,
    out: VecDeque<Vec<u8>>,
    listeners: Vec<(&'static str, Listener)>,
}

impl Socket {
    /// Takes over `ws` (accepted, or about to be: listen before accepting so nothing
    /// is missed).
    pub fn new(ws: &worker::WebSocket) -> Result<Socket, RpcError> {
        let ws: WebSocket = AsRef::<WebSocket>::as_ref(ws).clone();
        ws.set_binary_type(BinaryType::Arraybuffer);
        let inbox: Rc<RefCell<Inbox>> = Rc::default();
        let mut socket = Socket { ws, inbox, out: VecDeque::new(), listeners: Vec::new() };
        let inbox = socket.inbox.clone();
        socket.listen("message", move |e: JsValue| {
            let data = e.unchecked_into::<MessageEvent>().data();
            let frame = match data.dyn_into::<js_sys::ArrayBuffer>() {
                Ok(buf) => Ok(Message::Binary(Bytes::from(js_sys::Uint8Array::new(&buf).to_vec()))),
                Err(data) => match data.as_string() {
                    Some(text) => Ok(Message::Text(text)),
                    None => Err(RpcError::invalid_argument("a WebSocket message that is neither binary nor text")),
                },
            };
            inbox.borrow_mut().push(Some(frame));
        })?;
        let inbox = socket.inbox.clone();
        socket.listen("close", move |e: JsValue| {
            let e = e.unchecked_into::<CloseEvent>();
            let mut inbox = inbox.borrow_mut();
            if e.code() != 1000 && e.code() != 1005 {
                inbox.push(Some(Err(RpcError::new(
                    Code::Disconnected,
                    format!("the peer closed the WebSocket: {} {}", e.code(), e.reason()),
                ))));
            }
            inbox.push(None);
        })?;
        let inbox = socket.inbox.clone();
        socket.listen("error", move |_| {
            let mut inbox = inbox.borrow_mut();
            inbox.push(Some(Err(RpcError::new(Code::Disconnected, "the WebSocket failed"))));
            inbox.push(None);
        })?;
        Ok(socket)
    }

    fn listen(&mut self, kind: &'static str, f: impl FnMut(JsValue) + 'static) -> Result<(), RpcError> {
        let listener: Listener = Closure::new(f);
        self.ws
            .add_event_listener_with_callback(kind, listener.as_ref().unchecked_ref())
            .map_err(|_| RpcError::new(Code::Internal, format!("could not listen for {kind} on the WebSocket")))?;
        self.listeners.push((kind, listener));
        Ok(())
    }
}

impl Socket {
    /// The next message; `None` once the peer closed.
    pub fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, RpcError>>> {
        let mut inbox = self.inbox.borrow_mut();
        if let Some(m) = inbox.frames.pop_front() {
            return Poll::Ready(Some(m));
        }
        if inbox.closed {
            return Poll::Ready(None);
        }
        inbox.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Sends a text message; DISCONNECTED when the socket is closed.
    pub fn send_text(&self, text: &str) -> Result<(), RpcError> {
        self.ws.send_with_str(text).map_err(|_| RpcError::new(Code::Disconnected, "the WebSocket is closed"))
    }
}

/// Answers a WebSocket upgrade request: INVALID_ARGUMENT with `refusal` when `req` is
/// not one; else a new pair, whose server side (accepted) goes to `serve`, and the 101
/// answer carrying the client side.
pub fn accept(req: &worker::Request, refusal: &str, serve: impl FnOnce(Socket)) -> Result<worker::Response, RpcError> {
    let upgrade = req.headers().get("upgrade").ok().flatten().unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Err(RpcError::invalid_argument(refusal));
    }
    let internal = |e: worker::Error| RpcError::new(Code::Internal, e.to_string());
    let pair = worker::WebSocketPair::new().map_err(internal)?;
    let socket = Socket::new(&pair.server)?;
    pair.server.accept().map_err(internal)?;
    serve(socket);
    worker::Response::from_websocket(pair.client).map_err(internal)
}

impl Drop for Socket {
    fn drop(&mut self) {
        for (kind, listener) in self.listeners.drain(..) {
            let _ = self.ws.remove_event_listener_with_callback(kind, listener.as_ref().unchecked_ref());
        }
        let _ = self.ws.close_with_code(1000);
    }
}

impl FrameIo for Socket {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, RpcError>>> {
        self.poll_message(cx).map(|m| {
            m.map(|m| match m {
                Ok(Message::Binary(b)) => Ok(b),
                Ok(Message::Text(_)) => {
                    Err(RpcError::invalid_argument("text messages are not Cap'n Proto: send binary messages"))
                }
                Err(e) => Err(e),
            })
        })
    }

    fn queue(&mut self, frame: Vec<u8>) {
        self.out.push_back(frame);
    }

    fn poll_flush(&mut self, _: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        while let Some(frame) = self.out.pop_front() {
            // A copy owned by JavaScript: workerd sends the buffer later, after the
            // frame's memory here is gone.
            let copy = js_sys::Uint8Array::from(frame.as_slice());
            if self.ws.send_with_array_buffer(&copy.buffer()).is_err() {
                return Poll::Ready(Err(RpcError::new(Code::Disconnected, "the WebSocket is closed")));
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        let flushed = self.poll_flush(cx);
        let _ = self.ws.close_with_code(1000);
        flushed
    }
}
