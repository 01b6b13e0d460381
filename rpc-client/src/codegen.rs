//! What generated typed clients use from the runtime, in one place (as tonic's generated
//! code reaches tonic only through `tonic::codegen`). Not meant to be used by hand.

pub use crate::call::{Call, CallFuture, CallOptions, FromResults};
pub use capnp;
pub use capnp_rpc;
pub use rpc_core::{Code, RpcError};

/// Reads a `Text` value as an owned `String`; text that is not UTF-8 is
/// `INVALID_ARGUMENT`.
///
/// ```
/// let text: capnp::text::Reader<'_> = "hi".into();
/// assert_eq!(rpc_client::codegen::text(Ok(text)).unwrap(), "hi");
/// ```
pub fn text(t: capnp::Result<capnp::text::Reader<'_>>) -> Result<String, RpcError> {
    t.map_err(RpcError::from)?
        .to_string()
        .map_err(|e| RpcError::new(Code::InvalidArgument, format!("text is not UTF-8: {e}")))
}

/// An enum value this side does not know: `INVALID_ARGUMENT`.
///
/// ```
/// let e = rpc_client::codegen::not_in_schema(capnp::NotInSchema(9));
/// assert_eq!(e.code, rpc_client::Code::InvalidArgument);
/// ```
pub fn not_in_schema(e: capnp::NotInSchema) -> RpcError {
    RpcError::new(Code::InvalidArgument, format!("enum value {} is not in the schema", e.0))
}

pub use schema::{InterfaceDesc, MethodDesc};
