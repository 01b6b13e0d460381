//! The WebSocket transport: one Cap'n Proto message per binary frame, subprotocol
//! `capnp-rpc`, over `tokio-tungstenite`, on either side of the connection.

use crate::metered::Meter;
use crate::timeouts::{SessionTimer, Timeouts};
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

/// Bytes tungstenite reads at a time (and holds for an idle connection): its default of
/// 128 KiB, zero-filled on the first read, was most of an idle session's memory.
const READ_BUFFER: usize = 8 * 1024;

/// Bytes of queued frames tungstenite collects before writing (the pump flushes sooner).
const WRITE_BUFFER: usize = 64 * 1024;

/// The tungstenite settings matching `limits`: frames above the hard frame limit are
/// refused by the WebSocket layer itself. Frames are buffered and written out by the
/// pump's flush, so a burst of messages costs one write. The read buffer is small
/// (8 KiB) so an idle session holds little; a large frame grows it as it arrives.
pub fn ws_config(limits: &Limits) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(limits.max_frame_bytes))
        .max_frame_size(Some(limits.max_frame_bytes))
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
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
    meter: Option<Meter>,
    timer: Option<SessionTimer>,
}

impl<S> WsFrames<S> {
    /// Wraps an established WebSocket.
    pub fn new(ws: WebSocketStream<S>) -> Self {
        WsFrames { ws, pending: VecDeque::new(), meter: None, timer: None }
    }

    /// Reads partial frames' sizes from `meter`, the [`Meter`] of the [`crate::metered::Metered`]
    /// socket under this WebSocket: a budget it refuses ends the session with OVERLOADED,
    /// and with [`WsFrames::with_timeouts`] a slow frame ends it with TIMEOUT.
    pub fn with_meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Ends the session with TIMEOUT when it is idle (pings count as frames) or, with a
    /// meter, when a frame is slow (see [`Timeouts`]). Needs a tokio runtime with time.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timer = Some(SessionTimer::new(timeouts));
        self
    }

    /// A message arrived whole.
    fn delivered(&mut self) {
        if let Some(m) = &self.meter {
            m.delivered();
        }
        if let Some(t) = &mut self.timer {
            t.activity();
        }
    }

    /// Nothing more to read now: the deadlines, if any, have their say.
    fn poll_deadlines(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<bytes::Bytes, RpcError>>> {
        let Some(timer) = &mut self.timer else { return Poll::Pending };
        if let Some(m) = &self.meter {
            if m.take_activity() {
                timer.activity();
            }
            timer.partial(m.partial());
        }
        match timer.poll_expired(cx) {
            Some(e) => Poll::Ready(Some(Err(e))),
            None => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> FrameIo for WsFrames<S> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<bytes::Bytes, RpcError>>> {
        loop {
            let Poll::Ready(item) = Pin::new(&mut self.ws).poll_next(cx) else {
                return self.poll_deadlines(cx);
            };
            if matches!(item, Some(Ok(_))) {
                self.delivered();
            }
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
                Some(Err(e)) => Some(Err(self.meter.as_ref().and_then(Meter::refused).unwrap_or_else(|| ws_error(e)))),
            });
        }
    }

    fn queue(&mut self, frame: Vec<u8>) {
        if let Some(t) = &mut self.timer {
            t.activity();
        }
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
