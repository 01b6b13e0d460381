//! The HTTP batch protocol (`serve_batch`) against a small real capnp server, with the
//! batch built and read back by a real client engine (no HTTP: the body goes straight
//! to `serve_batch`, as the server's POST handler does).

use capnp::capability::{Promise, Rc};
use capnp_rpc::rpc_capnp::message;
use capnp_rpc::rpc_twoparty_capnp::Side;
use rpc_core::batch::serve_batch;
use rpc_core::vat::{rpc_system, Link};
use rpc_core::{framing, Code, Limits, RpcError};
use schema::demo_capnp::{directory, file};
use std::cell::RefCell;
use std::time::{Duration, Instant};

/// A directory of files named by path; `read` returns the path.
struct Dir;

struct File(String);

fn text(r: capnp::Result<capnp::text::Reader<'_>>) -> capnp::Result<String> {
    r?.to_string().map_err(|e| RpcError::new(Code::InvalidArgument, e.to_string()).into())
}

impl directory::Server for Dir {
    async fn open(self: Rc<Self>, p: directory::OpenParams, mut r: directory::OpenResults) -> capnp::Result<()> {
        r.get().set_file(capnp_rpc::new_client(File(text(p.get()?.get_name())?)));
        Ok(())
    }
}

impl file::Server for File {
    async fn child(self: Rc<Self>, p: file::ChildParams, mut r: file::ChildResults) -> capnp::Result<()> {
        let name = format!("{}/{}", self.0, text(p.get()?.get_name())?);
        r.get().set_file(capnp_rpc::new_client(File(name)));
        Ok(())
    }

    async fn read(self: Rc<Self>, _: file::ReadParams, mut r: file::ReadResults) -> capnp::Result<()> {
        r.get().set_text(&self.0);
        Ok(())
    }
}

fn bootstrap() -> capnp::capability::Client {
    let d: directory::Client = capnp_rpc::new_client(Dir);
    d.client
}

/// What a test does with the client's directory; everything it queues before its first
/// await goes in one batch.
type Calls<T> = Box<dyn FnOnce(directory::Client) -> T>;

/// A boxed local future.
type Local<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T>>>;

/// Runs `calls` on a client engine whose transport posts one batch to `serve_batch`
/// under `limits`; returns what `calls` produced once the batch was answered, and how
/// many response bytes came back.
async fn batch<T: 'static>(limits: Limits, calls: Calls<Local<T>>) -> (T, Result<usize, RpcError>) {
    let link = Link::new();
    let served: std::rc::Rc<RefCell<Option<Result<usize, RpcError>>>> = Default::default();
    let driver = {
        let (link, served) = (link.clone(), served.clone());
        async move {
            // Everything the caller queues before the first await goes in one body.
            tokio::task::yield_now().await;
            let body: Vec<u8> = link.with(|q| q.outbox.drain(..).flat_map(|m| framing::encode(&m)).collect());
            let result = serve_batch(&body, bootstrap(), limits).await;
            *served.borrow_mut() = Some(result.as_ref().map(Vec::len).map_err(Clone::clone));
            match result.and_then(|bytes| {
                framing::split(&bytes)?
                    .into_iter()
                    .map(|f| framing::decode(f, limits.reader_options()))
                    .collect::<Result<Vec<_>, _>>()
            }) {
                Ok(messages) => {
                    for m in messages {
                        link.deliver(m);
                    }
                    link.end_inbound(Ok(()));
                }
                Err(e) => link.end_inbound(Err(e.into())),
            }
            futures::future::poll_fn(|cx| link.poll_shutdown(cx)).await;
            Ok(())
        }
    };
    let mut system = rpc_system(Side::Client, link, Promise::from_future(driver), None);
    let dir: directory::Client = system.bootstrap(Side::Server);
    let engine = tokio::task::spawn_local(system);
    let out = calls(dir).await;
    let _ = engine.await;
    let served = served.borrow_mut().take().expect("the batch was posted");
    (out, served)
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    tokio::task::LocalSet::new().block_on(&rt, f)
}

/// `open(name).child("b").read()`, pipelined.
fn chain(dir: directory::Client, name: &str) -> Local<Result<String, RpcError>> {
    let mut open = dir.open_request();
    open.get().set_name(name);
    let mut child = open.send().pipeline.get_file().child_request();
    child.get().set_name("b");
    let read = child.send().pipeline.get_file().read_request().send().promise;
    Box::pin(async move { Ok(text(read.await?.get()?.get_text())?) })
}

#[test]
fn a_pipelined_chain_is_answered_in_one_output() {
    let (answer, served) = run(batch(Limits::default(), Box::new(|dir| chain(dir, "a"))));
    assert_eq!(answer.expect("the chain is answered"), "a/b");
    assert!(served.expect("one response") > 0, "the replies came back in the one response body");
}

#[test]
fn several_chains_share_one_batch() {
    let (answers, _) = run(batch(
        Limits::default(),
        Box::new(|dir| {
            let (x, y) = (chain(dir.clone(), "x"), chain(dir, "y"));
            Box::pin(async move { (x.await, y.await) })
        }),
    ));
    assert_eq!(answers.0.expect("x"), "x/b");
    assert_eq!(answers.1.expect("y"), "y/b");
}

#[test]
fn batches_over_the_message_limit_are_refused_as_limit_exceeded() {
    // Bootstrap + three chained calls + finishes: well over two messages.
    let limits = Limits { max_batch_messages: 2, ..Limits::default() };
    let (answer, served) = run(batch(limits, Box::new(|dir| chain(dir, "a"))));
    assert_eq!(served.expect_err("refused").code, Code::LimitExceeded);
    assert_eq!(answer.expect_err("the calls fail").code, Code::LimitExceeded, "the caller sees why");
}

#[test]
fn batches_over_the_byte_limit_are_refused_as_limit_exceeded() {
    let limits = Limits { max_batch_bytes: 64, ..Limits::default() };
    let (_, served) = run(batch(limits, Box::new(|dir| chain(dir, "a"))));
    let e = served.expect_err("refused");
    assert_eq!(e.code, Code::LimitExceeded);
    assert!(e.message.contains("bytes"), "{}", e.message);
}

#[test]
fn a_malformed_body_is_invalid_argument() {
    let run_body = |body: Vec<u8>| run(async move { serve_batch(&body, bootstrap(), Limits::default()).await });
    // A segment table claiming 2^32 segments.
    assert_eq!(run_body(vec![0xff; 8]).expect_err("garbage").code, Code::InvalidArgument);
    // A valid message cut short.
    let mut b = capnp::message::Builder::new_default();
    b.set_root("hello").expect("set text");
    let whole = framing::encode(&b);
    assert_eq!(run_body(whole[..whole.len() - 3].to_vec()).expect_err("truncated").code, Code::InvalidArgument);
    // Framed, but not an RPC message.
    assert_eq!(run_body(whole).expect_err("not rpc").code, Code::InvalidArgument);
}

#[test]
fn an_empty_batch_has_an_empty_answer() {
    let out = run(async { serve_batch(&[], bootstrap(), Limits::default()).await }).expect("empty batch");
    assert!(out.is_empty());
}

/// A lone call to import 42, which the server never exported: the engine aborts the
/// session.
fn call_to_unknown_import() -> Vec<u8> {
    let mut b = capnp::message::Builder::new_default();
    {
        let mut c = b.init_root::<message::Builder>().init_call();
        c.set_question_id(0);
        c.set_interface_id(1);
        c.set_method_id(0);
        c.reborrow().init_target().set_imported_cap(42);
        c.init_params().init_content();
    }
    framing::encode(&b)
}

/// A batch whose engine aborts (a call to an import the server never exported) is
/// answered at once with the abort's typed error, not at the batch deadline (~31 s with
/// the default limits).
#[test]
fn a_batch_whose_engine_aborts_is_answered_at_once() {
    let started = Instant::now();
    let r = run(async { serve_batch(&call_to_unknown_import(), bootstrap(), Limits::default()).await });
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "answered at once, not at the deadline: {took:?}");
    let e = r.expect_err("the engine aborted");
    assert_eq!(e.code, Code::InvalidArgument, "{e:?}");
    assert!(e.message.contains("protocol error"), "{e:?}");
}
