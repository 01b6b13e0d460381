//! A socket wrapper under the WebSocket codec that counts the bytes read since the last
//! whole message, so a partial WebSocket frame draws on the server-wide
//! [`FrameBudget`] and has a read deadline like a TCP one.
//!
//! The codec buffers what it reads until a frame is whole; the bytes read since the last
//! message it handed out are (up to one read of look-ahead) what it holds. A read that
//! would take the count past the budget fails, and the session ends with OVERLOADED.

use crate::budget::{FrameBudget, Share};
use rpc_core::RpcError;
use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Debug, Default)]
struct State {
    /// Bytes read since the last whole message.
    held: usize,
    /// Whether anything was read since [`Meter::take_activity`].
    active: bool,
    share: Option<Share>,
    /// Why a read was refused.
    refused: Option<RpcError>,
}

/// The session's view of its [`Metered`] socket.
#[derive(Debug, Clone, Default)]
pub struct Meter(Rc<RefCell<State>>);

impl Meter {
    /// A whole message was handed out: what was held is free again. (A codec outside
    /// this crate calls it for each message it reads.)
    pub fn delivered(&self) {
        let mut s = self.0.borrow_mut();
        s.held = 0;
        if let Some(share) = &mut s.share {
            // Giving back never fails.
            let _ = share.hold(0);
        }
    }

    /// Whether a message has started arriving and is not whole yet.
    pub(crate) fn partial(&self) -> bool {
        self.0.borrow().held > 0
    }

    /// Whether bytes arrived since the last call.
    pub(crate) fn take_activity(&self) -> bool {
        std::mem::take(&mut self.0.borrow_mut().active)
    }

    /// Why the last read was refused, if it was.
    pub fn refused(&self) -> Option<RpcError> {
        self.0.borrow_mut().refused.take()
    }
}

/// A socket whose reads are counted by a [`Meter`] (see the module docs).
#[derive(Debug)]
pub struct Metered<S> {
    inner: S,
    meter: Meter,
}

impl<S> Metered<S> {
    /// Wraps `inner`; with a budget, bytes held beyond the free per-connection buffer are
    /// drawn from it.
    pub fn new(inner: S, budget: Option<Arc<FrameBudget>>) -> (Self, Meter) {
        let meter = Meter::default();
        meter.0.borrow_mut().share = budget.map(Share::new);
        (Metered { inner, meter: meter.clone() }, meter)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let got = buf.filled().len() - before;
        if got == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut s = this.meter.0.borrow_mut();
        s.active = true;
        s.held += got;
        let held = s.held;
        if let Some(Err(e)) = s.share.as_mut().map(|share| share.hold(held)) {
            s.refused = Some(e);
            return Poll::Ready(Err(io::Error::other("the budget for partial frames is spent")));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
