//! The HTTP batch transport, client side: calls (pipelined ones included) are queued
//! and sent together in one `POST` when the caller first waits (the event loop goes
//! idle) or on [`crate::BatchSession::flush`]; the replies come back in one response.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rpc_core::vat::Link;
use rpc_core::{framing, Code, Limits, RpcError};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::task::Poll;

thread_local! {
    /// Idle keep-alive connections by authority, reused across batches.
    static POOL: RefCell<HashMap<String, Vec<SendRequest<Full<Bytes>>>>> = RefCell::new(HashMap::new());
}

async fn sender(authority: &str) -> Result<SendRequest<Full<Bytes>>, RpcError> {
    while let Some(s) = POOL.with(|p| p.borrow_mut().get_mut(authority).and_then(Vec::pop)) {
        if !s.is_closed() {
            return Ok(s);
        }
    }
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| RpcError::new(Code::Disconnected, format!("cannot connect to {authority}: {e}")))?;
    let _ = stream.set_nodelay(true);
    let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| RpcError::new(Code::Disconnected, format!("http handshake with {authority}: {e}")))?;
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    Ok(s)
}

/// Where a batch goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port` to connect to.
    pub authority: String,
    /// The `Host` header to send.
    pub host: String,
    /// The request path.
    pub path: String,
}

/// Posts one batch body and returns the response body.
pub async fn post(to: &Endpoint, body: Vec<u8>, max_response: usize) -> Result<Bytes, RpcError> {
    let (authority, path) = (to.authority.as_str(), to.path.as_str());
    let mut s = sender(authority).await?;
    s.ready().await.map_err(|e| RpcError::new(Code::Disconnected, format!("http connection: {e}")))?;
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, to.host.as_str())
        .header(hyper::header::CONTENT_TYPE, rpc_core::pump::BATCH_CONTENT_TYPE)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| RpcError::new(Code::InvalidArgument, e.to_string()))?;
    let resp =
        s.send_request(req).await.map_err(|e| RpcError::new(Code::Disconnected, format!("http request: {e}")))?;
    let status = resp.status();
    let bytes = http_body_util::Limited::new(resp.into_body(), max_response)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                RpcError::new(Code::LimitExceeded, format!("the response is over {max_response} bytes"))
            } else {
                RpcError::new(Code::Disconnected, format!("http response: {e}"))
            }
        })?
        .to_bytes();
    POOL.with(|p| p.borrow_mut().entry(authority.to_string()).or_default().push(s));
    if status.is_success() {
        return Ok(bytes);
    }
    // A refused batch answers with {"code": ..., "message": ...}.
    let parsed: Option<RpcError> = serde_json::from_slice::<serde_json::Value>(&bytes).ok().and_then(|v| {
        let code = Code::parse(v.get("code")?.as_str()?)?;
        Some(RpcError::new(code, v.get("message").and_then(|m| m.as_str()).unwrap_or("").to_string()))
    });
    Err(parsed.unwrap_or_else(|| RpcError::new(Code::Internal, format!("http status {status}"))))
}

/// Whether an outgoing message is the session's `Bootstrap` request.
fn is_bootstrap(m: &capnp::message::Builder<capnp::message::HeapAllocator>) -> bool {
    m.get_root_as_reader::<capnp_rpc::rpc_capnp::message::Reader<'_>>()
        .is_ok_and(|r| matches!(r.which(), Ok(capnp_rpc::rpc_capnp::message::Bootstrap(_))))
}

/// The flag behind [`crate::BatchSession::flush`].
#[derive(Clone, Default)]
pub struct SendNow(Rc<Cell<bool>>);

impl SendNow {
    /// Asks the driver to send without waiting for the event loop to go idle.
    pub fn set(&self) {
        self.0.set(true);
    }
}

/// The driver of one batch session: waits for the first queued message, lets the
/// caller queue the rest, posts them all, hands the replies to the engine and ends
/// the session.
pub async fn drive(link: Link, to: Endpoint, limits: Limits, now: SendNow) -> Result<(), capnp::Error> {
    // A batch starts with its first call: the bootstrap request alone is not one, so a
    // caller that waits on something else before calling does not end the session empty.
    let mut held = Vec::new();
    futures::future::poll_fn(|cx| loop {
        match link.poll_outgoing(cx) {
            Poll::Ready(m) => {
                let call = !is_bootstrap(&m);
                held.push(m);
                if call {
                    return Poll::Ready(());
                }
            }
            Poll::Pending => return Poll::Pending,
        }
    })
    .await;
    link.with(|q| held.into_iter().rev().for_each(|m| q.outbox.push_front(m)));
    if !now.0.get() {
        tokio::task::yield_now().await;
    }
    let body: Vec<u8> = link.with(|q| q.outbox.drain(..).flat_map(|m| framing::encode(&m)).collect());
    let result = post(&to, body, limits.max_batch_bytes).await.and_then(|bytes| {
        let options = limits.reader_options();
        framing::split(&bytes)?.into_iter().map(|f| framing::decode(f, options)).collect::<Result<Vec<_>, _>>()
    });
    match result {
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
