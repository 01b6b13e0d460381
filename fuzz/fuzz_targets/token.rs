//! Tokens: `KeyRing::verify` with a fixed key, on the input as a token. The input is
//! also re-signed with that key (payload and caveats signed as a chain, as an
//! attenuating holder would), so the payload and caveat decoding behind the signature
//! check is reached too; the rights a token verifies to are checked and attenuated.
#![no_main]

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use ring::hmac;
use rpc_broker::token::{attenuate, Caveat, KeyRing, Scope};
use rpc_core::Code;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

fn keys() -> KeyRing {
    KeyRing::parse(&format!("k1:{}", dotdo_fuzz::TOKEN_SECRET), None).expect("the fixed key parses")
}

/// The input's dot-separated segments (all but the last), signed with the fixed key.
fn resign(token: &str) -> Option<String> {
    let (body, _) = token.rsplit_once('.')?;
    let secret = b64().decode(dotdo_fuzz::TOKEN_SECRET).ok()?;
    let mut key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
    let mut tag = None;
    for seg in body.split('.') {
        let t = hmac::sign(&key, seg.as_bytes());
        key = hmac::Key::new(hmac::HMAC_SHA256, t.as_ref());
        tag = Some(t);
    }
    Some(format!("{body}.{}", b64().encode(tag?.as_ref())))
}

fn check(ring: &KeyRing, token: &str) {
    match ring.verify(token, dotdo_fuzz::TOKEN_NOW) {
        Ok(rights) => {
            assert!(dotdo_fuzz::TOKEN_NOW < rights.expires_at, "a verified token is not expired");
            for (method, scope) in [("storage.get", Scope::Read), ("storage.create", Scope::Write), ("x", Scope::Admin)]
            {
                if rights.check(&rights.target.clone(), method, scope).is_ok() {
                    assert!(rights.allows_method(method));
                }
            }
            let _ = rights.methods();
            // Narrowing a verified token keeps it verifiable and never widens it.
            let caveat = Caveat { scope: Some(Scope::Read), ..Caveat::default() };
            if let Ok(narrower) = attenuate(token, &caveat) {
                if let Ok(r) = ring.verify(&narrower, dotdo_fuzz::TOKEN_NOW) {
                    assert!(r.scope <= rights.scope && r.scope <= Scope::Read);
                    assert!(r.expires_at <= rights.expires_at);
                }
            }
        }
        Err(e) => assert!(
            matches!(e.code, Code::Malformed | Code::InvalidSignature | Code::Expired | Code::InvalidArgument),
            "unexpected refusal: {e:?}"
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    thread_local! {
        static RING: KeyRing = keys();
    }
    RING.with(|ring| {
        check(ring, token);
        if let Some(signed) = resign(token) {
            check(ring, &signed);
        }
    });
});
