//! A [`capnp_rpc::VatNetwork`] over two in-memory queues, so any transport can carry
//! the RPC engine: the engine pushes outgoing messages into the outbox and pulls
//! incoming ones from the inbox; a transport's pump moves them to and from the wire.
//!
//! The pump is the network's driver (`drive_until_shutdown`), so one
//! `capnp_rpc::RpcSystem` future runs both the engine and its transport.

use capnp::capability::Promise;
use capnp::message::{Builder, HeapAllocator, Reader};
use capnp::serialize::OwnedSegments;
use capnp_rpc::rpc_twoparty_capnp::Side;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// The state a transport pump and the RPC engine share.
#[derive(Default)]
pub struct Queues {
    /// Messages the engine wants sent, oldest first.
    pub outbox: VecDeque<Rc<Builder<HeapAllocator>>>,
    out_waker: Option<Waker>,
    /// Messages received and not yet taken by the engine.
    pub inbox: VecDeque<Reader<OwnedSegments>>,
    in_waker: Option<Waker>,
    /// Set when no more messages will arrive: `Ok` for a clean end.
    pub inbound_end: Option<Result<(), capnp::Error>>,
    /// Set when the engine has shut the connection down.
    pub shutdown: bool,
    shutdown_waker: Option<Waker>,
}

/// A shared handle on a connection's [`Queues`].
#[derive(Clone, Default)]
pub struct Link(Rc<RefCell<Queues>>);

impl Link {
    /// A new pair of empty queues.
    pub fn new() -> Self {
        Link::default()
    }

    /// Runs `f` on the queues.
    pub fn with<R>(&self, f: impl FnOnce(&mut Queues) -> R) -> R {
        f(&mut self.0.borrow_mut())
    }

    /// Hands a received message to the engine.
    pub fn deliver(&self, msg: Reader<OwnedSegments>) {
        let mut q = self.0.borrow_mut();
        q.inbox.push_back(msg);
        if let Some(w) = q.in_waker.take() {
            w.wake();
        }
    }

    /// Says that no more messages will arrive.
    pub fn end_inbound(&self, result: Result<(), capnp::Error>) {
        let mut q = self.0.borrow_mut();
        if q.inbound_end.is_none() {
            q.inbound_end = Some(result);
        }
        if let Some(w) = q.in_waker.take() {
            w.wake();
        }
    }

    /// Takes the next outgoing message, registering `cx` to be woken when one comes.
    pub fn poll_outgoing(&self, cx: &mut Context<'_>) -> Poll<Rc<Builder<HeapAllocator>>> {
        let mut q = self.0.borrow_mut();
        match q.outbox.pop_front() {
            Some(m) => Poll::Ready(m),
            None => {
                if !q.out_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    q.out_waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    /// Ready once the engine has shut the connection down.
    pub fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut q = self.0.borrow_mut();
        if q.shutdown {
            Poll::Ready(())
        } else {
            q.shutdown_waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    fn push_outgoing(&self, m: Rc<Builder<HeapAllocator>>) {
        let mut q = self.0.borrow_mut();
        if q.shutdown {
            return;
        }
        q.outbox.push_back(m);
        if let Some(w) = q.out_waker.take() {
            w.wake();
        }
    }

    fn poll_incoming(&self, cx: &mut Context<'_>) -> Poll<Result<Option<Reader<OwnedSegments>>, capnp::Error>> {
        let mut q = self.0.borrow_mut();
        if let Some(m) = q.inbox.pop_front() {
            return Poll::Ready(Ok(Some(m)));
        }
        match &q.inbound_end {
            Some(Ok(())) => Poll::Ready(Ok(None)),
            Some(Err(e)) => Poll::Ready(Err(e.clone())),
            None => {
                q.in_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn shut_down(&self) {
        let mut q = self.0.borrow_mut();
        q.shutdown = true;
        for w in [q.shutdown_waker.take(), q.out_waker.take(), q.in_waker.take()].into_iter().flatten() {
            w.wake();
        }
    }
}

struct Outgoing {
    message: Builder<HeapAllocator>,
    link: Link,
}

impl capnp_rpc::OutgoingMessage for Outgoing {
    fn get_body(&mut self) -> capnp::Result<capnp::any_pointer::Builder<'_>> {
        self.message.get_root()
    }

    fn get_body_as_reader(&self) -> capnp::Result<capnp::any_pointer::Reader<'_>> {
        self.message.get_root_as_reader()
    }

    fn send(self: Box<Self>) -> (Promise<(), capnp::Error>, Rc<Builder<HeapAllocator>>) {
        let m = Rc::new(self.message);
        self.link.push_outgoing(m.clone());
        (Promise::ok(()), m)
    }

    fn take(self: Box<Self>) -> Builder<HeapAllocator> {
        self.message
    }

    fn size_in_words(&self) -> usize {
        self.message.size_in_words()
    }
}

struct Incoming(Reader<OwnedSegments>);

impl capnp_rpc::IncomingMessage for Incoming {
    fn get_body(&self) -> capnp::Result<capnp::any_pointer::Reader<'_>> {
        self.0.get_root()
    }
}

struct Connection {
    link: Link,
    peer: Side,
}

impl capnp_rpc::Connection<Side> for Connection {
    fn get_peer_vat_id(&self) -> Side {
        self.peer
    }

    fn new_outgoing_message(&mut self, first_segment_word_size: u32) -> Box<dyn capnp_rpc::OutgoingMessage> {
        let words = first_segment_word_size.max(64);
        Box::new(Outgoing {
            message: Builder::new(HeapAllocator::new().first_segment_words(words)),
            link: self.link.clone(),
        })
    }

    fn receive_incoming_message(&mut self) -> Promise<Option<Box<dyn capnp_rpc::IncomingMessage>>, capnp::Error> {
        let link = self.link.clone();
        Promise::from_future(futures::future::poll_fn(move |cx| {
            link.poll_incoming(cx).map_ok(|m| m.map(|m| Box::new(Incoming(m)) as Box<dyn capnp_rpc::IncomingMessage>))
        }))
    }

    fn shutdown(&mut self, _result: capnp::Result<()>) -> Promise<(), capnp::Error> {
        self.link.shut_down();
        Promise::ok(())
    }
}

/// A two-party vat network whose connection is a [`Link`] driven by `driver`.
pub struct QueueVat {
    side: Side,
    link: Link,
    accepted: bool,
    driver: Option<Promise<(), capnp::Error>>,
}

impl QueueVat {
    /// A network for `side` of a connection whose transport pump is `driver`.
    pub fn new(side: Side, link: Link, driver: Promise<(), capnp::Error>) -> Self {
        QueueVat { side, link, accepted: false, driver: Some(driver) }
    }

    fn connection(&self) -> Box<dyn capnp_rpc::Connection<Side>> {
        let peer = match self.side {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        };
        Box::new(Connection { link: self.link.clone(), peer })
    }
}

impl capnp_rpc::VatNetwork<Side> for QueueVat {
    fn connect(&mut self, host_id: Side) -> Option<Box<dyn capnp_rpc::Connection<Side>>> {
        (host_id != self.side).then(|| self.connection())
    }

    fn accept(&mut self) -> Promise<Box<dyn capnp_rpc::Connection<Side>>, capnp::Error> {
        if self.side == Side::Server && !self.accepted {
            self.accepted = true;
            Promise::ok(self.connection())
        } else {
            Promise::from_future(futures::future::pending())
        }
    }

    fn drive_until_shutdown(&mut self) -> Promise<(), capnp::Error> {
        self.driver.take().unwrap_or_else(|| Promise::from_future(futures::future::pending()))
    }
}

/// Builds the RPC engine for one connection: `bootstrap` is what this side offers
/// (servers), `driver` the transport pump moving `link`'s messages.
pub fn rpc_system(
    side: Side,
    link: Link,
    driver: Promise<(), capnp::Error>,
    bootstrap: Option<capnp::capability::Client>,
) -> capnp_rpc::RpcSystem<Side> {
    capnp_rpc::RpcSystem::new(Box::new(QueueVat::new(side, link, driver)), bootstrap)
}
