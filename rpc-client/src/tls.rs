//! TLS for `wss://` and `https://` (rustls, with ring). The roots are the platform's
//! (`rustls-native-certs`: the system store, or `SSL_CERT_FILE` / `SSL_CERT_DIR`) plus
//! the PEM certificates of the file named by `DOTDO_CA_FILE`, if set; a program (or a
//! test) can pass its own with [`config_with_roots_pem`] in [`crate::Options::tls`].

use rpc_core::{Code, RpcError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncRead, AsyncWrite};

/// A TLS client configuration (cheap to clone).
pub type TlsConfig = Arc<ClientConfig>;

fn config(roots: RootCertStore) -> Result<TlsConfig, RpcError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RpcError::new(Code::Internal, format!("TLS configuration: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn add_pem(roots: &mut RootCertStore, pem: &[u8], what: &str) -> Result<usize, RpcError> {
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| RpcError::invalid_argument(format!("{what}: not PEM certificates: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| RpcError::invalid_argument(format!("{what}: a certificate is not usable as a root: {e}")))?;
        added += 1;
    }
    if added == 0 {
        return Err(RpcError::invalid_argument(format!("{what} holds no PEM certificate")));
    }
    Ok(added)
}

/// A configuration trusting the certificates of `pem` (and the platform's roots too
/// when `with_platform`). INVALID_ARGUMENT when `pem` holds no usable certificate.
pub fn config_with_roots_pem(pem: &[u8], with_platform: bool) -> Result<TlsConfig, RpcError> {
    let mut roots = if with_platform { platform_roots() } else { RootCertStore::empty() };
    add_pem(&mut roots, pem, "the given roots")?;
    config(roots)
}

fn platform_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    roots
}

/// The default configuration: the platform's roots and `DOTDO_CA_FILE`'s, read once.
pub fn default_config() -> Result<TlsConfig, RpcError> {
    static DEFAULT: OnceLock<Result<TlsConfig, RpcError>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let mut roots = platform_roots();
            if let Some(path) = std::env::var_os("DOTDO_CA_FILE").filter(|p| !p.is_empty()) {
                let pem = std::fs::read(&path).map_err(|e| {
                    RpcError::invalid_argument(format!("DOTDO_CA_FILE {}: {e}", path.to_string_lossy()))
                })?;
                add_pem(&mut roots, &pem, "DOTDO_CA_FILE")?;
            }
            config(roots)
        })
        .clone()
}

/// The host part of `authority` (`host:port`, `[v6]:port`), as TLS names it.
pub fn server_name(authority: &str) -> Result<ServerName<'static>, RpcError> {
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| RpcError::invalid_argument(format!("{host:?} is not a name TLS can check: {e}")))
}

/// Runs the TLS handshake over `stream` with the server at `authority`. A failed
/// handshake (an untrusted or mismatched certificate, a server that does not speak
/// TLS) is DISCONNECTED, with rustls' reason.
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    config: &TlsConfig,
    authority: &str,
    stream: S,
) -> Result<tokio_rustls::client::TlsStream<S>, RpcError> {
    let name = server_name(authority)?;
    tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, stream)
        .await
        .map_err(|e| RpcError::new(Code::Disconnected, format!("TLS with {authority} failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_authority_and_bad_roots_are_refused() {
        assert_eq!(server_name("example.com:443").expect("dns").to_str(), "example.com");
        assert!(matches!(server_name("127.0.0.1:8787").expect("ip"), ServerName::IpAddress(_)));
        assert!(matches!(server_name("[::1]:8787").expect("v6"), ServerName::IpAddress(_)));
        assert_eq!(config_with_roots_pem(b"not pem", false).map(|_| ()).unwrap_err().code, Code::InvalidArgument);
    }
}
