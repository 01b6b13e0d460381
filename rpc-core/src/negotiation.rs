//! Session negotiation, as plain functions: the first call of every session agrees on
//! a protocol version and a set of features.
//!
//! ```
//! use rpc_core::negotiation::{negotiate, Offer, ServerProtocol};
//! let server = ServerProtocol::default();
//! let got = negotiate(&server, &Offer { min_version: 1, max_version: 9, supported: vec!["pipelining".into()], ..Offer::default() }).unwrap();
//! assert_eq!(got.version, server.max_version);
//! assert_eq!(got.enabled, vec!["pipelining".to_string()]);
//! ```

use crate::error::{Code, RpcError};

/// The protocol version this build speaks at most.
pub const PROTOCOL_VERSION: u32 = 1;

/// The features this build can offer.
pub const FEATURES: &[&str] = &["pipelining", "capability-passing", "http-batch", "websocket", "tcp", "discovery"];

/// What a server speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerProtocol {
    /// Lowest version served.
    pub min_version: u32,
    /// Highest version served.
    pub max_version: u32,
    /// Features available on this server.
    pub features: Vec<String>,
}

impl Default for ServerProtocol {
    fn default() -> Self {
        ServerProtocol {
            min_version: 1,
            max_version: PROTOCOL_VERSION,
            features: FEATURES.iter().map(std::string::ToString::to_string).collect(),
        }
    }
}

/// What a client asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Offer {
    /// The client's name for itself.
    pub client_id: String,
    /// Lowest version the client speaks.
    pub min_version: u32,
    /// Highest version the client speaks.
    pub max_version: u32,
    /// Features the client can use.
    pub supported: Vec<String>,
    /// Features the client cannot do without.
    pub required: Vec<String>,
}

/// The outcome of a successful negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    /// Highest version both sides speak.
    pub version: u32,
    /// Requested features the server has, in the server's order.
    pub enabled: Vec<String>,
    /// Every feature the server has.
    pub available: Vec<String>,
}

/// Agrees on a version and features, or says why not: UNSUPPORTED when the version
/// ranges do not meet or a required feature is missing, INVALID_ARGUMENT for an empty range.
pub fn negotiate(server: &ServerProtocol, offer: &Offer) -> Result<Agreement, RpcError> {
    if offer.min_version > offer.max_version {
        return Err(RpcError::new(
            Code::InvalidArgument,
            format!("minVersion {} is above maxVersion {}", offer.min_version, offer.max_version),
        ));
    }
    let version = offer.max_version.min(server.max_version);
    if version < offer.min_version.max(server.min_version) {
        return Err(RpcError::new(
            Code::Unsupported,
            format!(
                "no common protocol version: client speaks {}..={}, server speaks {}..={}",
                offer.min_version, offer.max_version, server.min_version, server.max_version
            ),
        ));
    }
    let missing: Vec<&str> =
        offer.required.iter().filter(|f| !server.features.contains(f)).map(String::as_str).collect();
    if !missing.is_empty() {
        return Err(RpcError::new(
            Code::Unsupported,
            format!("required feature(s) not supported: {}", missing.join(", ")),
        ));
    }
    let enabled =
        server.features.iter().filter(|f| offer.supported.contains(f) || offer.required.contains(f)).cloned().collect();
    Ok(Agreement { version, enabled, available: server.features.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(min: u32, max: u32) -> ServerProtocol {
        ServerProtocol { min_version: min, max_version: max, features: vec!["a".into(), "b".into()] }
    }

    #[test]
    fn picks_the_highest_common_version() {
        let o = Offer { min_version: 1, max_version: 3, ..Offer::default() };
        assert_eq!(negotiate(&server(2, 5), &o).unwrap().version, 3);
        let o = Offer { min_version: 4, max_version: 9, ..Offer::default() };
        assert_eq!(negotiate(&server(2, 5), &o).unwrap().version, 5);
    }

    #[test]
    fn disjoint_versions_are_unsupported() {
        let o = Offer { min_version: 6, max_version: 9, ..Offer::default() };
        assert_eq!(negotiate(&server(2, 5), &o).unwrap_err().code, Code::Unsupported);
        let o = Offer { min_version: 3, max_version: 1, ..Offer::default() };
        assert_eq!(negotiate(&server(1, 5), &o).unwrap_err().code, Code::InvalidArgument);
    }

    #[test]
    fn features_are_intersected_and_required_ones_enforced() {
        let o = Offer {
            min_version: 1,
            max_version: 1,
            supported: vec!["b".into(), "z".into()],
            required: vec!["a".into()],
            ..Offer::default()
        };
        let got = negotiate(&server(1, 1), &o).unwrap();
        assert_eq!(got.enabled, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(got.available.len(), 2);
        let o = Offer { min_version: 1, max_version: 1, required: vec!["z".into()], ..Offer::default() };
        let e = negotiate(&server(1, 1), &o).unwrap_err();
        assert_eq!(e.code, Code::Unsupported);
        assert!(e.message.contains('z'));
    }
}
