//! The pump: moves framed Cap'n Proto messages between a socket that carries whole
//! frames ([`FrameIo`]) and a connection's [`Link`], under a [`Guard`]. It does no I/O of
//! its own: the transports (crate `rpc-transport`: WebSocket, TCP) implement
//! [`FrameIo`] over a real socket, and tests implement it over queues.

use crate::error::{Code, RpcError};
use crate::framing;
use crate::guard::{abort_message, Guard, Inbound};
use crate::vat::Link;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

/// The WebSocket subprotocol dotdo speaks.
pub const WS_SUBPROTOCOL: &str = "capnp-rpc";

/// The content type of HTTP batch bodies.
pub const BATCH_CONTENT_TYPE: &str = "application/x-capnp";

/// Bytes of queued frames that force a flush even while the engine is still sending.
const FLUSH_BYTES: usize = 64 * 1024;

/// How many frames a pump takes in before it lets the engine run.
const RECV_BUDGET: usize = 256;

/// A socket that carries whole frames.
pub trait FrameIo: Unpin {
    /// The next received frame; `None` when the peer closed cleanly.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<bytes::Bytes, RpcError>>>;
    /// Queues a frame for sending (no I/O happens here).
    fn queue(&mut self, frame: Vec<u8>);
    /// Writes queued frames out.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>>;
    /// Closes the sending side after a final flush.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>>;
}

enum State {
    Running,
    /// Flushing the final frames (an abort, or what the engine sent before shutdown).
    Closing(Result<(), capnp::Error>),
    Done,
}

/// Moves messages between a [`FrameIo`] and a [`Link`] under a [`Guard`]; the future a
/// streaming connection's engine is driven by. It ends when the engine shuts down, or
/// after telling the peer why when the peer broke the protocol.
pub struct Pump<T: FrameIo> {
    io: T,
    link: Link,
    guard: Guard,
    state: State,
    peer_closed: bool,
    /// Bytes queued since the last flush.
    unflushed: usize,
    /// Whether the previous poll queued frames (the engine is in a burst).
    bursting: bool,
    violation: Rc<Cell<Option<Code>>>,
}

impl<T: FrameIo> Pump<T> {
    /// A pump over `io` feeding `link`.
    pub fn new(io: T, link: Link, guard: Guard) -> Self {
        Pump {
            io,
            link,
            guard,
            state: State::Running,
            peer_closed: false,
            unflushed: 0,
            bursting: false,
            violation: Rc::default(),
        }
    }

    /// Set to the error's code when the session ends because the peer broke the
    /// protocol or a hard limit (not when it merely disconnects).
    pub fn violation(&self) -> Rc<Cell<Option<Code>>> {
        self.violation.clone()
    }

    fn fail(&mut self, e: RpcError) {
        self.violation.set(Some(e.code));
        self.io.queue(abort_message(&e));
        let err: capnp::Error = e.into();
        self.link.end_inbound(Err(err.clone()));
        self.state = State::Closing(Err(err));
    }
}

impl<T: FrameIo> Future for Pump<T> {
    type Output = Result<(), capnp::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match std::mem::replace(&mut this.state, State::Running) {
                State::Done => return Poll::Ready(Ok(())),
                State::Closing(result) => {
                    // Send what is left, then close; a broken socket ends it early.
                    while let Poll::Ready(m) = this.link.poll_outgoing(cx) {
                        this.io.queue(framing::encode(&m));
                    }
                    return match this.io.poll_flush(cx).map(|r| r.and(Ok(()))) {
                        Poll::Pending => {
                            this.state = State::Closing(result);
                            Poll::Pending
                        }
                        Poll::Ready(_) => match this.io.poll_close(cx) {
                            Poll::Pending => {
                                this.state = State::Closing(result);
                                Poll::Pending
                            }
                            Poll::Ready(_) => {
                                this.state = State::Done;
                                Poll::Ready(result)
                            }
                        },
                    };
                }
                State::Running => {}
            }
            // Outgoing: everything the engine queued, then one flush. The engine answers
            // a burst of calls from many small tasks over several rounds of the
            // executor; while it is in a burst (messages still waiting in the inbox, or
            // the previous round queued replies too) the flush waits for a round that
            // adds nothing (or for FLUSH_BYTES), so the burst shares one write. A lone
            // reply is written at once.
            let mut queued = false;
            while let Poll::Ready(m) = this.link.poll_outgoing(cx) {
                this.guard.outbound(&m);
                let frame = framing::encode(&m);
                this.unflushed += frame.len();
                this.io.queue(frame);
                queued = true;
            }
            let burst = queued && (this.bursting || this.link.with(|q| !q.inbox.is_empty()));
            this.bursting = queued;
            if burst && this.unflushed < FLUSH_BYTES {
                cx.waker().wake_by_ref();
            } else if let Poll::Ready(Err(e)) = {
                this.unflushed = 0;
                this.io.poll_flush(cx)
            } {
                this.link.end_inbound(Err(e.clone().into()));
                this.state = State::Closing(Err(e.into()));
                continue;
            }
            if this.link.with(|q| q.shutdown) {
                this.state = State::Closing(Ok(()));
                continue;
            }
            if this.peer_closed {
                // Wait for the engine to notice and shut down.
                return match this.link.poll_shutdown(cx) {
                    Poll::Ready(()) => {
                        this.state = State::Closing(Ok(()));
                        continue;
                    }
                    Poll::Pending => Poll::Pending,
                };
            }
            // Incoming, up to a budget.
            let mut replied = false;
            let mut budget = RECV_BUDGET;
            loop {
                if budget == 0 {
                    cx.waker().wake_by_ref();
                    break;
                }
                budget -= 1;
                match this.io.poll_recv(cx) {
                    Poll::Pending => break,
                    Poll::Ready(None) => {
                        this.peer_closed = true;
                        this.link.end_inbound(Ok(()));
                        break;
                    }
                    Poll::Ready(Some(Err(e))) => {
                        this.fail(e);
                        break;
                    }
                    Poll::Ready(Some(Ok(frame))) => match this.guard.inbound(&frame) {
                        Inbound::Deliver(m) => this.link.deliver(m),
                        Inbound::Reply(bytes) => {
                            this.unflushed += bytes.len();
                            this.io.queue(bytes);
                            replied = true;
                        }
                        Inbound::Drop => {}
                        Inbound::Fatal(e) => {
                            this.fail(e);
                            break;
                        }
                    },
                }
            }
            if replied || this.peer_closed || !matches!(this.state, State::Running) {
                continue;
            }
            return Poll::Pending;
        }
    }
}
