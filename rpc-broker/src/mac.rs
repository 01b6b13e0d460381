//! The broker's cryptography: HMAC-SHA256, SHA-256 and random bytes, in pure Rust
//! (RustCrypto's `hmac` and `sha2`, `getrandom`), so tokens are minted and checked the
//! same way natively and inside a Cloudflare Worker (wasm32, where `ring` would need a
//! C compiler for the target).

use hmac::{Hmac, Mac};
use rpc_core::{Code, RpcError};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `msg` under `key`.
pub fn sign(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length: new_from_slice cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// Whether `tag` is the HMAC-SHA256 of `msg` under `key`, compared in constant time.
pub fn verify(key: &[u8], msg: &[u8], tag: &[u8]) -> bool {
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else { return false };
    mac.update(msg);
    mac.verify_slice(tag).is_ok()
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// `N` bytes from the system's random source (`crypto.getRandomValues` in a Worker);
/// INTERNAL when it fails.
pub fn random<const N: usize>() -> Result<[u8; N], RpcError> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b)
        .map_err(|e| RpcError::new(Code::Internal, format!("the random source failed: {e}")))?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        let tag = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex(&tag), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(verify(b"Jefe", b"what do ya want for nothing?", &tag));
        let mut bad = tag;
        bad[31] ^= 1;
        assert!(!verify(b"Jefe", b"what do ya want for nothing?", &bad));
        assert!(!verify(b"Jefe", b"what do ya want for nothing?", &tag[..31]), "a short tag is refused");
    }

    #[test]
    fn sha256_matches_the_standard_vector() {
        assert_eq!(hex(&sha256(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn random_bytes_differ() {
        assert_ne!(random::<16>().unwrap(), random::<16>().unwrap());
    }
}
