//! An in-process transport: frames over channels between two threads, so a session on
//! one worker thread holds a Cap'n Proto connection to an object living on another.

use bytes::Bytes;
use rpc_core::pump::FrameIo;
use rpc_core::{Code, RpcError};
use std::task::{Context, Poll};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// One end of an in-process connection.
pub struct ChannelFrames {
    tx: Option<UnboundedSender<Bytes>>,
    rx: UnboundedReceiver<Bytes>,
    pending: Vec<Bytes>,
}

/// Two connected ends.
pub fn pair() -> (ChannelFrames, ChannelFrames) {
    let (a_tx, a_rx) = unbounded_channel();
    let (b_tx, b_rx) = unbounded_channel();
    (
        ChannelFrames { tx: Some(a_tx), rx: b_rx, pending: Vec::new() },
        ChannelFrames { tx: Some(b_tx), rx: a_rx, pending: Vec::new() },
    )
}

impl FrameIo for ChannelFrames {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, RpcError>>> {
        self.rx.poll_recv(cx).map(|f| f.map(Ok))
    }

    fn queue(&mut self, frame: Vec<u8>) {
        self.pending.push(Bytes::from(frame));
    }

    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        let Some(tx) = &self.tx else {
            return Poll::Ready(Err(RpcError::new(Code::Disconnected, "in-process connection closed")));
        };
        for f in self.pending.drain(..) {
            if tx.send(f).is_err() {
                return Poll::Ready(Err(RpcError::new(Code::Disconnected, "the object's side is gone")));
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        self.tx = None;
        Poll::Ready(Ok(()))
    }
}
