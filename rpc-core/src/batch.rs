//! The HTTP batch transport, server side: one `POST /rpc` carries the messages of a
//! batch (bootstrap, calls, calls pipelined on those calls); the server runs them
//! against a fresh session and answers with every reply in one response.
//!
//! The session ends with the response: capabilities do not outlive the batch, and the
//! server cannot call back into the client (such calls fail with UNSUPPORTED; use the
//! WebSocket transport for callbacks). When the engine aborts the session (the batch
//! broke the protocol), the batch is answered at once with the abort's typed error.

use crate::error::{Code, RpcError};
use crate::framing;
use crate::guard::{engine_abort, return_exception, Guard, Inbound};
use crate::limits::Limits;
use crate::vat::{rpc_system, Link};
use capnp::capability::Promise;
use capnp_rpc::rpc_capnp::message;
use capnp_rpc::rpc_twoparty_capnp::Side;
use std::cell::RefCell;
use std::rc::Rc;
use std::task::Poll;

/// Runs one batch `body` against `bootstrap` and returns the response body: every
/// message the session sent, back to back. A malformed body or one over the batch
/// limits is refused as a whole; a batch the engine aborts gets the abort's error; one
/// still running after the call timeout plus a second is TIMEOUT.
#[cfg(feature = "timer")]
pub async fn serve_batch(
    body: &[u8],
    bootstrap: capnp::capability::Client,
    limits: Limits,
) -> Result<Vec<u8>, RpcError> {
    let deadline = limits.call_timeout + std::time::Duration::from_secs(1);
    serve_batch_until(body, bootstrap, limits, deadline, tokio::time::sleep(deadline)).await
}

/// [`serve_batch`] on a host with a timer of its own (a Worker's `setTimeout`): the
/// batch is TIMEOUT (after `deadline`, named in the message) when `timer` completes first.
pub async fn serve_batch_until(
    body: &[u8],
    bootstrap: capnp::capability::Client,
    limits: Limits,
    deadline: std::time::Duration,
    timer: impl std::future::Future<Output = ()>,
) -> Result<Vec<u8>, RpcError> {
    if body.len() > limits.max_batch_bytes {
        return Err(RpcError::new(
            Code::LimitExceeded,
            format!("batch of {} bytes exceeds the limit of {} bytes", body.len(), limits.max_batch_bytes),
        ));
    }
    let frames = framing::split(body)?;
    if frames.len() > limits.max_batch_messages {
        return Err(RpcError::new(
            Code::LimitExceeded,
            format!("batch of {} messages exceeds the limit of {}", frames.len(), limits.max_batch_messages),
        ));
    }
    let link = Link::new();
    let out = Rc::new(RefCell::new(Vec::new()));
    let mut guard = Guard::new(limits);
    for f in frames {
        match guard.inbound(f) {
            Inbound::Deliver(m) => link.deliver(m),
            Inbound::Reply(bytes) => out.borrow_mut().extend_from_slice(&bytes),
            Inbound::Drop => {}
            Inbound::Fatal(e) => return Err(e),
        }
    }
    let aborted: Rc<RefCell<Option<RpcError>>> = Rc::default();
    let driver = {
        let (link, out, aborted) = (link.clone(), out.clone(), aborted.clone());
        let mut guard = guard;
        let options = limits.reader_options();
        Promise::from_future(futures::future::poll_fn(move |cx| {
            while let Poll::Ready(m) = link.poll_outgoing(cx) {
                if let Some(q) = outgoing_question(&m) {
                    // The server called back into the client: no one can answer within a batch.
                    let e = RpcError::new(
                        Code::Unsupported,
                        "calls back to the client are not available over HTTP batch; use WebSocket",
                    );
                    if let Ok(reply) = framing::decode(&return_exception(q, &e), options) {
                        link.deliver(reply);
                    }
                    continue;
                }
                if let Some(e) = engine_abort(&m) {
                    aborted.borrow_mut().get_or_insert(e);
                }
                guard.outbound(&m);
                guard.written();
                out.borrow_mut().extend_from_slice(&framing::encode(&m));
            }
            // The engine has ended the session (after an abort): nothing more will come.
            if aborted.borrow().is_some() || link.with(|q| q.shutdown) {
                return Poll::Ready(Ok(()));
            }
            if guard.open_questions() == 0 {
                if link.with(|q| q.inbox.is_empty()) {
                    return Poll::Ready(Ok(()));
                }
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        }))
    };
    let system = rpc_system(Side::Server, link, driver, Some(bootstrap));
    let ended = match futures::future::select(system, std::pin::pin!(timer)).await {
        futures::future::Either::Left((ended, _)) => Some(ended),
        futures::future::Either::Right(_) => None,
    };
    if let Some(e) = aborted.borrow_mut().take() {
        return Err(e);
    }
    match ended {
        Some(Ok(())) => Ok(std::mem::take(&mut *out.borrow_mut())),
        Some(Err(e)) => Err(e.into()),
        None => Err(RpcError::new(Code::Timeout, format!("batch did not finish within {deadline:?}"))),
    }
}

fn outgoing_question(m: &capnp::message::Builder<capnp::message::HeapAllocator>) -> Option<u32> {
    let root: message::Reader = m.get_root_as_reader().ok()?;
    match root.which().ok()? {
        message::Call(Ok(c)) => Some(c.get_question_id()),
        message::Bootstrap(Ok(b)) => Some(b.get_question_id()),
        _ => None,
    }
}
