//! The TCP transport: the standard Cap'n Proto message stream, so native peers in any
//! language (C++, Python's pycapnp, Go, capnp-rpc's twoparty) can connect.

use rpc_core::framing;
use rpc_core::pump::FrameIo;
use rpc_core::{Code, RpcError};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const READ_CHUNK: usize = 64 * 1024;

/// A byte stream carrying back-to-back framed messages.
pub struct StreamFrames<S> {
    io: S,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    max_frame: usize,
    eof: bool,
}

impl<S> StreamFrames<S> {
    /// Wraps a connected stream; frames over `max_frame` bytes are refused.
    pub fn new(io: S, max_frame: usize) -> Self {
        StreamFrames {
            io,
            rbuf: vec![0; READ_CHUNK],
            rstart: 0,
            rend: 0,
            wbuf: Vec::new(),
            wpos: 0,
            max_frame,
            eof: false,
        }
    }

    fn take_frame(&mut self) -> Result<Option<bytes::Bytes>, RpcError> {
        let avail = &self.rbuf[self.rstart..self.rend];
        match framing::message_len(avail)? {
            Some(n) if n > self.max_frame => Err(RpcError::new(
                Code::LimitExceeded,
                format!("message of {n} bytes exceeds the hard limit of {} bytes", self.max_frame),
            )),
            Some(n) if n <= avail.len() => {
                let frame = bytes::Bytes::copy_from_slice(&avail[..n]);
                self.rstart += n;
                if self.rstart == self.rend {
                    self.rstart = 0;
                    self.rend = 0;
                }
                Ok(Some(frame))
            }
            _ => Ok(None),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> FrameIo for StreamFrames<S> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<bytes::Bytes, RpcError>>> {
        loop {
            match self.take_frame() {
                Ok(Some(f)) => return Poll::Ready(Some(Ok(f))),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
            if self.eof {
                return Poll::Ready(if self.rstart == self.rend {
                    None
                } else {
                    Some(Err(RpcError::invalid_argument("truncated message at end of stream")))
                });
            }
            if self.rend == self.rbuf.len() {
                // Full: move the partial frame to the front, and grow if it fills the buffer.
                self.rbuf.copy_within(self.rstart..self.rend, 0);
                self.rend -= self.rstart;
                self.rstart = 0;
                if self.rend == self.rbuf.len() {
                    self.rbuf.resize(self.rbuf.len() * 2, 0);
                }
            }
            let mut rb = ReadBuf::new(&mut self.rbuf[self.rend..]);
            let res = Pin::new(&mut self.io).poll_read(cx, &mut rb);
            let got = rb.filled().len();
            self.rend += got;
            match ready!(res) {
                Ok(()) if got == 0 => self.eof = true,
                Ok(()) => {}
                Err(e) => return Poll::Ready(Some(Err(RpcError::new(Code::Disconnected, format!("tcp read: {e}"))))),
            }
        }
    }

    fn queue(&mut self, frame: Vec<u8>) {
        if self.wbuf.is_empty() {
            self.wbuf = frame;
            self.wpos = 0;
        } else {
            self.wbuf.extend_from_slice(&frame);
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        while self.wpos < self.wbuf.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.wbuf[self.wpos..]))
                .map_err(|e| RpcError::new(Code::Disconnected, format!("tcp write: {e}")))?;
            if n == 0 {
                return Poll::Ready(Err(RpcError::new(Code::Disconnected, "tcp write returned 0")));
            }
            self.wpos += n;
        }
        self.wbuf.clear();
        self.wpos = 0;
        Pin::new(&mut self.io).poll_flush(cx).map_err(|e| RpcError::new(Code::Disconnected, format!("tcp flush: {e}")))
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        Pin::new(&mut self.io)
            .poll_shutdown(cx)
            .map_err(|e| RpcError::new(Code::Disconnected, format!("tcp close: {e}")))
    }
}
