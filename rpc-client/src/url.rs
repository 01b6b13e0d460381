//! Parsing the addresses `connect` accepts: `ws://`, `wss://`, `http://`, `https://`
//! and `tcp://` (with the `url` crate).

use rpc_core::{Code, RpcError};

/// The transport a URL selects.
///
/// ```
/// use rpc_client::{Scheme, Target};
/// assert_eq!(Target::parse("tcp://127.0.0.1:8788").unwrap().scheme, Scheme::Tcp);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `ws://host:port[/rpc]` (or `wss://`, over TLS): a WebSocket session.
    WebSocket,
    /// `http://host:port[/rpc]` (or `https://`, over TLS): one HTTP batch per session.
    Http,
    /// `tcp://host:port`: the plain Cap'n Proto stream.
    Tcp,
}

/// A parsed server address.
///
/// ```
/// let t = rpc_client::Target::parse("ws://127.0.0.1:8787").unwrap();
/// assert_eq!((t.authority.as_str(), t.path.as_str()), ("127.0.0.1:8787", "/rpc"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Which transport.
    pub scheme: Scheme,
    /// Over TLS (`wss://`, `https://`).
    pub tls: bool,
    /// `host:port`.
    pub authority: String,
    /// The path (`/rpc` when none is given).
    pub path: String,
}

fn invalid(msg: String) -> RpcError {
    RpcError::new(Code::InvalidArgument, msg)
}

impl Target {
    /// Parses `url` (with the `url` crate); an unknown scheme, a missing host or a
    /// `tcp://` address without a port is INVALID_ARGUMENT. `ws://` and `http://` default
    /// to port 80, `wss://` and `https://` to 443.
    ///
    /// ```
    /// use rpc_client::{Code, Target};
    /// assert_eq!(Target::parse("http://example.com/api").unwrap().authority, "example.com:80");
    /// assert_eq!(Target::parse("ftp://x:1").unwrap_err().code, Code::InvalidArgument);
    /// assert_eq!(Target::parse("tcp://x").unwrap_err().code, Code::InvalidArgument);
    /// ```
    pub fn parse(url: &str) -> Result<Target, RpcError> {
        if !url.contains("://") {
            return Err(invalid(format!("{url:?} has no scheme: use ws://, wss://, http://, https:// or tcp://")));
        }
        let parsed = ::url::Url::parse(url).map_err(|e| invalid(format!("{url:?} is not a valid address: {e}")))?;
        let (scheme, tls) = match parsed.scheme() {
            "ws" => (Scheme::WebSocket, false),
            "wss" => (Scheme::WebSocket, true),
            "http" => (Scheme::Http, false),
            "https" => (Scheme::Http, true),
            "tcp" => (Scheme::Tcp, false),
            other => return Err(invalid(format!("unsupported scheme {other:?}: use ws, wss, http, https or tcp"))),
        };
        let host =
            parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(|| invalid(format!("{url:?} has no host")))?;
        let port = parsed.port_or_known_default().ok_or_else(|| invalid(format!("{url:?} has no port")))?;
        let path = match parsed.path() {
            "" | "/" => "/rpc".to_string(),
            p => p.to_string(),
        };
        let path = match parsed.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        Ok(Target { scheme, tls, authority: format!("{host}:{port}"), path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let t = Target::parse("ws://127.0.0.1:8787").unwrap();
        assert_eq!((t.scheme, t.authority.as_str(), t.path.as_str()), (Scheme::WebSocket, "127.0.0.1:8787", "/rpc"));
        let t = Target::parse("http://acme.example.com:80/rpc").unwrap();
        assert_eq!((t.scheme, t.authority.as_str()), (Scheme::Http, "acme.example.com:80"));
        assert_eq!(Target::parse("tcp://h:1").unwrap().scheme, Scheme::Tcp);
        let t = Target::parse("wss://example.com").unwrap();
        assert_eq!((t.scheme, t.tls, t.authority.as_str()), (Scheme::WebSocket, true, "example.com:443"));
        let t = Target::parse("https://example.com:8443/rpc").unwrap();
        assert_eq!((t.scheme, t.tls, t.authority.as_str()), (Scheme::Http, true, "example.com:8443"));
        assert!(!Target::parse("ws://h").unwrap().tls);
        assert_eq!(Target::parse("ftp://x").unwrap_err().code, Code::InvalidArgument);
        assert_eq!(Target::parse("nohost").unwrap_err().code, Code::InvalidArgument);
        assert_eq!(Target::parse("ws://").unwrap_err().code, Code::InvalidArgument);
        assert_eq!(Target::parse("tcp://h").unwrap_err().code, Code::InvalidArgument, "tcp has no default port");
        assert_eq!(Target::parse("tcp://").unwrap_err().code, Code::InvalidArgument);
        assert_eq!(Target::parse("ws://h:99999").unwrap_err().code, Code::InvalidArgument);
        let t = Target::parse("http://acme.example.com/custom/rpc?x=1").unwrap();
        assert_eq!((t.authority.as_str(), t.path.as_str()), ("acme.example.com:80", "/custom/rpc?x=1"));
        let t = Target::parse("ws://[::1]:8787/").unwrap();
        assert_eq!((t.authority.as_str(), t.path.as_str()), ("[::1]:8787", "/rpc"));
        assert_eq!(Target::parse("tcp://127.0.0.1:8788").unwrap().authority, "127.0.0.1:8788");
    }
}
