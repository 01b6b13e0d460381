//! A Cap'n Web HTTP batch, apart from its transport: the body's newline-separated
//! messages run in one session, answered with what the session sends once every
//! pulled result is in. The native server and the Cloudflare Worker both answer
//! `POST /capnweb` with it, each giving its own timer.

use super::session::{Session, SessionLimits};
use super::value::Cap;
use crate::error::{Code, RpcError};
use crate::limits::Limits;
use futures::future::{select, Either};
use std::future::Future;

/// The `abort` message that refuses a batch as a whole, for the client to reject every
/// call with the typed error.
pub fn abort_line(e: &RpcError) -> String {
    serde_json::json!(["abort", super::wire::error_expr(e)]).to_string()
}

/// Runs the batch `body` against `main` and returns the answer's body. A body that is
/// not UTF-8 or has more than `limits.max_batch_messages` messages is answered with one
/// `abort` line; calls still running when `timer` completes are aborted with TIMEOUT.
pub async fn serve_batch(main: Cap, body: &[u8], limits: &Limits, timer: impl Future<Output = ()>) -> String {
    let Ok(body) = std::str::from_utf8(body) else {
        return abort_line(&RpcError::invalid_argument("the batch is not UTF-8"));
    };
    let lines: Vec<&str> = if body.is_empty() { Vec::new() } else { body.split('\n').collect() };
    if lines.len() > limits.max_batch_messages {
        return abort_line(&RpcError::new(
            Code::LimitExceeded,
            format!("the batch has {} messages; the limit is {}", lines.len(), limits.max_batch_messages),
        ));
    }
    let (session, driver, mut out) = Session::new(main, SessionLimits::from_limits(limits));
    let received = lines.iter().all(|line| session.receive(line).is_ok());
    if received {
        let drained = std::pin::pin!(session.drained());
        let work = select(driver, drained);
        if let Either::Right(_) = select(work, std::pin::pin!(timer)).await {
            session.abort(RpcError::new(Code::Timeout, "the batch's calls did not finish in time"));
        }
    }
    session.close();
    let mut answer = Vec::new();
    while let Ok(line) = out.try_recv() {
        answer.push(line);
    }
    answer.join("\n")
}
