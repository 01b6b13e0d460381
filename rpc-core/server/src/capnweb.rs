//! The Cap'n Web transports: `GET /capnweb` (a WebSocket of JSON text messages) and
//! `POST /capnweb` (an HTTP batch: newline-separated messages in, the answers out).
//! The protocol is `rpc_core::capnweb`; this is only the I/O around it.

use crate::{accept, error_response, read_body, Body, Shared, TransportKind};
use bytes::Bytes;
use capnp::traits::HasTypeId;
use futures::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rpc_core::capnweb::{Cap, Session, SessionLimits};
use rpc_core::metrics::Metrics;
use rpc_core::{Code, RpcError};
use rpc_transport::metered::{Meter, Metered};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tracing::Instrument;

/// The content type of a batch answer.
const TEXT: &str = "text/plain; charset=utf-8";

fn main_cap(bootstrap: capnp::capability::Client) -> Cap {
    Cap { client: bootstrap, interface: schema::session_capnp::gateway::Client::TYPE_ID }
}

/// `POST /capnweb`: runs the batch's messages in one session and answers with what the
/// session sends once every pulled result is in. A batch refused as a whole (too many
/// messages, a message that is not Cap'n Web) is answered 200 with an `abort`
/// message, so the `capnweb` client rejects its calls with the typed error.
pub(crate) async fn batch(
    req: Request<Incoming>,
    namespace: String,
    shared: &Arc<Shared>,
) -> Result<Response<Body>, RpcError> {
    let body = match read_body(req.into_body(), &shared.limits).await {
        Ok(b) => b,
        Err(e) if e.code == Code::Timeout => {
            let mut r = error_response(&e);
            *r.status_mut() = StatusCode::REQUEST_TIMEOUT;
            r.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            return Ok(r);
        }
        // The body was not read to its end: the connection cannot carry another request.
        Err(e) => {
            let mut r = text_response(rpc_core::capnweb::batch::abort_line(&e));
            r.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            return Ok(r);
        }
    };
    let messages = if body.is_empty() { 0 } else { body.iter().filter(|b| **b == b'\n').count() + 1 };
    Metrics::inc(&shared.metrics.capnweb_batches);
    shared.metrics.capnweb_messages.fetch_add(messages as u64, Ordering::Relaxed);
    let (bootstrap, span) = shared.session(namespace, TransportKind::CapnWebBatch);
    let deadline = shared.limits.call_timeout + std::time::Duration::from_secs(1);
    let answer =
        rpc_core::capnweb::batch::serve_batch(main_cap(bootstrap), &body, &shared.limits, tokio::time::sleep(deadline))
            .instrument(span.clone())
            .await;
    span.in_scope(|| tracing::debug!(outcome = "closed", bytes = answer.len(), "capnweb batch served"));
    Ok(text_response(answer))
}

fn text_response(body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(TEXT));
    r
}

/// `GET /capnweb`: upgrades to a WebSocket and runs a session over it.
pub(crate) fn upgrade(
    mut req: Request<Incoming>,
    namespace: String,
    shared: &Arc<Shared>,
    slot: Rc<accept::Slot>,
) -> Result<Response<Body>, RpcError> {
    let accept =
        crate::websocket_accept(&req, "GET /capnweb must be a WebSocket upgrade (or use POST /capnweb for a batch)")?;
    let shared = shared.clone();
    crate::on_upgraded(&mut req, shared.budget.clone(), move |socket, meter| async move {
        // tungstenite zeroes its whole read buffer before each read: 16 KiB, not its
        // default 128 KiB, so small messages cost little (bigger ones still fit).
        let config = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .max_message_size(Some(shared.limits.max_message_bytes))
            .max_frame_size(Some(shared.limits.max_message_bytes));
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(socket, Role::Server, Some(config)).await;
        Metrics::inc(&shared.metrics.capnweb_sessions);
        let (bootstrap, span) = shared.session(namespace, TransportKind::CapnWeb);
        run(ws, meter, bootstrap, shared).instrument(span).await;
        drop(slot);
    });
    crate::switching_protocols(&accept, None)
}

type Ws = tokio_tungstenite::WebSocketStream<Metered<TokioIo<hyper::upgrade::Upgraded>>>;

/// How a WebSocket session ended, for the log.
enum End {
    Closed,
    Aborted(RpcError),
}

async fn run(mut ws: Ws, meter: Meter, bootstrap: capnp::capability::Client, shared: Arc<Shared>) {
    shared.metrics.active_sessions.fetch_add(1, Ordering::Relaxed);
    tracing::debug!("session started");
    let (session, mut driver, mut out) = Session::new(main_cap(bootstrap), SessionLimits::from_limits(&shared.limits));
    let idle = shared.timeouts().idle;
    // One timer for the idle timeout, re-armed from the last frame's time when it fires
    // (not a timer per message).
    let mut last_frame = tokio::time::Instant::now();
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    // Frames read since answers were last written: the answers go out in batches (all
    // the frames at hand are read and run first), but never after more than this many.
    const BURST: u32 = 256;
    let mut burst = 0u32;
    let end = loop {
        tokio::select! {
            biased;
            () = &mut driver => {}
            frame = ws.next() => {
                last_frame = tokio::time::Instant::now();
                if matches!(frame, Some(Ok(_))) {
                    // A whole message: the bytes it held are off the partial-frame budget.
                    meter.delivered();
                }
                let e = match frame {
                    None | Some(Ok(WsMessage::Close(_))) => break End::Closed,
                    Some(Ok(WsMessage::Text(text))) => {
                        Metrics::inc(&shared.metrics.capnweb_messages);
                        match session.receive(text.as_str()) {
                            Ok(()) => {
                                burst += 1;
                                if burst >= BURST {
                                    burst = 0;
                                    if !send_queued(&mut ws, &mut out).await {
                                        break End::Closed;
                                    }
                                }
                                continue;
                            }
                            Err(e) if e.code == Code::Disconnected => break End::Closed,
                            Err(e) => {
                                send_queued(&mut ws, &mut out).await;
                                break End::Aborted(e);
                            }
                        }
                    }
                    Some(Ok(WsMessage::Binary(_))) => {
                        RpcError::invalid_argument("Cap'n Web messages are text frames (binary Cap'n Proto is served at /rpc)")
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
                        match e {
                            WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => RpcError::new(
                                Code::LimitExceeded,
                                format!("a message of {size} bytes is over the limit of {max_size}"),
                            ),
                            WsError::Capacity(c) => RpcError::new(Code::LimitExceeded, c.to_string()),
                            // The peer went away without a closing handshake.
                            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => break End::Closed,
                            WsError::Protocol(p) => RpcError::invalid_argument(p.to_string()),
                            // A read refused for the server's partial-frame budget.
                            _ => match meter.refused() {
                                Some(e) => e,
                                None => break End::Closed,
                            },
                        }
                    }
                };
                session.abort(e.clone());
                send_queued(&mut ws, &mut out).await;
                break End::Aborted(e);
            }
            line = out.next() => {
                let Some(line) = line else { break End::Closed };
                burst = 0;
                if ws.feed(WsMessage::text(line)).await.is_err() || !send_queued(&mut ws, &mut out).await {
                    break End::Closed;
                }
            }
            () = &mut idle_timer => {
                if last_frame.elapsed() >= idle {
                    let e = RpcError::new(Code::Timeout, format!("no message for {} s", idle.as_secs()));
                    session.abort(e.clone());
                    send_queued(&mut ws, &mut out).await;
                    break End::Aborted(e);
                }
                idle_timer.as_mut().reset(last_frame + idle);
            }
        }
    };
    session.close();
    drop(driver);
    let _ = ws.close(None).await;
    match end {
        End::Closed => tracing::debug!(outcome = "closed", "session ended"),
        End::Aborted(e) => {
            Metrics::inc(&shared.metrics.aborted_sessions);
            tracing::warn!(outcome = "aborted", code = e.code.as_str(), error = %e.message, "session aborted: the peer broke the protocol or a limit");
        }
    }
    shared.metrics.active_sessions.fetch_sub(1, Ordering::Relaxed);
}

/// Sends everything the session has queued, in one write; false when the socket failed.
async fn send_queued(ws: &mut Ws, out: &mut futures::channel::mpsc::UnboundedReceiver<String>) -> bool {
    while let Ok(line) = out.try_recv() {
        if ws.feed(WsMessage::text(line)).await.is_err() {
            return false;
        }
    }
    ws.flush().await.is_ok()
}
