//! The broker's mint, redeem and verify; no hostile token opens or changes anything.

use super::storage::{keep_data, sentinel, KEEP};
use super::*;
use rpc_broker::token::{KeyRing, MintRequest, Scope};
use schema::object_capnp::storage;
use serde_json::Value;

const ADMIN: &str = "admin-secret-for-hostile-tests";
const K1: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";
const K2: &str = "YW5vdGhlci1zZWNyZXQtYW5vdGhlci1zZWNyZXQtYW5vdGhlcg";
const TARGET: &str = "Vault/v1";

/// One broker call.
enum Tok {
    /// redeem(token, target).storage().create(...).
    Write(String, &'static str),
    /// redeem(token).storage().count("{}").
    Read(String),
    Verify(String),
    Mint {
        key: &'static str,
        target: &'static str,
        methods: Vec<&'static str>,
        scope: &'static str,
    },
    Revoke(&'static str, &'static str),
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn local_mint(keys: &str, kid: &str, target: &str, methods: &[&str], scope: Scope, now: i64, ttl: u64) -> String {
    KeyRing::parse(keys, Some(kid))
        .expect("keys")
        .mint(
            &MintRequest {
                target: target.into(),
                methods: methods.iter().map(ToString::to_string).collect(),
                scope,
                ttl_ms: ttl,
                subject: "hostile".into(),
                namespace: "default".into(),
            },
            now,
            "hostile-local",
        )
        .expect("mint")
}

/// The cases, given a valid write token, a read token, a narrow token and a revoked one.
fn token_cases(write: &str, read: &str, only_get: &str, revoked: &str) -> Vec<(&'static str, Tok, Code)> {
    use Code::*;
    use Tok::*;
    let (head, sig) = write.split_once('.').expect("payload.signature");
    let mut flipped = sig.to_string();
    flipped.replace_range(0..1, if sig.starts_with('A') { "B" } else { "A" });
    let admin_head = {
        use base64::Engine;
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut p: Value = serde_json::from_slice(&b.decode(head).expect("b64")).expect("json");
        p["scope"] = "admin".into();
        p["tgt"] = "Vault/other".into();
        b64(p.to_string().as_bytes())
    };
    let mut no_kid: Value = serde_json::from_slice(&{
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(head).expect("b64")
    })
    .expect("json");
    no_kid["alg"] = "none".into();
    no_kid.as_object_mut().expect("object").remove("kid");
    let now = rpc_core::params::now_ms();
    let keys = format!("k1:{K1}");
    let expired = local_mint(&keys, "k1", TARGET, &["*"], Scope::Admin, 1_000, 1);
    let stranger = local_mint(&format!("k9:{K2}"), "k9", TARGET, &["*"], Scope::Admin, now, 60_000);
    let other_object = local_mint(&keys, "k1", "Vault/v2", &["*"], Scope::Admin, now, 60_000);
    let caveats = format!("{head}{}.{sig}", ".e30".repeat(40));
    vec![
        ("forged signature", Write(format!("{head}.{flipped}"), ""), InvalidSignature),
        ("payload widened, old signature", Write(format!("{admin_head}.{sig}"), ""), InvalidSignature),
        ("signed by an unknown key", Write(stranger, ""), InvalidSignature),
        ("payload only", Write(head.to_string(), ""), Malformed),
        ("signature cut off", Write(format!("{head}."), ""), Malformed),
        ("truncated payload", Write(format!("{}.{sig}", &head[..head.len() / 2]), ""), Malformed),
        ("payload not base64url", Write(format!("!!{head}.{sig}"), ""), Malformed),
        ("signature not base64url", Write(format!("{head}.{sig}!!"), ""), Malformed),
        ("payload not JSON", Write(format!("{}.{sig}", b64(b"{not json")), ""), Malformed),
        (
            "alg none, no key id",
            Write(format!("{}.{}", b64(no_kid.to_string().as_bytes()), b64(b"none")), ""),
            Malformed,
        ),
        ("empty token", Write(String::new(), ""), Malformed),
        ("40 caveats", Write(caveats, ""), Malformed),
        ("a 64 KiB token", Write(format!("{}.{sig}", "A".repeat(64 << 10)), ""), Malformed),
        ("expired", Write(expired, ""), Expired),
        ("for another object", Write(other_object, TARGET), WrongTarget),
        ("redeemed at another target", Write(write.to_string(), "Vault/v2"), WrongTarget),
        ("a method it does not allow", Write(only_get.to_string(), ""), Forbidden),
        ("read scope writing", Write(read.to_string(), ""), InsufficientScope),
        ("revoked", Read(revoked.to_string()), Revoked),
        ("verify garbage", Verify("a.b.c".into()), Malformed),
        ("verify forged", Verify(format!("{head}.{flipped}")), InvalidSignature),
        ("mint without the admin key", Mint { key: "", target: TARGET, methods: vec!["*"], scope: "admin" }, Forbidden),
        (
            "mint with a wrong admin key",
            Mint { key: "admin-secret-for-hostile-test", target: TARGET, methods: vec!["*"], scope: "admin" },
            Forbidden,
        ),
        ("mint scope root", Mint { key: ADMIN, target: TARGET, methods: vec!["*"], scope: "root" }, InvalidArgument),
        ("mint no methods", Mint { key: ADMIN, target: TARGET, methods: vec![], scope: "read" }, InvalidArgument),
        ("mint empty target", Mint { key: ADMIN, target: "", methods: vec!["*"], scope: "read" }, InvalidArgument),
        ("revoke without the admin key", Revoke("wrong", "some-id"), Forbidden),
    ]
}

async fn redeemed(g: &schema::session_capnp::gateway::Client, token: &str, target: &str) -> storage::Client {
    let mut redeem = broker_of(g, "").redeem_request();
    redeem.get().set_token(token);
    redeem.get().set_target(target);
    redeem.send().pipeline.get_object().storage_request().send().pipeline.get_storage()
}

async fn run_tok(url: &str, op: &Tok) -> Result<(), RpcError> {
    let session = connect_any(url).await?;
    let g = &session.bootstrap;
    match op {
        Tok::Write(token, target) => {
            let mut r = redeemed(g, token, target).await.create_request();
            r.get().set_type("Note");
            r.get().set_data("{\"by\": \"hostile\"}");
            r.send().promise.await?;
        }
        Tok::Read(token) => {
            let mut r = redeemed(g, token, "").await.count_request();
            r.get().set_query("{}");
            r.send().promise.await?;
        }
        Tok::Verify(token) => {
            let mut r = broker_of(g, "").verify_request();
            r.get().set_token(token.as_str());
            r.send().promise.await?;
        }
        Tok::Mint { key, target, methods, scope } => {
            let mut r = broker_of(g, key).mint_request();
            let mut m = r.get().init_request();
            m.set_target(*target);
            m.set_scope(*scope);
            m.set_ttl_ms(60_000);
            let mut list = m.init_methods(methods.len() as u32);
            for (i, x) in methods.iter().enumerate() {
                list.set(i as u32, *x);
            }
            r.send().promise.await?;
        }
        Tok::Revoke(key, id) => {
            let mut r = broker_of(g, key).revoke_request();
            r.get().set_token_id(*id);
            r.send().promise.await?;
        }
    }
    Ok(())
}

#[test]
fn hostile_tokens_get_typed_refusals_and_open_nothing() {
    let dir = data_dir("hostile-tokens");
    let s = broker_server(&dir, &format!("k1:{K1}"), "k1", ADMIN);
    let ws = format!("ws://{}/rpc", s.http_addr);
    let http = format!("http://{}/rpc", s.http_addr);
    let mut failures = Vec::new();
    let mut n = 0;
    rpc_client::run(async {
        let session = connect_any(&ws).await.expect("connect");
        let g = &session.bootstrap;
        let keys = format!("k1:{K1}");
        let now = rpc_core::params::now_ms();
        let admin = local_mint(&keys, "k1", TARGET, &["*"], Scope::Admin, now, 600_000);
        let write = local_mint(&keys, "k1", TARGET, &["storage.*"], Scope::Write, now, 600_000);
        let read = local_mint(&keys, "k1", TARGET, &["storage.*"], Scope::Read, now, 600_000);
        let only_get = local_mint(&keys, "k1", TARGET, &["storage.get"], Scope::Write, now, 600_000);
        let revoked = {
            let mut mint = broker_of(g, ADMIN).mint_request();
            let mut m = mint.get().init_request();
            m.set_target(TARGET);
            m.set_scope("read");
            m.set_ttl_ms(600_000);
            m.init_methods(1).set(0, "*");
            let t = mint.send().promise.await.expect("mint");
            let t = t.get().expect("results").get_token().expect("token").to_string().expect("UTF-8");
            let mut verify = broker_of(g, "").verify_request();
            verify.get().set_token(&t);
            let claims = verify.send().promise.await.expect("verify");
            let id = claims.get().expect("claims").get_claims().expect("claims").get_token_id().expect("id");
            let mut revoke = broker_of(g, ADMIN).revoke_request();
            revoke.get().set_token_id(id.to_str().expect("UTF-8"));
            revoke.send().promise.await.expect("revoke");
            t
        };
        let vault = redeemed(g, &admin, "").await;
        let mut create = vault.create_request();
        create.get().set_type("Note");
        create.get().set_id(KEEP);
        create.get().set_data(keep_data().to_string());
        create.send().promise.await.expect("the sentinel is written");
        let before = sentinel(&vault).await.expect("sentinel");
        let cases = token_cases(&write, &read, &only_get, &revoked);
        n = cases.len();
        for (name, op, want) in &cases {
            for url in [&ws, &http] {
                let got = match within(name, run_tok(url, op)).await {
                    Ok(()) => Err("the call succeeded".to_string()),
                    Err(e) => Ok(e.code),
                };
                // A fresh redeem of the admin token still reads the same data.
                let intact =
                    match sentinel(&redeemed(&connect_any(url).await.expect("c").bootstrap, &admin, "").await).await {
                        Ok(now) if now == before => Ok(()),
                        Ok(now) => Err(format!("the object changed: {now:?}, was {before:?}")),
                        Err(e) => Err(format!("a valid token no longer works: {e}")),
                    };
                let kind = if url.starts_with("ws") { "ws" } else { "http" };
                check(&mut failures, &format!("{kind}: {name}"), got, *want, intact);
            }
        }
    });
    report("tokens", failures, n);
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}
