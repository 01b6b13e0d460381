//! Capability tokens: `base64url(payload).base64url(signature)`, HMAC-SHA256 (`ring`),
//! no padding, with macaroon-style attenuation.
//!
//! The payload (JSON) names the target object, the methods (`storage.get`, `storage.*`,
//! `*`), the scope (`read` < `write` < `admin`), expiry and issue times (ms since the
//! epoch), the subject, a unique token id and the signing key's id.
//!
//! Any holder can narrow a token without the key: [`attenuate`] appends a caveat
//! (fewer methods, a lower scope, an earlier expiry) and replaces the signature with
//! `HMAC(old signature, caveat)`. The token becomes
//! `payload.caveat1...caveatN.signature`. Verification recomputes the chain from the
//! key; removing or changing a caveat breaks it, and caveats can only narrow (the
//! effective rights are the intersection of all of them), so nobody can widen a token.
//!
//! ```
//! use rpc_broker::token::{attenuate, Caveat, KeyRing, MintRequest, Scope};
//! let keys = KeyRing::parse("k1:c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", None).unwrap();
//! let t = keys.mint(&MintRequest { target: "Customer/acme".into(), methods: vec!["storage.*".into()],
//!     scope: Scope::Write, ttl_ms: 60_000, subject: "ann".into(), namespace: "default".into() }, 1_000, "t1").unwrap();
//! let narrow = attenuate(&t, &Caveat { methods: Some(vec!["storage.get".into()]), scope: Some(Scope::Read), expires_at: None }).unwrap();
//! let rights = keys.verify(&narrow, 2_000).unwrap();
//! assert!(rights.check("Customer/acme", "storage.get", Scope::Read).is_ok());
//! let refused = rights.check("Customer/acme", "storage.create", Scope::Write).unwrap_err();
//! assert_eq!(refused.code, rpc_core::Code::Forbidden);
//! ```

use crate::mac;
use base64::Engine as _;
use rpc_core::{Code, RpcError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest token accepted.
pub const MAX_TOKEN_BYTES: usize = 8 << 10;
/// Most caveats one token may carry.
pub const MAX_CAVEATS: usize = 16;
/// Shortest signing key.
pub const MIN_KEY_BYTES: usize = 32;
/// Longest lifetime a token is minted with (one year); a longer `ttl_ms` is capped to it,
/// so no token lives forever.
pub const MAX_TTL_MS: u64 = 365 * 24 * 3600 * 1000;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// A fresh token id: 16 bytes from the system's random source, in hex. INTERNAL when
/// the source fails.
pub fn new_token_id() -> Result<String, RpcError> {
    token_id_from(mac::random::<16>())
}

/// The id made of `bytes`, or the refusal when the random source failed.
fn token_id_from(bytes: Result<[u8; 16], RpcError>) -> Result<String, RpcError> {
    let b = bytes.map_err(|e| err(Code::Internal, format!("{}: no token id, no token", e.message)))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn err(code: Code, msg: impl Into<String>) -> RpcError {
    RpcError::new(code, msg)
}

/// What a token lets its holder do, least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Methods that only read.
    Read,
    /// Methods that change state.
    Write,
    /// Everything, including methods without a declared scope.
    Admin,
}

impl Scope {
    /// Parses `read`, `write` or `admin`.
    pub fn parse(s: &str) -> Result<Scope, RpcError> {
        match s {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "admin" => Ok(Scope::Admin),
            other => Err(err(Code::InvalidArgument, format!("scope {other:?} is not read, write or admin"))),
        }
    }

    /// The name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// What to mint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRequest {
    /// The object: `Class/name`.
    pub target: String,
    /// Method patterns: `storage.get`, `storage.*`, `*`.
    pub methods: Vec<String>,
    /// The scope.
    pub scope: Scope,
    /// Lifetime in ms (capped to [`MAX_TTL_MS`]).
    pub ttl_ms: u64,
    /// Who the token is for.
    pub subject: String,
    /// The namespace the target lives in.
    pub namespace: String,
}

fn default_namespace() -> String {
    "default".to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Payload {
    #[serde(default = "default_namespace")]
    ns: String,
    tgt: String,
    m: Vec<String>,
    scope: Scope,
    exp: i64,
    iat: i64,
    sub: String,
    jti: String,
    kid: String,
}

/// A restriction appended by [`attenuate`]; every field narrows, none widens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Caveat {
    /// Only these method patterns (intersected with the token's).
    #[serde(rename = "m", skip_serializing_if = "Option::is_none", default)]
    pub methods: Option<Vec<String>>,
    /// At most this scope.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scope: Option<Scope>,
    /// Expires no later than this (ms since the epoch).
    #[serde(rename = "exp", skip_serializing_if = "Option::is_none", default)]
    pub expires_at: Option<i64>,
}

/// The effective rights of a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rights {
    /// The namespace of the object it opens.
    pub namespace: String,
    /// The object it opens.
    pub target: String,
    /// Every method list it carries; a method must be allowed by each.
    method_lists: Vec<Vec<String>>,
    /// The lowest scope of the payload and caveats.
    pub scope: Scope,
    /// The earliest expiry.
    pub expires_at: i64,
    /// When it was minted.
    pub issued_at: i64,
    /// Who it is for.
    pub subject: String,
    /// Its unique id (for revocation).
    pub token_id: String,
    /// The key that signed it.
    pub key_id: String,
}

fn covers(pattern: &str, method: &str) -> bool {
    pattern == "*"
        || pattern == method
        || pattern.strip_suffix(".*").is_some_and(|iface| method.split_once('.').is_some_and(|(i, _)| i == iface))
}

impl Rights {
    /// Whether `method` (`interface.method`) is allowed by every method list.
    pub fn allows_method(&self, method: &str) -> bool {
        self.method_lists.iter().all(|list| list.iter().any(|p| covers(p, method)))
    }

    /// The effective method patterns: every pattern of any list that all lists allow
    /// (a pattern is allowed by a list when the list covers it).
    pub fn methods(&self) -> Vec<String> {
        let allowed = |p: &str| {
            self.method_lists.iter().all(|list| {
                list.iter().any(|q| match p.strip_suffix(".*") {
                    // `iface.*` is allowed only by `*` or `iface.*` itself.
                    Some(_) => q == "*" || q == p,
                    None if p == "*" => q == "*",
                    None => covers(q, p),
                })
            })
        };
        let mut out: Vec<String> =
            self.method_lists.iter().flatten().filter(|p| allowed(p)).cloned().collect::<Vec<_>>();
        out.sort();
        out.dedup();
        out
    }

    /// Checks a call of `method` needing `needed` on `target`: WRONG_TARGET, FORBIDDEN
    /// (method not allowed) or INSUFFICIENT_SCOPE when it may not.
    pub fn check(&self, target: &str, method: &str, needed: Scope) -> Result<(), RpcError> {
        if self.target != target {
            return Err(err(Code::WrongTarget, format!("the token is for {}, not {target}", self.target)));
        }
        if !self.allows_method(method) {
            return Err(err(Code::Forbidden, format!("the token does not allow {method}")));
        }
        if self.scope < needed {
            return Err(err(
                Code::InsufficientScope,
                format!("{method} needs scope {}, the token has {}", needed.as_str(), self.scope.as_str()),
            ));
        }
        Ok(())
    }
}

fn check_methods(methods: &[String]) -> Result<(), RpcError> {
    if methods.is_empty() || methods.len() > 64 {
        return Err(err(Code::InvalidArgument, "a token needs 1 to 64 method patterns"));
    }
    for m in methods {
        let ok = m == "*"
            || m.split_once('.').is_some_and(|(i, f)| {
                !i.is_empty()
                    && i.chars().all(|c| c.is_ascii_alphanumeric())
                    && (f == "*" || (!f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric())))
            });
        if !ok {
            return Err(err(
                Code::InvalidArgument,
                format!("method pattern {m:?} is not `*`, `iface.*` or `iface.method`"),
            ));
        }
    }
    Ok(())
}

/// Signing keys by id: one active for minting, the others still verifying until removed.
#[derive(Clone, Default)]
pub struct KeyRing {
    keys: BTreeMap<String, Vec<u8>>,
    active: Option<String>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .finish()
    }
}

fn check_kid(kid: &str) -> Result<(), RpcError> {
    if kid.is_empty() || kid.len() > 32 || !kid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(err(Code::InvalidArgument, format!("key id {kid:?}: 1-32 of A-Z a-z 0-9 - _")));
    }
    Ok(())
}

impl KeyRing {
    /// Parses `kid:base64url-secret,kid2:...`; `active` names the minting key (default: the
    /// last listed). Secrets must be at least 32 bytes.
    pub fn parse(spec: &str, active: Option<&str>) -> Result<KeyRing, RpcError> {
        let mut ring = KeyRing::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (kid, secret) = item
                .split_once(':')
                .ok_or_else(|| err(Code::InvalidArgument, "keys are written kid:base64url-secret"))?;
            ring.add(kid, secret)?;
        }
        if let Some(a) = active {
            if !ring.keys.contains_key(a) {
                return Err(err(Code::InvalidArgument, format!("the active key {a:?} is not among the keys")));
            }
            ring.active = Some(a.to_string());
        }
        Ok(ring)
    }

    /// Reads `{"active": "k2", "keys": {"k1": "...", "k2": "..."}}`.
    pub fn from_json(text: &str) -> Result<KeyRing, RpcError> {
        #[derive(Deserialize)]
        struct File {
            active: Option<String>,
            keys: BTreeMap<String, String>,
        }
        let f: File = serde_json::from_str(text).map_err(|e| err(Code::InvalidArgument, format!("key file: {e}")))?;
        let spec: Vec<String> = f.keys.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        let mut ring = KeyRing::parse(&spec.join(","), f.active.as_deref())?;
        if ring.active.is_none() {
            ring.active = f.keys.keys().last().cloned();
        }
        Ok(ring)
    }

    /// Keys from `DOTDO_TOKEN_KEY_FILE` (a JSON key file) or `DOTDO_TOKEN_KEYS` with
    /// `DOTDO_TOKEN_ACTIVE_KEY`; empty (minting and verifying give SECRET_REQUIRED) when
    /// neither is set.
    pub fn from_env() -> Result<KeyRing, RpcError> {
        if let Ok(path) = std::env::var("DOTDO_TOKEN_KEY_FILE") {
            let text =
                std::fs::read_to_string(&path).map_err(|e| err(Code::InvalidArgument, format!("{path}: {e}")))?;
            return KeyRing::from_json(&text);
        }
        match std::env::var("DOTDO_TOKEN_KEYS") {
            Ok(spec) => KeyRing::parse(&spec, std::env::var("DOTDO_TOKEN_ACTIVE_KEY").ok().as_deref()),
            Err(_) => Ok(KeyRing::default()),
        }
    }

    /// Adds (or replaces) a key; it becomes the active one.
    pub fn add(&mut self, kid: &str, secret_b64: &str) -> Result<(), RpcError> {
        check_kid(kid)?;
        let secret = b64()
            .decode(secret_b64.trim())
            .map_err(|_| err(Code::InvalidArgument, format!("key {kid}: the secret is not base64url")))?;
        if secret.len() < MIN_KEY_BYTES {
            return Err(err(
                Code::InvalidArgument,
                format!("key {kid}: a secret needs at least {MIN_KEY_BYTES} bytes"),
            ));
        }
        self.keys.insert(kid.to_string(), secret);
        self.active = Some(kid.to_string());
        Ok(())
    }

    /// Removes a key: tokens it signed stop verifying.
    pub fn remove(&mut self, kid: &str) {
        self.keys.remove(kid);
        if self.active.as_deref() == Some(kid) {
            self.active = self.keys.keys().last().cloned();
        }
    }

    /// Makes `kid` the minting key.
    pub fn set_active(&mut self, kid: &str) -> Result<(), RpcError> {
        if !self.keys.contains_key(kid) {
            return Err(err(Code::InvalidArgument, format!("no key {kid:?}")));
        }
        self.active = Some(kid.to_string());
        Ok(())
    }

    /// A fresh random key: `(kid, base64url secret)`.
    pub fn generate() -> Result<(String, String), RpcError> {
        let secret = mac::random::<32>()?;
        let id = mac::random::<4>()?;
        let kid = format!("k{}", id.iter().map(|b| format!("{b:02x}")).collect::<String>());
        Ok((kid, b64().encode(secret)))
    }

    /// Mints a token at time `now` with a fresh random id ([`new_token_id`]); a failure
    /// of the random source fails the mint (INTERNAL), it never falls back to a guessable id.
    pub fn mint_new(&self, req: &MintRequest, now: i64) -> Result<String, RpcError> {
        self.mint(req, now, &new_token_id()?)
    }

    /// Mints a token at time `now` with id `token_id`, signed by the active key.
    pub fn mint(&self, req: &MintRequest, now: i64, token_id: &str) -> Result<String, RpcError> {
        let kid = self.active.as_ref().ok_or_else(|| {
            err(Code::SecretRequired, "no signing key is configured (DOTDO_TOKEN_KEYS or a key file)")
        })?;
        let key = self.keys.get(kid).ok_or_else(|| err(Code::SecretRequired, "the active key is missing"))?;
        check_methods(&req.methods)?;
        if req.target.is_empty() || req.target.len() > 300 {
            return Err(err(Code::InvalidArgument, "a target is Class/name"));
        }
        let payload = Payload {
            ns: req.namespace.clone(),
            tgt: req.target.clone(),
            m: req.methods.clone(),
            scope: req.scope,
            exp: now.saturating_add(i64::try_from(req.ttl_ms.min(MAX_TTL_MS)).unwrap_or(i64::MAX)),
            iat: now,
            sub: req.subject.clone(),
            jti: token_id.to_string(),
            kid: kid.clone(),
        };
        let head = b64().encode(serde_json::to_vec(&payload).map_err(|e| err(Code::Internal, e.to_string()))?);
        let sig = mac::sign(key, head.as_bytes());
        Ok(format!("{head}.{}", b64().encode(sig)))
    }

    /// Verifies a token at time `now` and returns its effective rights; MALFORMED,
    /// SECRET_REQUIRED, INVALID_SIGNATURE (tampered or unknown key) or EXPIRED otherwise.
    /// (Revocation is the broker's: it keeps the revoked token ids.)
    pub fn verify(&self, token: &str, now: i64) -> Result<Rights, RpcError> {
        if self.keys.is_empty() {
            return Err(err(Code::SecretRequired, "no verification key is configured"));
        }
        let parts = split(token)?;
        let payload: Payload = decode_json(parts.segments[0])?;
        let key = self
            .keys
            .get(&payload.kid)
            .ok_or_else(|| err(Code::InvalidSignature, format!("unknown key id {:?}", payload.kid)))?;
        let sig = b64().decode(parts.signature).map_err(|_| err(Code::Malformed, "the signature is not base64url"))?;
        // sig_0 = HMAC(key, payload); sig_i = HMAC(sig_{i-1}, caveat_i); the last is checked
        // in constant time.
        let (last, earlier) = parts.segments.split_last().ok_or_else(|| err(Code::Malformed, "no payload"))?;
        let mut chain_key = key.clone();
        for seg in earlier {
            chain_key = mac::sign(&chain_key, seg.as_bytes()).to_vec();
        }
        if !mac::verify(&chain_key, last.as_bytes(), &sig) {
            return Err(err(Code::InvalidSignature, "the token's signature does not match"));
        }
        let mut rights = Rights {
            namespace: payload.ns,
            target: payload.tgt,
            method_lists: vec![payload.m],
            scope: payload.scope,
            expires_at: payload.exp,
            issued_at: payload.iat,
            subject: payload.sub,
            token_id: payload.jti,
            key_id: payload.kid,
        };
        for seg in &parts.segments[1..] {
            let c: Caveat = decode_json(seg)?;
            if let Some(m) = c.methods {
                rights.method_lists.push(m);
            }
            if let Some(s) = c.scope {
                rights.scope = rights.scope.min(s);
            }
            if let Some(e) = c.expires_at {
                rights.expires_at = rights.expires_at.min(e);
            }
        }
        if now >= rights.expires_at {
            return Err(err(Code::Expired, format!("the token expired at {}", rights.expires_at)));
        }
        Ok(rights)
    }
}

struct Parts<'a> {
    segments: Vec<&'a str>,
    signature: &'a str,
}

fn split(token: &str) -> Result<Parts<'_>, RpcError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(err(Code::Malformed, format!("a token is at most {MAX_TOKEN_BYTES} bytes")));
    }
    let mut all: Vec<&str> = token.trim().split('.').collect();
    if all.len() < 2 || all.len() > MAX_CAVEATS + 2 || all.iter().any(|s| s.is_empty()) {
        return Err(err(Code::Malformed, "a token is payload[.caveat...].signature"));
    }
    let signature = all.pop().unwrap_or_default();
    Ok(Parts { segments: all, signature })
}

fn decode_json<T: serde::de::DeserializeOwned>(seg: &str) -> Result<T, RpcError> {
    let raw = b64().decode(seg).map_err(|_| err(Code::Malformed, "a token segment is not base64url"))?;
    serde_json::from_slice(&raw).map_err(|e| err(Code::Malformed, format!("a token segment is not valid: {e}")))
}

/// Narrows a token without its key (see the module docs). The caveat's method patterns
/// must be well-formed; a caveat that narrows nothing is refused.
pub fn attenuate(token: &str, caveat: &Caveat) -> Result<String, RpcError> {
    if caveat == &Caveat::default() {
        return Err(err(Code::InvalidArgument, "a caveat must restrict methods, scope or expiry"));
    }
    if let Some(m) = &caveat.methods {
        check_methods(m)?;
    }
    let parts = split(token)?;
    if parts.segments.len() > MAX_CAVEATS {
        return Err(err(Code::Malformed, format!("a token carries at most {MAX_CAVEATS} caveats")));
    }
    let sig = b64().decode(parts.signature).map_err(|_| err(Code::Malformed, "the signature is not base64url"))?;
    let seg = b64().encode(serde_json::to_vec(caveat).map_err(|e| err(Code::Internal, e.to_string()))?);
    let next = mac::sign(&sig, seg.as_bytes());
    Ok(format!("{}.{seg}.{}", parts.segments.join("."), b64().encode(next)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";

    fn keys() -> KeyRing {
        KeyRing::parse(&format!("k1:{SECRET}"), None).unwrap()
    }

    #[test]
    fn two_mints_in_the_same_millisecond_get_different_ids() {
        let req = MintRequest {
            target: "Customer/acme".into(),
            methods: vec!["*".into()],
            scope: Scope::Read,
            ttl_ms: 1_000,
            subject: String::new(),
            namespace: "default".into(),
        };
        let (a, b) = (keys().mint_new(&req, 1_000).unwrap(), keys().mint_new(&req, 1_000).unwrap());
        let (a, b) = (keys().verify(&a, 1_500).unwrap(), keys().verify(&b, 1_500).unwrap());
        assert_ne!(a.token_id, b.token_id);
        assert_eq!(a.token_id.len(), 32, "16 random bytes in hex");
    }

    #[test]
    fn a_failing_random_source_fails_the_mint() {
        let e = token_id_from(Err(RpcError::new(Code::Internal, "the random source failed"))).unwrap_err();
        assert_eq!(e.code, Code::Internal);
        assert_eq!(token_id_from(Ok([0xab; 16])).unwrap(), "ab".repeat(16));
    }

    fn mint(methods: &[&str], scope: Scope) -> String {
        let req = MintRequest {
            target: "Customer/acme".into(),
            methods: methods.iter().map(std::string::ToString::to_string).collect(),
            scope,
            ttl_ms: 10_000,
            subject: "ann".into(),
            namespace: "default".into(),
        };
        keys().mint(&req, 1_000, "t1").unwrap()
    }

    #[test]
    fn each_refusal_has_its_code() {
        let t = mint(&["storage.*"], Scope::Read);
        let r = keys().verify(&t, 2_000).unwrap();
        assert!(r.check("Customer/acme", "storage.get", Scope::Read).is_ok());
        assert_eq!(r.check("Customer/other", "storage.get", Scope::Read).unwrap_err().code, Code::WrongTarget);
        assert_eq!(r.check("Customer/acme", "events.send", Scope::Read).unwrap_err().code, Code::Forbidden);
        assert_eq!(r.check("Customer/acme", "storage.create", Scope::Write).unwrap_err().code, Code::InsufficientScope);
        assert_eq!(keys().verify(&t, 20_000).unwrap_err().code, Code::Expired);
        assert_eq!(KeyRing::default().verify(&t, 2_000).unwrap_err().code, Code::SecretRequired);
        assert_eq!(keys().verify("garbage", 2_000).unwrap_err().code, Code::Malformed);
        assert_eq!(keys().verify("a.b", 2_000).unwrap_err().code, Code::Malformed);
        // Tampered payload and tampered signature.
        let (head, sig) = t.split_once('.').unwrap();
        let mut payload: serde_json::Value = serde_json::from_slice(&b64().decode(head).unwrap()).unwrap();
        payload["scope"] = "admin".into();
        let forged = format!("{}.{sig}", b64().encode(payload.to_string()));
        assert_eq!(keys().verify(&forged, 2_000).unwrap_err().code, Code::InvalidSignature);
        let mut bad_sig = b64().decode(sig).unwrap();
        bad_sig[0] ^= 1;
        assert_eq!(
            keys().verify(&format!("{head}.{}", b64().encode(bad_sig)), 2_000).unwrap_err().code,
            Code::InvalidSignature
        );
        let other = KeyRing::parse(&format!("k2:{SECRET}"), None).unwrap();
        assert_eq!(other.verify(&t, 2_000).unwrap_err().code, Code::InvalidSignature, "unknown key id");
        assert_eq!(
            KeyRing::default()
                .mint(
                    &MintRequest {
                        target: "a/b".into(),
                        methods: vec!["*".into()],
                        scope: Scope::Read,
                        ttl_ms: 1,
                        subject: String::new(),
                        namespace: "default".into(),
                    },
                    0,
                    "x"
                )
                .unwrap_err()
                .code,
            Code::SecretRequired
        );
    }

    #[test]
    fn no_token_lives_longer_than_the_ttl_cap() {
        let req = MintRequest {
            target: "Customer/acme".into(),
            methods: vec!["*".into()],
            scope: Scope::Read,
            ttl_ms: u64::MAX,
            subject: "ann".into(),
            namespace: "default".into(),
        };
        let t = keys().mint(&req, 1_000, "t1").unwrap();
        let cap = i64::try_from(MAX_TTL_MS).unwrap();
        assert!(keys().verify(&t, 1_000 + cap - 1).is_ok(), "alive until the cap");
        assert_eq!(keys().verify(&t, 1_000 + cap + 1).unwrap_err().code, Code::Expired, "then expired");
    }

    #[test]
    fn rotation_keeps_old_tokens_until_their_key_is_removed() {
        let mut ring = keys();
        let old = mint(&["*"], Scope::Admin);
        let (kid, secret) = KeyRing::generate().unwrap();
        ring.add(&kid, &secret).unwrap();
        let new = ring
            .mint(
                &MintRequest {
                    target: "Customer/acme".into(),
                    methods: vec!["*".into()],
                    scope: Scope::Read,
                    ttl_ms: 10_000,
                    subject: "b".into(),
                    namespace: "default".into(),
                },
                1_000,
                "t2",
            )
            .unwrap();
        assert_eq!(ring.verify(&new, 2_000).unwrap().key_id, kid);
        assert_eq!(ring.verify(&old, 2_000).unwrap().key_id, "k1");
        ring.remove("k1");
        assert_eq!(ring.verify(&old, 2_000).unwrap_err().code, Code::InvalidSignature);
        assert!(ring.verify(&new, 2_000).is_ok());
    }

    #[test]
    fn verify_reports_the_intersection_of_method_lists() {
        let t = mint(&["storage.get", "events.*"], Scope::Read);
        let a = attenuate(
            &t,
            &Caveat { methods: Some(vec!["storage.*".into(), "events.list".into()]), ..Caveat::default() },
        )
        .unwrap();
        let r = keys().verify(&a, 2_000).unwrap();
        assert_eq!(r.methods(), vec!["events.list".to_string(), "storage.get".to_string()]);
        assert!(r.allows_method("storage.get") && r.allows_method("events.list") && !r.allows_method("events.send"));
    }

    #[test]
    fn removing_or_changing_a_caveat_breaks_the_token() {
        let t = mint(&["*"], Scope::Admin);
        let a = attenuate(&t, &Caveat { scope: Some(Scope::Read), ..Caveat::default() }).unwrap();
        assert_eq!(keys().verify(&a, 2_000).unwrap().scope, Scope::Read);
        let segs: Vec<&str> = a.split('.').collect();
        // Drop the caveat but keep the new signature.
        assert_eq!(keys().verify(&format!("{}.{}", segs[0], segs[2]), 2_000).unwrap_err().code, Code::InvalidSignature);
        // Swap in a wider caveat.
        let wide =
            b64().encode(serde_json::to_vec(&Caveat { scope: Some(Scope::Admin), ..Caveat::default() }).unwrap());
        assert_eq!(
            keys().verify(&format!("{}.{wide}.{}", segs[0], segs[2]), 2_000).unwrap_err().code,
            Code::InvalidSignature
        );
        assert_eq!(attenuate(&t, &Caveat::default()).unwrap_err().code, Code::InvalidArgument);
    }

    fn scope() -> impl Strategy<Value = Scope> {
        prop_oneof![Just(Scope::Read), Just(Scope::Write), Just(Scope::Admin)]
    }

    fn pattern() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_string()),
            Just("storage.*".to_string()),
            Just("events.*".to_string()),
            Just("storage.get".to_string()),
            Just("storage.create".to_string()),
            Just("events.send".to_string()),
        ]
    }

    fn caveat() -> impl Strategy<Value = Caveat> {
        (
            proptest::option::of(proptest::collection::vec(pattern(), 1..4)),
            proptest::option::of(scope()),
            proptest::option::of(0i64..20_000),
        )
            .prop_map(|(methods, scope, expires_at)| Caveat { methods, scope, expires_at })
            .prop_filter("a caveat restricts something", |c| c != &Caveat::default())
    }

    const METHODS: [&str; 5] = ["storage.get", "storage.create", "events.send", "events.list", "schedule.cancel"];

    proptest! {
        #[test]
        fn no_attenuation_widens_rights(base in proptest::collection::vec(pattern(), 1..4), s in scope(), caveats in proptest::collection::vec(caveat(), 0..5)) {
            let base_refs: Vec<&str> = base.iter().map(String::as_str).collect();
            let t0 = mint(&base_refs, s);
            let before = keys().verify(&t0, 2_000).unwrap();
            let mut t = t0;
            for c in &caveats {
                t = attenuate(&t, c).unwrap();
            }
            match keys().verify(&t, 2_000) {
                Ok(after) => {
                    prop_assert!(after.scope <= before.scope);
                    prop_assert!(after.expires_at <= before.expires_at);
                    prop_assert_eq!(&after.target, &before.target);
                    for m in METHODS {
                        prop_assert!(!after.allows_method(m) || before.allows_method(m), "{} widened", m);
                        for need in [Scope::Read, Scope::Write, Scope::Admin] {
                            prop_assert!(after.check("Customer/acme", m, need).is_err() || before.check("Customer/acme", m, need).is_ok());
                        }
                    }
                }
                // Narrowed to an expiry already past: that is narrower too.
                Err(e) => prop_assert_eq!(e.code, Code::Expired),
            }
        }
    }
}
