//! The HTTP batch transport, client side: calls (pipelined ones included) are queued
//! and sent together in one `POST` when the caller first waits (the event loop goes
//! idle) or on [`crate::BatchSession::flush`]; the replies come back in one response.

use crate::tls::TlsConfig;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rpc_core::vat::Link;
use rpc_core::{framing, Code, Limits, RpcError};
use std::cell::Cell;
use std::rc::Rc;
use std::task::Poll;

type HttpClient = Client<HttpConnector, Full<Bytes>>;
type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

thread_local! {
    /// hyper-util's client, one per thread: it keeps idle keep-alive connections by
    /// authority and reuses them across batches (a connection whose runtime has gone is
    /// not reused).
    static CLIENT: HttpClient = {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Client::builder(TokioExecutor::new()).build(connector)
    };

    /// The HTTPS client of the last TLS configuration used on this thread (the default
    /// one, in practice), keeping its connections as [`CLIENT`] does.
    static HTTPS: std::cell::RefCell<Option<(TlsConfig, HttpsClient)>> = const { std::cell::RefCell::new(None) };
}

/// The pooled HTTPS client for `config`.
fn https_client(config: &TlsConfig) -> HttpsClient {
    HTTPS.with(|cell| {
        let mut cell = cell.borrow_mut();
        if let Some((c, client)) = cell.as_ref() {
            if std::sync::Arc::ptr_eq(c, config) {
                return client.clone();
            }
        }
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((**config).clone())
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        *cell = Some((config.clone(), client.clone()));
        client
    })
}

/// Where a batch goes.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `host:port` to connect to.
    pub authority: String,
    /// The `Host` header to send.
    pub host: String,
    /// The request path.
    pub path: String,
    /// Over TLS (`https://`) with this configuration.
    pub tls: Option<TlsConfig>,
}

/// Posts one batch body and returns the response body.
pub async fn post(to: &Endpoint, body: Vec<u8>, max_response: usize) -> Result<Bytes, RpcError> {
    let authority = to.authority.as_str();
    let scheme = if to.tls.is_some() { "https" } else { "http" };
    let req = hyper::Request::post(format!("{scheme}://{authority}{}", to.path))
        .header(hyper::header::HOST, to.host.as_str())
        .header(hyper::header::CONTENT_TYPE, rpc_core::pump::BATCH_CONTENT_TYPE)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| RpcError::new(Code::InvalidArgument, e.to_string()))?;
    let sent = match &to.tls {
        Some(config) => https_client(config).request(req).await,
        None => CLIENT.with(HttpClient::clone).request(req).await,
    };
    let resp = sent.map_err(|e| {
        let cause = std::error::Error::source(&e).map(|c| format!(": {c}")).unwrap_or_default();
        if e.is_connect() {
            RpcError::new(Code::Disconnected, format!("cannot connect to {authority}{cause}"))
        } else {
            RpcError::new(Code::Disconnected, format!("http request: {e}{cause}"))
        }
    })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// An HTTP server on 127.0.0.1 that answers every request with its body, counting the
    /// connections it accepts.
    async fn echo_server() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::task::spawn_local(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let service = hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let body = req.into_body().collect().await?.to_bytes();
                    Ok::<_, hyper::Error>(hyper::Response::new(Full::new(body)))
                });
                tokio::task::spawn_local(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        (addr, accepted)
    }

    fn endpoint(authority: &str) -> Endpoint {
        Endpoint { authority: authority.to_string(), host: "localhost".into(), path: "/rpc".into(), tls: None }
    }

    #[test]
    fn batches_reuse_one_keep_alive_connection() {
        crate::run(async {
            let (addr, accepted) = echo_server().await;
            for i in 0..3u8 {
                let out = post(&endpoint(&addr), vec![i; 8], 1024).await.expect("post");
                assert_eq!(out.as_ref(), &[i; 8]);
            }
            assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection for three batches");
            let e = post(&endpoint(&addr), vec![0; 64], 16).await.expect_err("too large");
            assert_eq!(e.code, Code::LimitExceeded);
        });
    }

    #[test]
    fn a_closed_port_is_disconnected() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let e = crate::run(post(&endpoint(&format!("127.0.0.1:{port}")), vec![1], 16)).expect_err("nobody listens");
        assert_eq!(e.code, Code::Disconnected);
        assert!(e.message.contains("cannot connect"), "{}", e.message);
    }
}
