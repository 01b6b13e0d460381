//! The pump: moves framed Cap'n Proto messages between a socket that carries whole
//! frames ([`FrameIo`]) and a connection's [`Link`], under a [`Guard`]. It does no I/O of
//! its own: the transports (crate `rpc-transport`: WebSocket, TCP) implement
//! [`FrameIo`] over a real socket, and tests implement it over queues.

use crate::error::{Code, RpcError};
use crate::framing;
use crate::guard::{abort_message, engine_abort, Guard, Inbound};
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

/// The wire frame of a message from the engine. The engine's own `Abort` (it ends a
/// session whose peer broke the protocol, and echoes a peer's abort) goes out with a
/// `[CODE]` and a reason cut to [`crate::guard::MAX_ABORT_REASON`] bytes.
fn outgoing_frame(m: &capnp::message::Builder<capnp::message::HeapAllocator>) -> Vec<u8> {
    match engine_abort(m) {
        Some(e) => abort_message(&e),
        None => framing::encode(m),
    }
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
    /// Bytes queued since the last flush was attempted (decides when a burst flushes).
    unflushed: usize,
    /// Bytes queued since the last flush that completed: queued, not yet written. Above
    /// `Limits::max_unsent_bytes` the pump reads no more calls until they are written.
    unsent: usize,
    max_unsent: usize,
    /// Whether the previous poll queued frames (the engine is in a burst).
    bursting: bool,
    violation: Rc<Cell<Option<Code>>>,
}

impl<T: FrameIo> Pump<T> {
    /// A pump over `io` feeding `link`.
    pub fn new(io: T, link: Link, guard: Guard) -> Self {
        Pump {
            max_unsent: guard.limits().max_unsent_bytes,
            io,
            link,
            guard,
            state: State::Running,
            peer_closed: false,
            unflushed: 0,
            unsent: 0,
            bursting: false,
            violation: Rc::default(),
        }
    }

    /// Set to the error's code when the session ends because the peer broke the
    /// protocol or a hard limit (not when it merely disconnects).
    pub fn violation(&self) -> Rc<Cell<Option<Code>>> {
        self.violation.clone()
    }

    fn queue(&mut self, frame: Vec<u8>) {
        self.unflushed += frame.len();
        self.unsent += frame.len();
        self.io.queue(frame);
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
                        this.io.queue(outgoing_frame(&m));
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
            // reply is written at once. A call's in-flight slot is freed when its answer
            // has been written, not when it is queued.
            let mut queued = false;
            while let Poll::Ready(m) = this.link.poll_outgoing(cx) {
                this.guard.outbound(&m);
                let frame = outgoing_frame(&m);
                this.queue(frame);
                queued = true;
            }
            let burst = queued && (this.bursting || this.link.with(|q| !q.inbox.is_empty()));
            this.bursting = queued;
            if burst && this.unflushed < FLUSH_BYTES {
                cx.waker().wake_by_ref();
            } else {
                this.unflushed = 0;
                match this.io.poll_flush(cx) {
                    Poll::Ready(Ok(())) => {
                        this.unsent = 0;
                        this.guard.written();
                    }
                    Poll::Ready(Err(e)) => {
                        this.link.end_inbound(Err(e.clone().into()));
                        this.state = State::Closing(Err(e.into()));
                        continue;
                    }
                    Poll::Pending => {}
                }
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
            // Backpressure: while too much is queued and unwritten (the peer is not
            // reading), read no more calls; the pending flush wakes the pump once the
            // socket takes more.
            if this.unsent > this.max_unsent {
                return Poll::Pending;
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
                            this.queue(bytes);
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

#[cfg(test)]
mod tests {
    //! The pump's flush and close logic, polled by hand over a [`FrameIo`] of in-memory
    //! queues: the test plays the engine by filling the link's outbox.
    use super::*;
    use crate::guard::test_messages::{call, finish};
    use crate::limits::Limits;
    use capnp::message::{Builder, HeapAllocator};
    use capnp_rpc::rpc_capnp::message;
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    /// What the pump did to the socket.
    #[derive(Default)]
    struct Wire {
        /// Frames the peer will send; `None` is a clean close.
        incoming: VecDeque<Option<Result<bytes::Bytes, RpcError>>>,
        /// Frames queued since the last flush.
        queued: Vec<Vec<u8>>,
        /// Each flush that wrote something: the frames it wrote.
        flushes: Vec<Vec<Vec<u8>>>,
        closed: bool,
        /// The peer reads nothing: flushes stay pending.
        stuck: bool,
    }

    #[derive(Clone, Default)]
    struct QueueIo(Rc<RefCell<Wire>>);

    impl FrameIo for QueueIo {
        fn poll_recv(&mut self, _: &mut Context<'_>) -> Poll<Option<Result<bytes::Bytes, RpcError>>> {
            match self.0.borrow_mut().incoming.pop_front() {
                Some(next) => Poll::Ready(next),
                None => Poll::Pending,
            }
        }

        fn queue(&mut self, frame: Vec<u8>) {
            self.0.borrow_mut().queued.push(frame);
        }

        fn poll_flush(&mut self, _: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
            let mut w = self.0.borrow_mut();
            if w.stuck {
                return Poll::Pending;
            }
            if !w.queued.is_empty() {
                let frames = std::mem::take(&mut w.queued);
                w.flushes.push(frames);
            }
            Poll::Ready(Ok(()))
        }

        fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
            let _ = self.poll_flush(cx);
            self.0.borrow_mut().closed = true;
            Poll::Ready(Ok(()))
        }
    }

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    struct Harness {
        pump: Pump<QueueIo>,
        wire: QueueIo,
        link: Link,
        wakes: Arc<Count>,
    }

    impl Harness {
        fn new() -> Self {
            Self::with_limits(Limits::default())
        }

        fn with_limits(limits: Limits) -> Self {
            let (wire, link) = (QueueIo::default(), Link::new());
            let pump = Pump::new(wire.clone(), link.clone(), Guard::new(limits));
            Harness { pump, wire, link, wakes: Arc::default() }
        }

        /// The peer sends these frames.
        fn peer_sends(&self, frames: impl IntoIterator<Item = Vec<u8>>) {
            let mut w = self.wire.0.borrow_mut();
            w.incoming.extend(frames.into_iter().map(|f| Some(Ok(bytes::Bytes::from(f)))));
        }

        /// The engine answers question `id`.
        fn engine_returns(&self, id: u32) {
            let mut b = Builder::new(HeapAllocator::new());
            b.init_root::<message::Builder>().init_return().set_answer_id(id);
            self.link.with(|q| q.outbox.push_back(Rc::new(b)));
        }

        /// The answer ids of the `Return`s written so far, and their exception codes.
        fn written_returns(&self) -> Vec<(u32, Option<Code>)> {
            let w = self.wire.0.borrow();
            w.flushes
                .iter()
                .flatten()
                .filter_map(|f| {
                    let m = framing::decode(f, Default::default()).ok()?;
                    let root: message::Reader = m.get_root().ok()?;
                    let Ok(message::Return(Ok(r))) = root.which() else { return None };
                    let code = match r.which() {
                        Ok(capnp_rpc::rpc_capnp::return_::Exception(Ok(ex))) => {
                            RpcError::from_tagged(ex.get_reason().ok()?.to_str().ok()?).map(|e| e.code)
                        }
                        _ => None,
                    };
                    Some((r.get_answer_id(), code))
                })
                .collect()
        }

        fn poll(&mut self) -> Poll<Result<(), capnp::Error>> {
            let waker = Waker::from(self.wakes.clone());
            Pin::new(&mut self.pump).poll(&mut Context::from_waker(&waker))
        }

        /// The engine queues a message of about `bytes` bytes.
        fn engine_sends(&self, bytes: usize) {
            let mut b = Builder::new(HeapAllocator::new());
            b.set_root(&*"x".repeat(bytes)).expect("set text");
            self.link.with(|q| q.outbox.push_back(Rc::new(b)));
        }

        /// The engine has a message waiting in its inbox (it is mid-burst).
        fn engine_busy(&self) {
            let mut b = Builder::new_default();
            b.set_root("waiting").expect("set text");
            let m = framing::decode(&framing::encode(&b), Default::default()).expect("decode");
            self.link.deliver(m);
        }

        fn flush_sizes(&self) -> Vec<usize> {
            self.wire.0.borrow().flushes.iter().map(Vec::len).collect()
        }
    }

    #[test]
    fn a_lone_reply_is_flushed_at_once() {
        let mut h = Harness::new();
        h.engine_sends(10);
        assert!(h.poll().is_pending());
        assert_eq!(h.flush_sizes(), vec![1], "written in the same poll");
        assert_eq!(h.wakes.0.load(Ordering::Relaxed), 0, "no extra round for a lone reply");
    }

    #[test]
    fn a_burst_of_replies_shares_one_flush() {
        let mut h = Harness::new();
        h.engine_busy();
        h.engine_sends(10);
        assert!(h.poll().is_pending());
        assert_eq!(h.flush_sizes(), Vec::<usize>::new(), "the engine has more to do: wait");
        assert_eq!(h.wakes.0.load(Ordering::Relaxed), 1, "the pump asks to be polled again");
        h.link.with(|q| q.inbox.clear());
        h.engine_sends(10);
        h.engine_sends(10);
        assert!(h.poll().is_pending());
        assert_eq!(h.flush_sizes(), Vec::<usize>::new(), "the previous round queued replies: still a burst");
        assert!(h.poll().is_pending());
        assert_eq!(h.flush_sizes(), vec![3], "a round that adds nothing flushes the whole burst");
    }

    #[test]
    fn flush_bytes_forces_a_flush_mid_burst() {
        let mut h = Harness::new();
        h.engine_busy();
        h.engine_sends(FLUSH_BYTES / 2 + 100);
        assert!(h.poll().is_pending());
        assert_eq!(h.flush_sizes(), Vec::<usize>::new());
        h.engine_sends(FLUSH_BYTES / 2 + 100);
        assert!(h.poll().is_pending());
        assert_eq!(h.flush_sizes(), vec![2], "over FLUSH_BYTES: written although the burst goes on");
        h.engine_sends(10);
        assert!(h.poll().is_pending());
        assert_eq!(h.flush_sizes(), vec![2], "the count starts again after a flush");
    }

    #[test]
    fn a_peer_that_does_not_read_is_not_read_from_above_the_high_water_mark() {
        let mut h = Harness::with_limits(Limits { max_unsent_bytes: 1000, ..Limits::default() });
        h.wire.0.borrow_mut().stuck = true;
        h.engine_sends(2000);
        h.peer_sends((0..3).map(finish));
        assert!(h.poll().is_pending());
        assert_eq!(h.wire.0.borrow().incoming.len(), 3, "over the mark: nothing more is read");
        assert_eq!(h.link.with(|q| q.inbox.len()), 0);
        h.wire.0.borrow_mut().stuck = false;
        assert!(h.poll().is_pending());
        assert_eq!(h.flush_sizes(), vec![1], "the socket took the answer");
        assert_eq!(h.wire.0.borrow().incoming.len(), 0, "then reading goes on");
        assert_eq!(h.link.with(|q| q.inbox.len()), 3);
    }

    #[test]
    fn a_calls_slot_is_freed_when_its_answer_is_written_not_when_it_is_queued() {
        let mut h = Harness::with_limits(Limits { max_calls_in_flight: 1, ..Limits::default() });
        h.peer_sends([call(0, None, 0)]);
        assert!(h.poll().is_pending());
        assert_eq!(h.link.with(|q| q.inbox.len()), 1, "the call reaches the engine");
        h.wire.0.borrow_mut().stuck = true;
        h.engine_returns(0);
        h.peer_sends([call(1, None, 0)]);
        assert!(h.poll().is_pending());
        assert_eq!(h.link.with(|q| q.inbox.len()), 1, "the answer is queued, not written: call 1 has no slot");
        h.wire.0.borrow_mut().stuck = false;
        assert!(h.poll().is_pending());
        assert_eq!(h.written_returns(), vec![(0, None), (1, Some(Code::Overloaded))]);
        h.peer_sends([call(2, None, 0)]);
        assert!(h.poll().is_pending());
        assert_eq!(h.link.with(|q| q.inbox.len()), 2, "once written, the slot takes call 2");
    }

    #[test]
    fn a_guard_violation_queues_an_abort_and_closes() {
        let mut h = Harness::new();
        h.wire.0.borrow_mut().incoming.push_back(Some(Ok(bytes::Bytes::from_static(&[0xff; 8]))));
        let result = h.poll();
        let code = match result {
            Poll::Ready(Err(e)) => RpcError::from(e).code,
            other => panic!("the pump should end with an error, got {other:?}"),
        };
        assert_eq!(code, Code::InvalidArgument);
        assert_eq!(h.pump.violation().get(), Some(Code::InvalidArgument));
        let wire = h.wire.0.borrow();
        assert!(wire.closed, "the socket is closed");
        let frames: Vec<&Vec<u8>> = wire.flushes.iter().flatten().collect();
        assert_eq!(frames.len(), 1, "one frame: the abort");
        let abort = framing::decode(frames[0], Default::default()).expect("a framed message");
        let root: message::Reader = abort.get_root().expect("an rpc message");
        match root.which() {
            Ok(message::Abort(Ok(ex))) => {
                let reason = ex.get_reason().expect("reason").to_str().expect("utf-8");
                assert_eq!(RpcError::from_tagged(reason).map(|e| e.code), Some(Code::InvalidArgument), "{reason}");
            }
            _ => panic!("the last frame is not an Abort"),
        }
        assert!(matches!(h.link.with(|q| q.inbound_end.clone()), Some(Err(_))), "the engine is told the session broke");
        drop(wire);
        assert!(matches!(h.poll(), Poll::Ready(Ok(()))), "a finished pump stays finished");
    }

    #[test]
    fn peer_close_ends_the_pump_once_the_engine_shuts_down() {
        let mut h = Harness::new();
        h.wire.0.borrow_mut().incoming.push_back(None);
        assert!(h.poll().is_pending(), "waits for the engine to notice");
        assert!(matches!(h.link.with(|q| q.inbound_end.clone()), Some(Ok(()))), "the engine is told: a clean end");
        assert!(!h.wire.0.borrow().closed);
        // The engine shuts down after a last message.
        h.engine_sends(10);
        h.link.with(|q| q.shutdown = true);
        assert!(matches!(h.poll(), Poll::Ready(Ok(()))));
        assert_eq!(h.pump.violation().get(), None, "a clean close is no violation");
        let wire = h.wire.0.borrow();
        assert!(wire.closed);
        assert_eq!(wire.flushes.iter().map(Vec::len).sum::<usize>(), 1, "the last message went out first");
    }
}
