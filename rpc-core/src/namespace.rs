//! Which namespace a request runs in, from its `Host` header.

/// The namespace used when the host names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The namespace of a request to `host`: the first label when the host name has more
/// than two labels (`acme.dotdo.dev` -> `acme`), else `default`. Ports are ignored;
/// IP addresses and malformed labels give `default`.
///
/// ```
/// use rpc_core::namespace::from_host;
/// assert_eq!(from_host(Some("acme.dotdo.dev:8787")), "acme");
/// assert_eq!(from_host(Some("localhost:8787")), "default");
/// assert_eq!(from_host(Some("127.0.0.1:8787")), "default");
/// ```
pub fn from_host(host: Option<&str>) -> String {
    let Some(host) = host else { return DEFAULT_NAMESPACE.to_string() };
    let name = if host.starts_with('[') {
        return DEFAULT_NAMESPACE.to_string();
    } else {
        host.split(':').next().unwrap_or("")
    };
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return DEFAULT_NAMESPACE.to_string();
    }
    let labels: Vec<&str> = name.split('.').collect();
    let first = labels[0].to_ascii_lowercase();
    let valid = crate::ident::is_namespace(&first);
    if labels.len() > 2 && valid {
        first
    } else {
        DEFAULT_NAMESPACE.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_map_to_namespaces() {
        assert_eq!(from_host(None), "default");
        assert_eq!(from_host(Some("dotdo.dev")), "default");
        assert_eq!(from_host(Some("Acme.dotdo.dev")), "acme");
        assert_eq!(from_host(Some("a.b.c.d")), "a");
        assert_eq!(from_host(Some("[::1]:80")), "default");
        assert_eq!(from_host(Some("x_y.dotdo.dev")), "default");
    }
}
