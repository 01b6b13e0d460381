//! The WebSocket transport: one Cap'n Proto message per binary frame, subprotocol
//! `capnp-rpc`, on either side of the connection.
//!
//! The frames are parsed and written by [`rpc_core::wsframe`] (sans-I/O) over the
//! socket's own buffers: a read fills spare capacity without zeroing it and a frame is
//! parsed where it lies, so a call costs one read and one write, as on TCP. (Going
//! through tokio-tungstenite cost about 40% more instructions per sequential call,
//! most of it zeroing its read buffer before every read.) The opening handshake is
//! HTTP: `hyper` upgrades on the server and [`client_handshake`] on the client.

use crate::metered::Meter;
use crate::timeouts::{SessionTimer, Timeouts};
use bytes::BytesMut;
use rpc_core::pump::{FrameIo, WS_SUBPROTOCOL};
use rpc_core::wsframe::{encode, Decoder, Event, Opcode, Role};
use rpc_core::{Code, Limits, RpcError};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};

/// Bytes a read asks for at least; a frame whose header says it is longer gets room
/// for all of it at once.
const READ_CHUNK: usize = 8 * 1024;

/// Bytes of a frame that must have arrived before the buffer is made as large as the
/// frame's header says, in one allocation: a header alone reserves nothing, and a large
/// frame is read without the copies (and the freed blocks the allocator keeps) of a
/// buffer that doubles as it fills.
const EAGER_AFTER: usize = 64 * 1024;

/// The largest handshake response accepted.
const MAX_HANDSHAKE: usize = 16 * 1024;

fn disconnected(what: &str, e: std::io::Error) -> RpcError {
    RpcError::new(Code::Disconnected, format!("websocket {what}: {e}"))
}

/// A WebSocket connection carrying one message per binary frame.
pub struct WsFrames<S> {
    io: S,
    role: Role,
    decoder: Decoder,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    wpos: usize,
    eof: bool,
    close_sent: bool,
    meter: Option<Meter>,
    timer: Option<SessionTimer>,
}

impl<S> WsFrames<S> {
    /// Wraps a socket whose opening handshake is done; `buffered` holds bytes already
    /// read past the handshake. Messages over `limits.max_frame_bytes` are refused.
    pub fn new(io: S, role: Role, limits: &Limits, buffered: BytesMut) -> Self {
        WsFrames {
            io,
            role,
            decoder: Decoder::new(role, limits.max_frame_bytes),
            rbuf: buffered,
            wbuf: Vec::new(),
            wpos: 0,
            eof: false,
            close_sent: false,
            meter: None,
            timer: None,
        }
    }

    /// Reads partial frames' sizes from `meter`, the [`Meter`] of the
    /// [`crate::metered::Metered`] socket under this WebSocket: a budget it refuses ends
    /// the session with OVERLOADED, and with [`WsFrames::with_timeouts`] a slow frame
    /// ends it with TIMEOUT.
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

    /// A frame (a whole message or a control frame) arrived.
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

    fn mask(&self) -> Option<[u8; 4]> {
        (self.role == Role::Client).then(rand::random)
    }

    fn send(&mut self, opcode: Opcode, payload: &[u8]) {
        if let Some(t) = &mut self.timer {
            t.activity();
        }
        let mask = self.mask();
        encode(opcode, payload, mask, &mut self.wbuf);
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsFrames<S> {
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        while self.wpos < self.wbuf.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.wbuf[self.wpos..]))
                .map_err(|e| disconnected("write", e))?;
            if n == 0 {
                return Poll::Ready(Err(RpcError::new(Code::Disconnected, "websocket write returned 0")));
            }
            self.wpos += n;
        }
        self.wbuf.clear();
        self.wpos = 0;
        Pin::new(&mut self.io).poll_flush(cx).map_err(|e| disconnected("flush", e))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> FrameIo for WsFrames<S> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<bytes::Bytes, RpcError>>> {
        loop {
            let event = self.decoder.decode(&mut self.rbuf);
            if matches!(event, Ok(Some(_))) {
                self.delivered();
            }
            match event {
                Err(e) => return Poll::Ready(Some(Err(e))),
                Ok(Some(Event::Message(m))) => return Poll::Ready(Some(Ok(m))),
                Ok(Some(Event::Ping(p))) => {
                    self.send(Opcode::Pong, &p);
                    // Answered now if the socket takes it; otherwise with the next flush.
                    if let Poll::Ready(Err(e)) = self.poll_write_out(cx) {
                        return Poll::Ready(Some(Err(e)));
                    }
                    continue;
                }
                Ok(Some(Event::Pong)) => continue,
                Ok(Some(Event::Close(code))) => {
                    if !self.close_sent {
                        self.close_sent = true;
                        self.send(Opcode::Close, &code.unwrap_or(1000).to_be_bytes());
                    }
                    return Poll::Ready(None);
                }
                Ok(None) => {}
            }
            if self.eof {
                return Poll::Ready(Some(Err(RpcError::new(
                    Code::Disconnected,
                    "the peer went away without closing the websocket",
                ))));
            }
            let rest = Decoder::frame_len(&self.rbuf).unwrap_or(0).saturating_sub(self.rbuf.len());
            let want = if self.rbuf.len() >= EAGER_AFTER { rest } else { rest.min(EAGER_AFTER) }.max(READ_CHUNK);
            if self.rbuf.capacity() - self.rbuf.len() < want {
                self.rbuf.reserve(want);
            }
            let Poll::Ready(read) = tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf) else {
                return self.poll_deadlines(cx);
            };
            match read {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) => {
                    let refused = self.meter.as_ref().and_then(Meter::refused);
                    return Poll::Ready(Some(Err(refused.unwrap_or_else(|| disconnected("read", e)))));
                }
            }
        }
    }

    fn queue(&mut self, frame: Vec<u8>) {
        self.send(Opcode::Binary, &frame);
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        self.poll_write_out(cx)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        if !self.close_sent {
            self.close_sent = true;
            self.send(Opcode::Close, &1000u16.to_be_bytes());
        }
        ready!(self.poll_write_out(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx).map_err(|e| disconnected("close", e))
    }
}

/// The client's side of the opening handshake on a connected stream: asks for `path`
/// on `host` with subprotocol `capnp-rpc` and checks the server's answer. Returns the
/// stream and any bytes read past the handshake, for [`WsFrames::new`].
pub async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    host: &str,
    path: &str,
) -> Result<(S, BytesMut), RpcError> {
    use tokio::io::AsyncReadExt;
    if host.contains(['\r', '\n']) || path.contains(['\r', '\n', ' ']) {
        return Err(RpcError::invalid_argument(format!("bad websocket host {host:?} or path {path:?}")));
    }
    let key = generate_key();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {WS_SUBPROTOCOL}\r\n\r\n"
    );
    io.write_all(request.as_bytes()).await.map_err(|e| disconnected("handshake", e))?;
    let mut buf = BytesMut::with_capacity(1024);
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HANDSHAKE {
            return Err(RpcError::new(Code::Disconnected, "websocket handshake: the response headers are too long"));
        }
        if io.read_buf(&mut buf).await.map_err(|e| disconnected("handshake", e))? == 0 {
            return Err(RpcError::new(Code::Disconnected, "websocket handshake: the server closed the connection"));
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    check_response(&head, &derive_accept_key(key.as_bytes()))?;
    let rest = buf.split_off(end);
    Ok((io, rest))
}

/// Checks a handshake response's status line and headers.
fn check_response(head: &str, accept: &str) -> Result<(), RpcError> {
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    if status.split(' ').nth(1) != Some("101") {
        return Err(RpcError::new(
            Code::Disconnected,
            format!("websocket handshake failed: the server answered {:?}", status.trim()),
        ));
    }
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    if !header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return Err(RpcError::new(Code::Disconnected, "websocket handshake failed: no Upgrade: websocket"));
    }
    if header("sec-websocket-accept").as_deref() != Some(accept) {
        return Err(RpcError::new(Code::Disconnected, "websocket handshake failed: wrong Sec-WebSocket-Accept"));
    }
    match header("sec-websocket-protocol") {
        Some(p) if p != WS_SUBPROTOCOL => Err(RpcError::new(
            Code::Unsupported,
            format!("websocket handshake failed: the server chose subprotocol {p:?}"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handshake_response_is_checked() {
        let ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: abc\r\nSec-WebSocket-Protocol: capnp-rpc\r\n\r\n";
        assert!(check_response(ok, "abc").is_ok());
        assert_eq!(check_response(ok, "xyz").map_err(|e| e.code), Err(Code::Disconnected));
        let refused = "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\r\n";
        let e = check_response(refused, "abc").expect_err("400 is not an upgrade");
        assert!(e.message.contains("400"), "{e}");
        let other = ok.replace("capnp-rpc", "graphql-ws");
        assert_eq!(check_response(&other, "abc").map_err(|e| e.code), Err(Code::Unsupported));
    }
}
