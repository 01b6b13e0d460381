//! Parsing the addresses `connect` accepts: `ws://`, `http://` and `tcp://`.

use rpc_core::{Code, RpcError};

/// The transport a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `ws://host:port[/rpc]`: a WebSocket session.
    WebSocket,
    /// `http://host:port[/rpc]`: one HTTP batch per session.
    Http,
    /// `tcp://host:port`: the plain Cap'n Proto stream.
    Tcp,
}

/// A parsed server address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Which transport.
    pub scheme: Scheme,
    /// `host:port`.
    pub authority: String,
    /// The path (`/rpc` when none is given).
    pub path: String,
}

impl Target {
    /// Parses `url`; an unknown scheme or a missing host is INVALID_ARGUMENT.
    pub fn parse(url: &str) -> Result<Target, RpcError> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            RpcError::new(Code::InvalidArgument, format!("{url:?} has no scheme: use ws://, http:// or tcp://"))
        })?;
        let scheme = match scheme {
            "ws" => Scheme::WebSocket,
            "http" => Scheme::Http,
            "tcp" => Scheme::Tcp,
            other => {
                return Err(RpcError::new(
                    Code::InvalidArgument,
                    format!("unsupported scheme {other:?}: use ws, http or tcp"),
                ))
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(RpcError::new(Code::InvalidArgument, format!("{url:?} has no host")));
        }
        let path = if path.is_empty() || path == "/" { "/rpc".to_string() } else { path.to_string() };
        Ok(Target { scheme, authority: authority.to_string(), path })
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
        assert_eq!(t.scheme, Scheme::Http);
        assert_eq!(Target::parse("tcp://h:1").unwrap().scheme, Scheme::Tcp);
        assert_eq!(Target::parse("ftp://x").unwrap_err().code, Code::InvalidArgument);
        assert_eq!(Target::parse("nohost").unwrap_err().code, Code::InvalidArgument);
        assert_eq!(Target::parse("ws://").unwrap_err().code, Code::InvalidArgument);
    }
}
