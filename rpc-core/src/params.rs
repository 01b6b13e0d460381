//! Reading call parameters: the small helpers every server needs.

use crate::error::RpcError;

/// A Text parameter as a `String`; text that is not UTF-8 is INVALID_ARGUMENT.
///
/// ```
/// let mut msg = capnp::message::Builder::new_default();
/// msg.set_root("héllo").unwrap();
/// let text = msg.get_root_as_reader::<capnp::text::Reader>();
/// assert_eq!(rpc_core::params::text(text).unwrap(), "héllo");
/// ```
pub fn text(r: capnp::Result<capnp::text::Reader<'_>>) -> Result<String, RpcError> {
    r?.to_string().map_err(|e| RpcError::invalid_argument(format!("text is not UTF-8: {e}")))
}

/// Every element of a `List(Text)` parameter, as for [`text`].
pub fn texts(r: capnp::Result<capnp::text_list::Reader<'_>>) -> Result<Vec<String>, RpcError> {
    r?.iter().map(text).collect()
}

/// Milliseconds since the Unix epoch, by the system clock (0 if it is before 1970).
/// Module servers read time through their host instead (a test can move it).
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Milliseconds since the Unix epoch: in a Worker (wasm32), the platform's `Date.now()`
/// (the system clock is not reachable there).
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}
