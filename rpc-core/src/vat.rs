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

/// The smallest and largest first segment of an outgoing message, in words.
const FIRST_SEGMENT_WORDS: (u32, u32) = (32, 128);

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
        // The engine's hints are guesses (every call asks for 1,024 words, 8 KiB zeroed
        // per call); most messages fit in 1 KiB, and a larger one grows a second segment.
        let words = first_segment_word_size.clamp(FIRST_SEGMENT_WORDS.0, FIRST_SEGMENT_WORDS.1);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing;
    use schema::demo_capnp::directory;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn text_message(t: &str) -> Reader<OwnedSegments> {
        let mut b = Builder::new_default();
        b.set_root(t).expect("set text");
        framing::decode(&framing::encode(&b), Default::default()).expect("decode")
    }

    fn text_of(m: &Reader<OwnedSegments>) -> String {
        m.get_root::<capnp::text::Reader>().expect("text").to_string().expect("utf-8")
    }

    fn cx_of(w: &Arc<Count>) -> Waker {
        Waker::from(w.clone())
    }

    #[test]
    fn the_inbox_is_fifo_and_wakes_the_engine() {
        let link = Link::new();
        let wakes = Arc::new(Count::default());
        let waker = cx_of(&wakes);
        let mut cx = Context::from_waker(&waker);
        assert!(link.poll_incoming(&mut cx).is_pending(), "nothing yet");
        link.deliver(text_message("one"));
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1, "a delivery wakes the waiting engine");
        link.deliver(text_message("two"));
        for want in ["one", "two"] {
            match link.poll_incoming(&mut cx) {
                Poll::Ready(Ok(Some(m))) => assert_eq!(text_of(&m), want),
                _ => panic!("expected {want}"),
            }
        }
        assert!(link.poll_incoming(&mut cx).is_pending());
    }

    #[test]
    fn the_end_of_inbound_comes_after_the_queued_messages_and_the_first_end_wins() {
        let link = Link::new();
        let waker = cx_of(&Arc::default());
        let mut cx = Context::from_waker(&waker);
        link.deliver(text_message("last"));
        link.end_inbound(Err(capnp::Error::failed("broken".into())));
        link.end_inbound(Ok(()));
        assert!(matches!(link.poll_incoming(&mut cx), Poll::Ready(Ok(Some(_)))), "queued messages first");
        match link.poll_incoming(&mut cx) {
            Poll::Ready(Err(e)) => assert!(e.extra.contains("broken"), "{e}"),
            _ => panic!("the first end (an error) is what the engine sees"),
        }
        let clean = Link::new();
        clean.end_inbound(Ok(()));
        assert!(matches!(clean.poll_incoming(&mut cx), Poll::Ready(Ok(None))), "a clean end is end of stream");
    }

    #[test]
    fn the_outbox_wakes_the_pump_and_shutdown_stops_it() {
        let link = Link::new();
        let (out_wakes, shutdown_wakes) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let (out_waker, shutdown_waker) = (cx_of(&out_wakes), cx_of(&shutdown_wakes));
        let mut out_cx = Context::from_waker(&out_waker);
        assert!(link.poll_outgoing(&mut out_cx).is_pending());
        assert!(link.poll_shutdown(&mut Context::from_waker(&shutdown_waker)).is_pending());
        link.push_outgoing(Rc::new(Builder::new_default()));
        assert_eq!(out_wakes.0.load(Ordering::Relaxed), 1, "a queued message wakes the pump");
        assert!(link.poll_outgoing(&mut out_cx).is_ready());
        assert!(link.poll_outgoing(&mut out_cx).is_pending());
        link.shut_down();
        assert_eq!(shutdown_wakes.0.load(Ordering::Relaxed), 1, "shutdown wakes whoever waits for it");
        assert_eq!(out_wakes.0.load(Ordering::Relaxed), 2, "and the pump waiting for messages");
        assert!(link.poll_shutdown(&mut out_cx).is_ready());
        link.push_outgoing(Rc::new(Builder::new_default()));
        assert!(link.poll_outgoing(&mut out_cx).is_pending(), "nothing is queued after shutdown");
    }

    struct Echo;

    impl directory::Server for Echo {
        async fn echo(
            self: capnp::capability::Rc<Self>,
            p: directory::EchoParams,
            mut r: directory::EchoResults,
        ) -> capnp::Result<()> {
            r.get().set_x(p.get()?.get_x() + 1);
            Ok(())
        }
    }

    /// A transport that carries `from`'s outgoing messages to `to` (through the framing,
    /// as a socket would) and ends `to`'s inbound when `from` shuts down.
    fn wire(from: Link, to: Link) -> Promise<(), capnp::Error> {
        Promise::from_future(futures::future::poll_fn(move |cx| {
            while let Poll::Ready(m) = from.poll_outgoing(cx) {
                match framing::decode(&framing::encode(&m), Default::default()) {
                    Ok(m) => to.deliver(m),
                    Err(e) => return Poll::Ready(Err(e.into())),
                }
            }
            match from.poll_shutdown(cx) {
                Poll::Ready(()) => {
                    to.end_inbound(Ok(()));
                    Poll::Ready(Ok(()))
                }
                Poll::Pending => Poll::Pending,
            }
        }))
    }

    #[test]
    fn two_engines_talk_over_links_and_a_disconnect_ends_both() {
        let (client_link, server_link) = (Link::new(), Link::new());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        tokio::task::LocalSet::new().block_on(&rt, async {
            let echo: directory::Client = capnp_rpc::new_client(Echo);
            let server = rpc_system(
                Side::Server,
                server_link.clone(),
                wire(server_link.clone(), client_link.clone()),
                Some(echo.client),
            );
            let server = tokio::task::spawn_local(server);
            let mut client =
                rpc_system(Side::Client, client_link.clone(), wire(client_link.clone(), server_link.clone()), None);
            let dir: directory::Client = client.bootstrap(Side::Server);
            let disconnect = client.get_disconnector();
            let client = tokio::task::spawn_local(client);
            let mut req = dir.echo_request();
            req.get().set_x(41);
            let reply = req.send().promise.await.expect("the call is delivered and answered");
            assert_eq!(reply.get().expect("results").get_x(), 42);
            disconnect.await.expect("disconnect");
            let ends = async { (client.await, server.await) };
            let (c, s) = tokio::time::timeout(std::time::Duration::from_secs(5), ends)
                .await
                .expect("both engines end once the connection is gone");
            assert!(c.is_ok() && s.is_ok(), "neither engine task panicked");
        });
        assert!(client_link.with(|q| q.shutdown) && server_link.with(|q| q.shutdown), "both sides shut down");
        assert!(matches!(server_link.with(|q| q.inbound_end.clone()), Some(Ok(()))), "the server saw a clean end");
    }
}
