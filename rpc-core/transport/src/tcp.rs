//! The TCP transport: the standard Cap'n Proto message stream, so native peers in any
//! language (C++, Python's pycapnp, Go, capnp-rpc's twoparty) can connect.

use crate::budget::{FrameBudget, Share, FREE_PER_CONNECTION};
use crate::timeouts::{SessionTimer, Timeouts};
use rpc_core::framing;
use rpc_core::pump::FrameIo;
use rpc_core::{Code, RpcError};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The read buffer a connection starts with (an idle session holds no more).
const READ_START: usize = 4 * 1024;

/// A byte stream carrying back-to-back framed messages.
///
/// The read buffer starts at 4 KiB and doubles when a frame (or a burst of frames) fills
/// it. Beyond [`FREE_PER_CONNECTION`] it draws on a server-wide [`FrameBudget`] (when
/// one is given), and after a large frame it shrinks back.
pub struct StreamFrames<S> {
    io: S,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    max_frame: usize,
    eof: bool,
    share: Option<Share>,
    timer: Option<SessionTimer>,
}

impl<S> StreamFrames<S> {
    /// Wraps a connected stream; frames over `max_frame` bytes are refused.
    pub fn new(io: S, max_frame: usize) -> Self {
        StreamFrames {
            io,
            rbuf: vec![0; READ_START],
            rstart: 0,
            rend: 0,
            wbuf: Vec::new(),
            wpos: 0,
            max_frame,
            eof: false,
            share: None,
            timer: None,
        }
    }

    /// Draws read buffers over [`FREE_PER_CONNECTION`] bytes from `budget`: a frame that
    /// would pass it ends the session with OVERLOADED.
    pub fn with_budget(mut self, budget: Arc<FrameBudget>) -> Self {
        self.share = Some(Share::new(budget));
        self
    }

    /// Ends the session with TIMEOUT when it is idle or a frame is slow (see
    /// [`Timeouts`]). Needs a tokio runtime with time enabled.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timer = Some(SessionTimer::new(timeouts));
        self
    }

    /// Makes room to read into: moves the partial frame to the front and grows the buffer
    /// when it is full (up to the frame's length when that is known), within the budget.
    fn make_room(&mut self) -> Result<(), RpcError> {
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
            if self.rbuf.len() > FREE_PER_CONNECTION {
                // A large frame is done: give its memory back.
                self.rbuf = vec![0; FREE_PER_CONNECTION];
                self.rbuf.shrink_to_fit();
                if let Some(share) = &mut self.share {
                    share.hold(self.rbuf.len())?;
                }
            }
        }
        if self.rend < self.rbuf.len() {
            return Ok(());
        }
        self.rbuf.copy_within(self.rstart..self.rend, 0);
        self.rend -= self.rstart;
        self.rstart = 0;
        if self.rend < self.rbuf.len() {
            return Ok(());
        }
        let need = framing::message_len(&self.rbuf[..self.rend])?.unwrap_or(0);
        let grown = (self.rbuf.len() * 2).min(need.max(self.rbuf.len() + 1)).max(self.rbuf.len() + 1);
        if let Some(share) = &mut self.share {
            share.hold(grown)?;
        }
        self.rbuf.resize(grown, 0);
        Ok(())
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
            if let Err(e) = self.make_room() {
                return Poll::Ready(Some(Err(e)));
            }
            let mut rb = ReadBuf::new(&mut self.rbuf[self.rend..]);
            let res = Pin::new(&mut self.io).poll_read(cx, &mut rb);
            let got = rb.filled().len();
            self.rend += got;
            match res {
                Poll::Pending => {
                    if let Some(timer) = &mut self.timer {
                        timer.partial(self.rstart < self.rend);
                        if let Some(e) = timer.poll_expired(cx) {
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Ok(())) if got == 0 => self.eof = true,
                Poll::Ready(Ok(())) => {
                    if let Some(timer) = &mut self.timer {
                        timer.activity();
                    }
                    if self.rend == self.rbuf.len() && self.rbuf.len() < FREE_PER_CONNECTION {
                        // Busy: read more at a time (still within the free buffer).
                        self.rbuf.resize(self.rbuf.len() * 2, 0);
                    }
                }
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Some(Err(RpcError::new(Code::Disconnected, format!("tcp read: {e}")))))
                }
            }
        }
    }

    fn queue(&mut self, frame: Vec<u8>) {
        if let Some(timer) = &mut self.timer {
            timer.activity();
        }
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
