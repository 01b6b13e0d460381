//! The stack against a real capnp server: layer order, deadline, metrics, error tags
//! and capability identity. Calls go through `ClientHook::call`, as network calls do
//! (a future client forwards to it).

use super::*;
use crate::metrics::Metrics;
use crate::{Code, RpcError};
use capnp::capability::Rc as CapRc;
use schema::demo_capnp::directory;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

/// echo, a `next` that fails with NOT_FOUND past 10 or untagged at 99, and sleep.
struct Dir;

impl directory::Server for Dir {
    async fn echo(self: CapRc<Self>, p: directory::EchoParams, mut r: directory::EchoResults) -> capnp::Result<()> {
        r.get().set_x(p.get()?.get_x());
        Ok(())
    }

    async fn next(self: CapRc<Self>, p: directory::NextParams, mut r: directory::NextResults) -> capnp::Result<()> {
        match p.get()?.get_n() {
            99 => Err(capnp::Error::failed("boom".into())),
            n if n > 10 => Err(RpcError::new(Code::NotFound, "too far").into()),
            n => {
                r.get().set_n(n + 1);
                Ok(())
            }
        }
    }

    async fn sleep(self: CapRc<Self>, p: directory::SleepParams, _: directory::SleepResults) -> capnp::Result<()> {
        tokio::time::sleep(Duration::from_millis(u64::from(p.get()?.get_millis()))).await;
        Ok(())
    }
}

/// The client as a peer sees it: calls reach the layered hook's `call`.
fn remote<C: FromClientHook + 'static>(c: C) -> C {
    capnp_rpc::new_future_client(futures::future::ready(Ok(c)))
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime");
    tokio::task::LocalSet::new().block_on(&rt, f)
}

/// Records the layer's name and the method of every call it sees.
struct Record(&'static str, Rc<RefCell<Vec<String>>>);

struct Recorded(&'static str, Rc<RefCell<Vec<String>>>, Rc<dyn Service>);

impl Layer for Record {
    fn layer(&self, inner: Rc<dyn Service>, _: &Stack) -> Rc<dyn Service> {
        Rc::new(Recorded(self.0, self.1.clone(), inner))
    }
}

impl Service for Recorded {
    fn call(&self, call: Call) -> Promise<(), capnp::Error> {
        self.1.borrow_mut().push(format!("{} {}", self.0, call.method_name()));
        self.2.call(call)
    }

    fn inner(&self) -> Option<&dyn Service> {
        Some(&*self.2)
    }
}

async fn echo(d: &directory::Client, x: u64) -> Result<u64, RpcError> {
    let mut req = d.echo_request();
    req.get().set_x(x);
    Ok(req.send().promise.await?.get()?.get_x())
}

async fn next(d: &directory::Client, n: i64) -> Result<i64, capnp::Error> {
    let mut req = d.next_request();
    req.get().set_n(n);
    Ok(req.send().promise.await?.get()?.get_n())
}

#[test]
fn layers_run_in_the_order_they_were_added() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let stack = Stack::new().layer(Record("outer", seen.clone())).layer(Record("inner", seen.clone()));
    let d: directory::Client = remote(stack.server(Dir));
    assert_eq!(run(echo(&d, 7)), Ok(7));
    assert_eq!(*seen.borrow(), ["outer directory.echo", "inner directory.echo"]);
}

#[test]
fn calls_made_in_process_skip_the_layers() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let d: directory::Client = Stack::new().layer(Record("outer", seen.clone())).server(Dir);
    assert_eq!(run(echo(&d, 3)), Ok(3));
    assert!(seen.borrow().is_empty());
}

#[test]
fn a_call_past_its_deadline_is_answered_with_timeout() {
    let d: directory::Client = remote(Stack::new().layer(Deadline::new(Duration::from_millis(20))).server(Dir));
    let e = run(async {
        let mut req = d.sleep_request();
        req.get().set_millis(10_000);
        req.send().promise.await.map(|_| ())
    })
    .expect_err("the deadline passes first");
    let e = RpcError::from(e);
    assert_eq!(e.code, Code::Timeout);
    assert!(e.message.contains("directory.sleep"), "{}", e.message);
    // A quick call is untouched.
    assert_eq!(run(echo(&d, 1)), Ok(1));
}

#[test]
fn every_call_is_recorded_with_its_outcome() {
    let metrics = Arc::new(Metrics::default());
    let d: directory::Client = remote(Stack::new().layer(ObserveCalls::new(metrics.clone())).server(Dir));
    run(async {
        assert_eq!(echo(&d, 1).await, Ok(1));
        assert_eq!(echo(&d, 2).await, Ok(2));
        assert_eq!(RpcError::from(next(&d, 11).await.expect_err("past 10")).code, Code::NotFound);
    });
    assert_eq!(metrics.calls("directory.echo", "OK"), 2);
    assert_eq!(metrics.calls("directory.next", "NOT_FOUND"), 1);
    assert_eq!(metrics.calls("directory.next", "OK"), 0);
}

#[test]
fn errors_leaving_the_stack_carry_a_code() {
    let d: directory::Client = remote(Stack::new().layer(TagErrors).server(Dir));
    let e = run(next(&d, 99)).expect_err("the server fails");
    assert!(e.extra.starts_with("[INTERNAL]"), "{}", e.extra);
    let untagged: directory::Client = remote(capnp_rpc::new_client(Dir));
    let e = run(next(&untagged, 99)).expect_err("the server fails");
    assert!(!e.extra.contains("[INTERNAL]"), "{}", e.extra);
}

#[test]
fn every_reference_shares_one_identity() {
    let stack = Stack::new().layer(TagErrors);
    let a: directory::Client = stack.server(Dir);
    let b = a.clone();
    assert_eq!(a.client.hook.get_ptr(), b.client.hook.get_ptr());
    let other: directory::Client = stack.server(Dir);
    assert_ne!(a.client.hook.get_ptr(), other.client.hook.get_ptr());
}

#[test]
fn trace_ids_are_unique_per_call() {
    let t = Trace::new("s1");
    let shared = t.clone();
    assert_eq!(t.next_id(), "s1-0");
    assert_eq!(shared.next_id(), "s1-1");
    assert_eq!(t.next_id(), "s1-2");
}

#[test]
fn methods_are_named_from_the_schema() {
    use capnp::traits::HasTypeId;
    assert_eq!(method_name(directory::Client::TYPE_ID, 1), "directory.echo");
    assert_eq!(method_name(1, 2), "0x1@2");
}
