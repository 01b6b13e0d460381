//! The Worker's paths, as `dotdo serve` answers them: `GET /rpc` (a WebSocket session,
//! subprotocol `capnp-rpc`), `POST /rpc` (an HTTP batch), Cap'n Web's `GET` and `POST
//! /capnweb` ([`crate::capnweb`]), `GET /health`. The namespace
//! of a session comes from the `Host` header, by the same rule.

use crate::gateway::Gateway;
use crate::hop;
use rpc_core::batch::serve_batch_until;
use rpc_core::pump::{BATCH_CONTENT_TYPE, WS_SUBPROTOCOL};
use rpc_core::{Code, Limits, RpcError};
use worker::{Env, Method, Request, Response, Result};

/// Answers one request to the Worker.
pub async fn fetch(req: Request, env: Env) -> Result<Response> {
    let namespace = rpc_core::namespace::from_host(req.headers().get("host").ok().flatten().as_deref());
    let answer = match (req.method(), req.path().as_str()) {
        (Method::Get, "/health") => Response::from_json(&serde_json::json!({ "status": "ok", "host": "cloudflare" }))
            .map_err(|e| RpcError::new(Code::Internal, e.to_string())),
        (Method::Get, "/rpc") => session(&req, namespace, env),
        (Method::Post, "/rpc") => batch(req, namespace, env).await,
        (_, "/rpc") => Err(RpcError::invalid_argument("use POST /rpc for a batch or GET /rpc to open a WebSocket")),
        (Method::Post, "/capnweb") => crate::capnweb::batch(req, namespace, env).await,
        (Method::Get, "/capnweb") => crate::capnweb::session(&req, namespace, env),
        (_, "/capnweb") => {
            Err(RpcError::invalid_argument("use POST /capnweb for a batch or GET /capnweb to open a WebSocket"))
        }
        (_, path) => Err(RpcError::new(Code::NotFound, format!("no route for {path}"))),
    };
    answer.or_else(|e| error_response(&e))
}

/// The answer to a refused request: the typed error as JSON, with the code's HTTP status.
pub fn error_response(e: &RpcError) -> Result<Response> {
    let body = serde_json::json!({ "code": e.code.as_str(), "message": e.message });
    Ok(Response::from_json(&body)?.with_status(e.code.http_status()))
}

fn session(req: &Request, namespace: String, env: Env) -> std::result::Result<Response, RpcError> {
    let offered: Vec<String> = req
        .headers()
        .get("sec-websocket-protocol")
        .ok()
        .flatten()
        .map(|v| v.split(',').map(|p| p.trim().to_string()).collect())
        .unwrap_or_default();
    if !offered.is_empty() && !offered.iter().any(|p| p == WS_SUBPROTOCOL) {
        return Err(RpcError::new(
            Code::Unsupported,
            format!("subprotocols {offered:?} not supported: offer {WS_SUBPROTOCOL}"),
        ));
    }
    let refusal = "GET /rpc must be a WebSocket upgrade (or use POST /rpc for a batch)";
    let mut resp = crate::socket::accept(req, refusal, |socket| {
        hop::serve(socket, Gateway::client(namespace, env).client, Limits::default());
    })?;
    if !offered.is_empty() {
        resp.headers_mut()
            .set("sec-websocket-protocol", WS_SUBPROTOCOL)
            .map_err(|e| RpcError::new(Code::Internal, e.to_string()))?;
    }
    Ok(resp)
}

async fn batch(mut req: Request, namespace: String, env: Env) -> std::result::Result<Response, RpcError> {
    let ctype = req.headers().get("content-type").ok().flatten().unwrap_or_default();
    let media = ctype.split(';').next().unwrap_or("").trim();
    if media != BATCH_CONTENT_TYPE && media != "application/octet-stream" {
        return Err(RpcError::invalid_argument(format!(
            "content type {ctype:?} is not accepted: send {BATCH_CONTENT_TYPE}"
        )));
    }
    let limits = Limits::default();
    let body = req.bytes().await.map_err(|e| RpcError::invalid_argument(format!("could not read the body: {e}")))?;
    let deadline = limits.call_timeout + std::time::Duration::from_secs(1);
    let gateway = Gateway::client(namespace, env);
    let out = serve_batch_until(&body, gateway.client, limits, deadline, worker::Delay::from(deadline)).await?;
    let mut resp = Response::from_bytes(out).map_err(|e| RpcError::new(Code::Internal, e.to_string()))?;
    resp.headers_mut()
        .set("content-type", BATCH_CONTENT_TYPE)
        .map_err(|e| RpcError::new(Code::Internal, e.to_string()))?;
    Ok(resp)
}
