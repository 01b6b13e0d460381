//! Issue 8's hostile-input suite: inputs an attacker would send over TCP, WebSocket and
//! HTTP, to storage and to the token broker. Each case is a row of data (name, input,
//! expected code); one runner per group sends it to a server shared by the group and
//! checks (a) the typed code the server answers with and (b) that the server and its
//! data are intact afterwards. Failures are collected and reported by case name.
//!
//! One file per group under `hostile/`: `wire` (raw frames over TCP and WebSocket),
//! `calls` (calls a client library can be made to send, on every transport), `http`,
//! `storage` and `tokens`.

mod common;

#[path = "hostile/calls.rs"]
mod calls;
#[path = "hostile/http.rs"]
mod http;
#[path = "hostile/storage.rs"]
mod storage;
#[path = "hostile/tokens.rs"]
mod tokens;
#[path = "hostile/wire.rs"]
mod wire;

use capnp::traits::HasTypeId;
use capnp_rpc::rpc_capnp::message;
use common::*;
use rpc_core::{Code, Limits, RpcError};
use schema::demo_capnp::directory;
use std::time::Duration;

/// The limits of the shared servers: small enough that the limit cases stay cheap.
fn limits() -> Limits {
    Limits {
        max_message_bytes: 64 << 10,
        max_frame_bytes: 256 << 10,
        traversal_limit_words: 1 << 20,
        nesting_limit: 16,
        max_batch_messages: 8,
        max_batch_bytes: 512 << 10,
        ..Limits::default()
    }
}

/// Fails the test naming every case whose outcome was not the expected one.
fn report(group: &str, failures: Vec<String>, cases: usize) {
    assert!(cases >= 5, "{group}: too few cases");
    assert!(failures.is_empty(), "{group}: {} of {cases} cases failed:\n{}", failures.len(), failures.join("\n"));
}

/// A new session on `url` still answers `echo` (checked after each case).
async fn echo_works(url: &str) -> Result<(), String> {
    let session = connect_any(url).await.map_err(|e| format!("reconnect: {e}"))?;
    let mut echo = directory(&session.bootstrap).echo_request();
    echo.get().set_x(41);
    let r = echo.send().promise.await.map_err(|e| format!("echo after the case: {e}"))?;
    match r.get().map(directory::echo_results::Reader::get_x) {
        Ok(41) => Ok(()),
        other => Err(format!("echo answered {other:?}")),
    }
}

/// The outcome of one case, or a failure if the server has not answered within 5 s.
async fn answer(f: impl std::future::Future<Output = Result<Code, String>>) -> Result<Code, String> {
    tokio::time::timeout(Duration::from_secs(5), f).await.unwrap_or_else(|_| Err("no answer within 5 s".into()))
}

fn check(failures: &mut Vec<String>, name: &str, got: Result<Code, String>, want: Code, intact: Result<(), String>) {
    match got {
        Ok(code) if code == want => {}
        Ok(code) => failures.push(format!("{name}: answered {code}, expected {want}")),
        Err(e) => failures.push(format!("{name}: {e} (expected {want})")),
    }
    if let Err(e) = intact {
        failures.push(format!("{name}: not intact afterwards: {e}"));
    }
}

// ---------------------------------------------------------------------------------
// Raw Cap'n Proto messages.

/// A framed rpc message written by `f`.
fn msg(f: impl FnOnce(message::Builder<'_>)) -> Vec<u8> {
    let mut b = capnp::message::Builder::new_default();
    f(b.init_root());
    rpc_core::framing::encode(&b)
}

/// Little-endian bytes of a segment table for segments of `sizes` words, then `words`.
fn raw(sizes: &[u32], words: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(sizes.len() as u32).wrapping_sub(1).to_le_bytes());
    for s in sizes {
        out.extend_from_slice(&s.to_le_bytes());
    }
    if sizes.len().is_multiple_of(2) {
        out.extend_from_slice(&[0; 4]);
    }
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out
}

fn bootstrap(q: u32) -> Vec<u8> {
    msg(|m| m.init_bootstrap().set_question_id(q))
}

fn call_import(q: u32, import: u32) -> Vec<u8> {
    msg(|m| {
        let mut c = m.init_call();
        c.set_question_id(q);
        c.set_interface_id(directory::Client::TYPE_ID);
        c.reborrow().init_target().set_imported_cap(import);
        c.init_params().init_content();
    })
}

/// The typed code in the first Abort, or in the first Return carrying an exception,
/// among the complete frames at the start of `buf`; `None` if there is none yet.
fn error_in(buf: &[u8]) -> Result<Option<Code>, String> {
    let mut rest = buf;
    while let Ok(Some(len)) = rpc_core::framing::message_len(rest) {
        if rest.len() < len {
            break;
        }
        let m = rpc_core::framing::decode(&rest[..len], Default::default()).map_err(|e| format!("reply: {e}"))?;
        let root: message::Reader = m.get_root().map_err(|e| format!("reply root: {e}"))?;
        let ex = match root.which() {
            Ok(message::Abort(Ok(ex))) => Some(ex),
            Ok(message::Return(Ok(r))) => match r.which() {
                Ok(capnp_rpc::rpc_capnp::return_::Exception(Ok(ex))) => Some(ex),
                _ => None,
            },
            _ => None,
        };
        if let Some(ex) = ex {
            let reason = ex.get_reason().ok().and_then(|r| r.to_string().ok()).unwrap_or_default();
            return RpcError::from_tagged(&reason)
                .map(|e| Some(e.code))
                .ok_or_else(|| format!("an untagged reason: {reason:.200}"));
        }
        rest = &rest[len..];
    }
    Ok(None)
}
