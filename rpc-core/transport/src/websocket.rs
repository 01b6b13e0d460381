//! The WebSocket transport: one Cap'n Proto message per binary frame, subprotocol
//! `capnp-rpc`, over `tokio-tungstenite`, on either side of the connection.

use futures::{Sink, Stream};
use rpc_core::pump::FrameIo;
use rpc_core::Limits;
use rpc_core::{Code, RpcError};
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// Bytes tungstenite reads from the socket at a time. Its default (128 KiB) is zeroed
/// before every read, which cost about 6% of a sequential call, and makes an idle
/// session hold 128 KiB once it has read anything; one read of 8 KiB takes a typical
/// call whole, and larger frames take several reads.
const READ_BUFFER: usize = 8 * 1024;

/// The tungstenite settings matching `limits`: frames above the hard frame limit are
/// refused by the WebSocket layer itself. Frames are buffered and written out by the
/// pump's flush, so a burst of messages costs one write.
pub fn ws_config(limits: &Limits) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(limits.max_frame_bytes))
        .max_frame_size(Some(limits.max_frame_bytes))
}

fn ws_error(e: WsError) -> RpcError {
    match e {
        WsError::Capacity(c) => RpcError::new(Code::LimitExceeded, format!("websocket frame too large: {c}")),
        WsError::ConnectionClosed | WsError::AlreadyClosed => RpcError::new(Code::Disconnected, "websocket closed"),
        WsError::Io(e) => RpcError::new(Code::Disconnected, format!("websocket i/o: {e}")),
        WsError::Protocol(tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => {
            RpcError::new(Code::Disconnected, "the peer went away without closing the websocket")
        }
        other => RpcError::invalid_argument(format!("websocket protocol error: {other}")),
    }
}

/// A WebSocket connection carrying one message per binary frame.
pub struct WsFrames<S> {
    ws: WebSocketStream<S>,
    pending: VecDeque<Message>,
}

impl<S> WsFrames<S> {
    /// Wraps an established WebSocket.
    pub fn new(ws: WebSocketStream<S>) -> Self {
        WsFrames { ws, pending: VecDeque::new() }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> FrameIo for WsFrames<S> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<bytes::Bytes, RpcError>>> {
        loop {
            let item = ready!(Pin::new(&mut self.ws).poll_next(cx));
            return Poll::Ready(match item {
                None => None,
                Some(Ok(Message::Binary(b))) => Some(Ok(b)),
                Some(Ok(Message::Text(_))) => Some(Err(RpcError::new(
                    Code::InvalidArgument,
                    "text frames are not accepted: send each Cap'n Proto message as a binary frame",
                ))),
                Some(Ok(Message::Close(_))) => None,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => None,
                Some(Err(e)) => Some(Err(ws_error(e))),
            });
        }
    }

    fn queue(&mut self, frame: Vec<u8>) {
        self.pending.push_back(Message::Binary(frame.into()));
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        while !self.pending.is_empty() {
            ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(ws_error)?;
            if let Some(m) = self.pending.pop_front() {
                Pin::new(&mut self.ws).start_send(m).map_err(ws_error)?;
            }
        }
        Pin::new(&mut self.ws).poll_flush(cx).map_err(ws_error)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        Pin::new(&mut self.ws).poll_close(cx).map_err(ws_error)
    }
}
