//! The one error type of the RPC layer, [`RpcError`], with stable [`Code`]s.
//!
//! The code is what crosses the wire and what tests assert; the message is for people.
//! On the wire a code travels inside the Cap'n Proto exception's `reason` as a
//! `[CODE] message` prefix, with the exception `type` chosen to match (OVERLOADED and
//! TIMEOUT as `overloaded`, DISCONNECTED as `disconnected`, UNIMPLEMENTED as
//! `unimplemented`, the rest as `failed`), so plain Cap'n Proto peers still see a
//! sensible exception and dotdo clients get the same code back.

use std::fmt;

/// A stable error code. Its [`Code::as_str`] form is what crosses the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// The request is malformed or an argument is invalid.
    InvalidArgument,
    /// The named thing does not exist.
    NotFound,
    /// The caller is not authenticated.
    Unauthorized,
    /// The caller is authenticated but may not do this.
    Forbidden,
    /// A credential or deadline has passed.
    Expired,
    /// The state changed under the caller (e.g. a version mismatch).
    Conflict,
    /// The call did not finish within its deadline.
    Timeout,
    /// Too much work in flight; retry later.
    Overloaded,
    /// A configured limit (message size, nesting, batch size...) was exceeded.
    LimitExceeded,
    /// The method or interface does not exist on this object.
    Unimplemented,
    /// A protocol version or feature the caller needs is not supported.
    Unsupported,
    /// The connection or session is gone.
    Disconnected,
    /// A token's signature does not check out (tampered, or an unknown key).
    InvalidSignature,
    /// A token names another object.
    WrongTarget,
    /// A token's scope is below what the method needs.
    InsufficientScope,
    /// A token was revoked.
    Revoked,
    /// A token is not well-formed.
    Malformed,
    /// No signing key is configured (there is never a built-in default).
    SecretRequired,
    /// A bug or unexpected failure on the far side.
    Internal,
    /// A dependency is unavailable (e.g. its circuit breaker is open): fail fast, retry later.
    Unavailable,
    /// The work was cancelled (e.g. a cancelled workflow run).
    Cancelled,
}

impl Code {
    /// Every code, for tables and tests.
    pub const ALL: [Code; 21] = [
        Code::InvalidArgument,
        Code::NotFound,
        Code::Unauthorized,
        Code::Forbidden,
        Code::Expired,
        Code::Conflict,
        Code::Timeout,
        Code::Overloaded,
        Code::LimitExceeded,
        Code::Unimplemented,
        Code::Unsupported,
        Code::Disconnected,
        Code::Internal,
        Code::InvalidSignature,
        Code::WrongTarget,
        Code::InsufficientScope,
        Code::Revoked,
        Code::Malformed,
        Code::SecretRequired,
        Code::Unavailable,
        Code::Cancelled,
    ];

    /// The wire name, e.g. `INVALID_ARGUMENT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::NotFound => "NOT_FOUND",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Forbidden => "FORBIDDEN",
            Code::Expired => "EXPIRED",
            Code::Conflict => "CONFLICT",
            Code::Timeout => "TIMEOUT",
            Code::Overloaded => "OVERLOADED",
            Code::LimitExceeded => "LIMIT_EXCEEDED",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Unsupported => "UNSUPPORTED",
            Code::Disconnected => "DISCONNECTED",
            Code::Internal => "INTERNAL",
            Code::InvalidSignature => "INVALID_SIGNATURE",
            Code::WrongTarget => "WRONG_TARGET",
            Code::InsufficientScope => "INSUFFICIENT_SCOPE",
            Code::Revoked => "REVOKED",
            Code::Malformed => "MALFORMED",
            Code::SecretRequired => "SECRET_REQUIRED",
            Code::Unavailable => "UNAVAILABLE",
            Code::Cancelled => "CANCELLED",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The Cap'n Proto exception kind this code travels as.
    pub fn exception_kind(self) -> capnp::ErrorKind {
        match self {
            Code::Overloaded | Code::Timeout | Code::Unavailable => capnp::ErrorKind::Overloaded,
            Code::Disconnected => capnp::ErrorKind::Disconnected,
            Code::Unimplemented => capnp::ErrorKind::Unimplemented,
            _ => capnp::ErrorKind::Failed,
        }
    }

    /// The HTTP status used when this code answers a whole HTTP request.
    pub fn http_status(self) -> u16 {
        match self {
            Code::InvalidArgument => 400,
            Code::Unauthorized | Code::InvalidSignature | Code::Revoked | Code::Malformed => 401,
            Code::Forbidden | Code::WrongTarget | Code::InsufficientScope => 403,
            Code::SecretRequired => 500,
            Code::NotFound => 404,
            Code::Conflict => 409,
            Code::LimitExceeded => 413,
            Code::Expired => 401,
            Code::Timeout => 504,
            Code::Overloaded | Code::Unavailable => 503,
            Code::Cancelled => 409,
            Code::Unimplemented | Code::Unsupported => 501,
            Code::Disconnected => 502,
            Code::Internal => 500,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An RPC error: a stable [`Code`] and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RpcError {
    /// What kind of failure this is; stable across the wire.
    pub code: Code,
    /// A human-readable explanation.
    pub message: String,
}

impl RpcError {
    /// Makes an error with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into() }
    }

    /// An INVALID_ARGUMENT error: the request is malformed or an argument is invalid.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        RpcError::new(Code::InvalidArgument, message)
    }

    /// The `reason` text this error travels as: `[CODE] message`.
    pub fn wire_reason(&self) -> String {
        format!("[{}] {}", self.code, self.message)
    }

    /// Reads a code from a text that may hold a `[CODE]` tag anywhere (remote
    /// exceptions arrive as `remote exception: [CODE] message`).
    pub fn from_tagged(text: &str) -> Option<RpcError> {
        let mut rest = text;
        while let Some(start) = rest.find('[') {
            let after = &rest[start + 1..];
            if let Some(end) = after.find(']') {
                if let Some(code) = Code::parse(&after[..end]) {
                    let message = after[end + 1..].trim_start().to_string();
                    return Some(RpcError::new(code, message));
                }
            }
            rest = after;
        }
        None
    }
}

/// Classifies an untagged Cap'n Proto error by its kind.
fn classify(kind: capnp::ErrorKind) -> Code {
    use capnp::ErrorKind as K;
    match kind {
        K::Overloaded => Code::Overloaded,
        K::Disconnected => Code::Disconnected,
        K::Unimplemented => Code::Unimplemented,
        K::Failed => Code::Internal,
        K::MessageIsTooDeeplyNested
        | K::MessageIsTooDeeplyNestedOrContainsCycles
        | K::NestingLimitExceeded
        | K::ReadLimitExceeded
        | K::MessageTooLarge(_) => Code::LimitExceeded,
        _ => Code::InvalidArgument,
    }
}

impl From<capnp::Error> for RpcError {
    fn from(e: capnp::Error) -> Self {
        if let Some(tagged) = RpcError::from_tagged(&e.extra) {
            return tagged;
        }
        let code = classify(e.kind);
        let message = match e.kind {
            capnp::ErrorKind::Failed
            | capnp::ErrorKind::Overloaded
            | capnp::ErrorKind::Disconnected
            | capnp::ErrorKind::Unimplemented => e.extra.clone(),
            _ => e.to_string(),
        };
        RpcError::new(code, message)
    }
}

impl From<RpcError> for capnp::Error {
    fn from(e: RpcError) -> Self {
        capnp::Error { kind: e.code.exception_kind(), extra: e.wire_reason() }
    }
}

/// Turns any Cap'n Proto error into one whose reason carries a `[CODE]` tag, so the
/// code survives the trip across the wire.
pub fn tag(e: capnp::Error) -> capnp::Error {
    RpcError::from(e).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_a_capnp_error() {
        for code in Code::ALL {
            let e = RpcError::new(code, "why");
            let wire: capnp::Error = e.clone().into();
            // What a remote peer's capnp-rpc makes of it.
            let remote = capnp::Error { kind: wire.kind, extra: format!("remote exception: {}", wire.extra) };
            assert_eq!(RpcError::from(remote), e);
            assert_eq!(Code::parse(code.as_str()), Some(code));
        }
    }

    #[test]
    fn untagged_errors_are_classified() {
        assert_eq!(
            RpcError::from(capnp::Error::unimplemented("Method not implemented".into())).code,
            Code::Unimplemented
        );
        assert_eq!(
            RpcError::from(capnp::Error::from_kind(capnp::ErrorKind::MessageIsTooDeeplyNested)).code,
            Code::LimitExceeded
        );
        assert_eq!(RpcError::from(capnp::Error::failed("boom".into())).code, Code::Internal);
        assert_eq!(RpcError::from(capnp::Error::disconnected("gone".into())).code, Code::Disconnected);
    }

    #[test]
    fn brackets_that_are_not_codes_are_skipped() {
        let e = RpcError::from_tagged("list [a] then [NOT_FOUND] no such file").expect("tag");
        assert_eq!(e.code, Code::NotFound);
        assert_eq!(e.message, "no such file");
        assert!(RpcError::from_tagged("[nope] x").is_none());
    }
}
