//! hyper answers a request it cannot parse (a bad request line or header: 400, a URI too
//! long: 414, headers too large: 431) by itself, with an empty body, and then closes the
//! connection; it has no hook for that response. [`JsonErrors`] wraps a connection's
//! socket and replaces exactly that response, as hyper writes it, with the JSON error
//! body (`{"code", "message"}`) every other refusal has. Anything else passes untouched.

use rpc_core::{Code, RpcError};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The JSON response that replaces hyper's automatic response `head`, if it is one.
pub(crate) fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let (status, error) = if head.starts_with(b"HTTP/1.1 400 Bad Request\r\n") {
        ("400 Bad Request", RpcError::invalid_argument("the request line or a header is not valid HTTP/1.1"))
    } else if head.starts_with(b"HTTP/1.1 414 URI Too Long\r\n") {
        ("414 URI Too Long", RpcError::new(Code::LimitExceeded, "the request URI is too long"))
    } else if head.starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n") {
        ("431 Request Header Fields Too Large", RpcError::new(Code::LimitExceeded, "the request headers are too large"))
    } else {
        return None;
    };
    // hyper's own: a whole head with an empty body (ours always carry a body).
    let is_whole_empty_head =
        head.ends_with(b"\r\n\r\n") && head.windows(19).any(|w| w.eq_ignore_ascii_case(b"\r\ncontent-length: 0"));
    if !is_whole_empty_head {
        return None;
    }
    let body = serde_json::json!({ "code": error.code.as_str(), "message": error.message }).to_string();
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

/// A socket whose writes pass through, except hyper's automatic error response (see the
/// module docs).
pub(crate) struct JsonErrors<T> {
    inner: T,
    /// A replacement being written, and how much of it is out.
    pending: Option<(Vec<u8>, usize)>,
}

impl<T> JsonErrors<T> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: T) -> Self {
        JsonErrors { inner, pending: None }
    }
}

impl<T: AsyncWrite + Unpin> JsonErrors<T> {
    /// Writes out the pending replacement, if any.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, done)) = &mut self.pending {
            if *done == bytes.len() {
                self.pending = None;
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*done..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *done += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrors<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrors<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none() {
            match replacement(buf) {
                // Written in place of `buf`, which then counts as written.
                Some(json) => this.pending = Some((json, 0)),
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        this.poll_pending(cx).map_ok(|()| buf.len())
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs.iter().find(|b| !b.is_empty());
        if self.pending.is_some() || first.is_some_and(|b| replacement(b).is_some()) {
            return self.poll_write(cx, first.map_or(&[][..], |b| &b[..]));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_own_empty_error_heads_are_replaced() {
        let auto = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let json = String::from_utf8(replacement(auto).expect("replaced")).expect("utf-8");
        assert!(json.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{json}");
        let body: serde_json::Value =
            serde_json::from_str(json.split("\r\n\r\n").nth(1).expect("a body")).expect("json");
        assert_eq!(body["code"], "LIMIT_EXCEEDED");
        let bad = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert!(String::from_utf8(replacement(bad).expect("replaced")).expect("utf-8").contains("INVALID_ARGUMENT"));
        // Our own responses carry a body; other statuses and other bytes pass.
        assert!(replacement(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 52\r\n\r\n").is_none());
        assert!(replacement(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(replacement(b"\x82\x05hello").is_none());
    }
}
