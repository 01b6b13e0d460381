//! The broker over WebSocket and HTTP against a real server: mint, redeem, call through
//! the membrane; every refusal with its code; attenuation; key rotation; revocation;
//! the shard router; fan-out queries; metrics.

mod common;

use common::*;
use rpc_broker::token::{attenuate, Caveat, KeyRing, MintRequest, Scope};
use rpc_core::params::now_ms;
use rpc_core::{Code, Limits, RpcError};
use schema::session_capnp::gateway;
use serde_json::json;
use std::time::Duration;

const ADMIN: &str = "admin-secret-for-tests";
const K1: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";
const K2: &str = "YW5vdGhlci1zZWNyZXQtYW5vdGhlci1zZWNyZXQtYW5vdGhlcg";

fn start(dir: &std::path::Path, keys: &str, active: &str) -> rpc_server::ServerHandle {
    start_with(dir, keys, active, false)
}

fn start_with(dir: &std::path::Path, keys: &str, active: &str, require_tokens: bool) -> rpc_server::ServerHandle {
    broker_server_with(dir, keys, active, ADMIN, require_tokens)
}

async fn mint(url: &str, target: &str, methods: &[&str], scope: &str, ttl_ms: u64) -> Result<String, RpcError> {
    let session = connect_any(url).await?;
    let mut req = broker_of(&session.bootstrap, ADMIN).mint_request();
    {
        let mut r = req.get().init_request();
        r.set_target(target);
        r.set_scope(scope);
        r.set_ttl_ms(ttl_ms);
        r.set_subject("tester");
        let mut m = r.init_methods(methods.len() as u32);
        for (i, x) in methods.iter().enumerate() {
            m.set(i as u32, *x);
        }
    }
    let resp = req.send().promise.await?;
    resp.get()?.get_token()?.to_string().map_err(|e| RpcError::new(Code::Internal, e.to_string()))
}

/// redeem(token).storage().create(...) as one pipelined chain, in a fresh session.
async fn create_through(url: &str, token: &str, target: &str) -> Result<String, RpcError> {
    let session = connect_any(url).await?;
    let mut redeem = broker_of(&session.bootstrap, "").redeem_request();
    redeem.get().set_token(token);
    redeem.get().set_target(target);
    let storage = redeem.send().pipeline.get_object().storage_request().send().pipeline.get_storage();
    let mut create = storage.create_request();
    create.get().set_type("Note");
    create.get().set_data(json!({"by": "token"}).to_string());
    let r = create.send().promise.await?;
    r.get()?.get_thing()?.get_id()?.to_string().map_err(|e| RpcError::new(Code::Internal, e.to_string()))
}

async fn count_through(url: &str, token: &str) -> Result<u64, RpcError> {
    let session = connect_any(url).await?;
    let mut redeem = broker_of(&session.bootstrap, "").redeem_request();
    redeem.get().set_token(token);
    let storage = redeem.send().pipeline.get_object().storage_request().send().pipeline.get_storage();
    let mut count = storage.count_request();
    count.get().set_query("{}");
    Ok(count.send().promise.await?.get()?.get_count())
}

fn err_code<T>(r: Result<T, RpcError>) -> Code {
    match r {
        Ok(_) => panic!("expected a refusal"),
        Err(e) => e.code,
    }
}

#[test]
fn tokens_open_exactly_what_they_allow_over_ws_and_http() {
    let dir = data_dir("broker");
    let s = start(&dir, &format!("k1:{K1}"), "k1");
    let ws = format!("ws://{}/rpc", s.http_addr);
    let http = format!("http://{}/rpc", s.http_addr);
    for url in [&ws, &http] {
        rpc_client::run(async {
            let write = mint(url, "Customer/acme", &["storage.*"], "write", 60_000).await.expect("mint");
            let requests = metric(&s, |m| &m.http_requests);
            create_through(url, &write, "Customer/acme").await.expect("an allowed method works");
            if url.starts_with("http") {
                assert_eq!(metric(&s, |m| &m.http_requests) - requests, 1, "redeem + storage + create is one request");
            }
            let read = mint(url, "Customer/acme", &["storage.*"], "read", 60_000).await.expect("mint");
            assert!(count_through(url, &read).await.expect("read works") >= 1);
            assert_eq!(err_code(create_through(url, &read, "").await), Code::InsufficientScope);
            let only_get = mint(url, "Customer/acme", &["storage.get"], "write", 60_000).await.expect("mint");
            assert_eq!(err_code(create_through(url, &only_get, "").await), Code::Forbidden);
            assert_eq!(err_code(create_through(url, &write, "Customer/globex").await), Code::WrongTarget);
            // Signed with the server's key, but issued (and expired) long ago: no waiting.
            let expired = KeyRing::parse(&format!("k1:{K1}"), Some("k1"))
                .expect("keys")
                .mint(
                    &MintRequest {
                        target: "Customer/acme".into(),
                        methods: vec!["*".into()],
                        scope: Scope::Admin,
                        ttl_ms: 1,
                        subject: "tester".into(),
                        namespace: "default".into(),
                    },
                    1_000,
                    "expired-long-ago",
                )
                .expect("mint");
            assert_eq!(err_code(create_through(url, &expired, "").await), Code::Expired);
            // Tampered payload, tampered signature, unknown key.
            let (head, sig) = write.split_once('.').expect("two parts");
            let forged_head = {
                use base64::Engine;
                let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                let mut p: serde_json::Value = serde_json::from_slice(&b.decode(head).expect("b64")).expect("json");
                p["scope"] = "admin".into();
                p["m"] = json!(["*"]);
                b.encode(p.to_string())
            };
            assert_eq!(
                err_code(create_through(url, &format!("{forged_head}.{sig}"), "").await),
                Code::InvalidSignature
            );
            let mut bad_sig = sig.to_string();
            bad_sig.replace_range(0..1, if sig.starts_with('A') { "B" } else { "A" });
            assert_eq!(err_code(create_through(url, &format!("{head}.{bad_sig}"), "").await), Code::InvalidSignature);
            let stranger = KeyRing::parse(&format!("k9:{K2}"), None).expect("keys");
            let foreign = stranger
                .mint(
                    &MintRequest {
                        target: "Customer/acme".into(),
                        methods: vec!["*".into()],
                        scope: Scope::Admin,
                        ttl_ms: 60_000,
                        subject: "x".into(),
                        namespace: "default".into(),
                    },
                    now_ms(),
                    "f1",
                )
                .expect("mint");
            assert_eq!(err_code(create_through(url, &foreign, "").await), Code::InvalidSignature);
            assert_eq!(err_code(create_through(url, "not-a-token", "").await), Code::Malformed);
        });
    }
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn attenuation_narrows_and_revocation_and_admin_rules_hold() {
    let dir = data_dir("attenuate");
    let s = start(&dir, &format!("k1:{K1}"), "k1");
    let ws = format!("ws://{}/rpc", s.http_addr);
    let revoked = rpc_client::run(async {
        let full = mint(&ws, "Customer/acme", &["*"], "admin", 60_000).await.expect("mint");
        create_through(&ws, &full, "").await.expect("full token writes");
        let narrow = attenuate(
            &full,
            &Caveat { methods: Some(vec!["storage.count".into()]), scope: Some(Scope::Read), expires_at: None },
        )
        .expect("attenuate");
        assert!(count_through(&ws, &narrow).await.expect("the narrowed token reads") >= 1);
        assert_eq!(err_code(create_through(&ws, &narrow, "").await), Code::Forbidden);
        // Trying to widen it back only breaks it.
        let widened = attenuate(
            &narrow,
            &Caveat { methods: Some(vec!["*".into()]), scope: Some(Scope::Admin), expires_at: None },
        )
        .expect("attenuate");
        assert_eq!(err_code(create_through(&ws, &widened, "").await), Code::Forbidden);
        let parts: Vec<&str> = narrow.split('.').collect();
        assert_eq!(
            err_code(create_through(&ws, &format!("{}.{}", parts[0], parts[2]), "").await),
            Code::InvalidSignature
        );

        // Revocation, persisted and checked on every redeem.
        let session = rpc_client::connect(&ws).await.expect("connect");
        let mut verify = broker_of(&session.bootstrap, "").verify_request();
        verify.get().set_token(&full);
        let claims = verify.send().promise.await.expect("verify");
        let id = claims.get().unwrap().get_claims().unwrap().get_token_id().unwrap().to_string().unwrap();
        let mut not_admin = broker_of(&session.bootstrap, "wrong-key").revoke_request();
        not_admin.get().set_token_id(&id);
        assert_eq!(code(not_admin.send().promise.await), Code::Forbidden);
        let mut revoke = broker_of(&session.bootstrap, ADMIN).revoke_request();
        revoke.get().set_token_id(&id);
        revoke.send().promise.await.expect("revoke");
        assert_eq!(err_code(create_through(&ws, &full, "").await), Code::Revoked);
        assert_eq!(err_code(count_through(&ws, &narrow).await), Code::Revoked, "attenuated copies go too");
        let mut mint_req = broker_of(&session.bootstrap, "").mint_request();
        mint_req.get().init_request().set_target("Customer/acme");
        assert_eq!(code(mint_req.send().promise.await), Code::Forbidden, "only admins mint");
        full
    });
    s.stop();
    // Revocations survive a restart.
    let s = start(&dir, &format!("k1:{K1}"), "k1");
    let ws = format!("ws://{}/rpc", s.http_addr);
    rpc_client::run(async {
        assert_eq!(err_code(create_through(&ws, &revoked, "").await), Code::Revoked, "still revoked after a restart");
        let fresh = mint(&ws, "Customer/acme", &["*"], "admin", 60_000).await.expect("mint");
        create_through(&ws, &fresh, "").await.expect("a new token works");
    });
    let metrics = {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(s.http_addr).expect("connect");
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("write");
        let mut out = String::new();
        c.read_to_string(&mut out).expect("read");
        out
    };
    assert!(metrics.contains("dotdo_broker_tokens_total{outcome=\"minted\",reason=\"ok\"} 1"), "{metrics}");
    assert!(metrics.contains("dotdo_broker_calls_total{method=\"storage.create\"}"), "{metrics}");
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn rotation_keeps_old_tokens_valid_until_their_key_is_removed() {
    let dir = data_dir("rotate");
    let old_keys = KeyRing::parse(&format!("k1:{K1}"), None).expect("keys");
    let req = MintRequest {
        target: "Customer/acme".into(),
        methods: vec!["*".into()],
        scope: Scope::Admin,
        ttl_ms: 600_000,
        subject: "x".into(),
        namespace: "default".into(),
    };
    let old = old_keys.mint(&req, now_ms(), "old-1").expect("mint");
    // k2 mints now; k1 still verifies.
    let s = start(&dir, &format!("k1:{K1},k2:{K2}"), "k2");
    let ws = format!("ws://{}/rpc", s.http_addr);
    rpc_client::run(async {
        create_through(&ws, &old, "").await.expect("a k1 token still works");
        let new = mint(&ws, "Customer/acme", &["*"], "admin", 60_000).await.expect("mint");
        let session = rpc_client::connect(&ws).await.expect("connect");
        let mut verify = broker_of(&session.bootstrap, "").verify_request();
        verify.get().set_token(&new);
        let r = verify.send().promise.await.expect("verify");
        assert_eq!(r.get().unwrap().get_claims().unwrap().get_key_id().unwrap().to_str().unwrap(), "k2");
    });
    s.stop();
    let s = start(&dir, &format!("k2:{K2}"), "k2");
    let ws = format!("ws://{}/rpc", s.http_addr);
    rpc_client::run(async {
        assert_eq!(err_code(create_through(&ws, &old, "").await), Code::InvalidSignature, "k1 removed");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_shard_router_and_fanout_queries_report_partial_failures() {
    let dir = data_dir("fanout");
    let s = start(&dir, &format!("k1:{K1}"), "k1");
    let ws = format!("ws://{}/rpc", s.http_addr);
    // Break shard 2's database before anyone opens it: a directory where its file goes.
    let broken = do_runtime::ObjectKey::new("default", "Orders", "shard-2").expect("key").id();
    std::fs::create_dir_all(dir.join("default").join("Orders").join(format!("{broken}.sqlite"))).expect("dir");
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let admin = broker_of(&session.bootstrap, ADMIN);
        let ring = rpc_broker::ring::ShardRing::new(4);
        let mut placed = 0;
        for i in 0..40 {
            let key = format!("order-{i}");
            let mut req = admin.shard_request();
            req.get().set_class("Orders");
            req.get().set_shards(4);
            req.get().set_key(&key);
            let resp = req.send().promise.await.expect("shard");
            let index = resp.get().unwrap().get_index();
            assert_eq!(index, ring.shard_for(&key), "the same placement as the ring in this process");
            if index == 2 {
                continue;
            }
            let storage = resp.get().unwrap().get_object().unwrap().storage_request().send().pipeline.get_storage();
            let mut create = storage.create_request();
            create.get().set_type("Order");
            create.get().set_id(&key);
            create.get().set_data(json!({"total": i}).to_string());
            create.send().promise.await.expect("create on its shard");
            placed += 1;
        }
        let mut req = admin.fanout_request();
        req.get().set_class("Orders");
        req.get().set_shards(4);
        req.get().set_budget(2);
        req.get().set_query(json!({"type": "Order", "sort": ["-total"], "limit": 5}).to_string());
        let r = req.send().promise.await.expect("fanout");
        let things: Vec<i64> = r
            .get()
            .unwrap()
            .get_things()
            .unwrap()
            .iter()
            .map(|t| {
                serde_json::from_str::<serde_json::Value>(t.get_data().unwrap().to_str().unwrap()).unwrap()["total"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        assert_eq!(things.len(), 5);
        assert!(things.windows(2).all(|w| w[0] >= w[1]), "merged in order: {things:?}");
        let failures: Vec<String> =
            r.get().unwrap().get_failures().unwrap().iter().map(|f| f.unwrap().to_string().unwrap()).collect();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].starts_with("shard-2:"), "{failures:?}");
        assert!(placed > 20);
        let mut not_admin = broker_of(&session.bootstrap, "").fanout_request();
        not_admin.get().set_class("Orders");
        assert_eq!(code(not_admin.send().promise.await), Code::Forbidden);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn shard_counts_are_validated_against_the_configured_most() {
    let dir = data_dir("fanout-cap");
    let s = start(&dir, &format!("k1:{K1}"), "k1");
    let ws = format!("ws://{}/rpc", s.http_addr);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let admin = broker_of(&session.bootstrap, ADMIN);
        for (shards, want) in [(9, Code::LimitExceeded), (u32::MAX, Code::LimitExceeded), (0, Code::InvalidArgument)] {
            let mut req = admin.fanout_request();
            req.get().set_class("Huge");
            req.get().set_shards(shards);
            req.get().set_budget(64);
            req.get().set_query(json!({"type": "Order"}).to_string());
            assert_eq!(code(req.send().promise.await), want, "fanout to {shards} shards");
            let mut req = admin.shard_request();
            req.get().set_class("Huge");
            req.get().set_shards(shards);
            req.get().set_key("k");
            assert_eq!(code(req.send().promise.await), want, "shard among {shards}");
        }
        let mut req = admin.fanout_request();
        req.get().set_class("Small");
        req.get().set_shards(8);
        req.get().set_query(json!({"type": "Order"}).to_string());
        let r = req.send().promise.await.expect("fanout within the configured most");
        assert!(r.get().unwrap().get_failures().unwrap().is_empty());
    });
    s.stop();
    assert!(!dir.join("default").join("Huge").exists(), "no shard object was opened for a refused count");
    let files = std::fs::read_dir(dir.join("default").join("Small"))
        .expect("class dir")
        .flatten()
        .filter(|f| f.path().extension().is_some_and(|e| e == "sqlite"))
        .count();
    assert_eq!(files, 8, "one SQLite file per shard");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn calls_in_flight_when_the_server_stops_get_a_typed_error() {
    let s = server(Limits::default());
    let [ws, ..] = urls(&s);
    let (go, stop) = std::sync::mpsc::channel::<()>();
    let stopper = std::thread::spawn({
        let s = s;
        move || {
            if stop.recv().is_ok() {
                s.stop();
            }
        }
    });
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let dir = directory(&session.bootstrap);
        let mut req = dir.sleep_request();
        req.get().set_millis(10_000);
        let sleeping = req.send().promise;
        // Calls on one capability are delivered in order: once the echo sent after it
        // is answered, the sleep is running on the server.
        let mut echo = dir.echo_request();
        echo.get().set_x(7);
        assert_eq!(echo.send().promise.await.expect("echo").get().expect("results").get_x(), 7);
        go.send(()).expect("the stopper waits");
        let started = std::time::Instant::now();
        assert_eq!(code(sleeping.await), Code::Disconnected);
        assert!(started.elapsed() < Duration::from_secs(9), "failed by the stop, not answered after the sleep");
    });
    stopper.join().expect("stopped");
}

#[test]
fn calls_to_several_targets_in_one_batch_are_answered_each_on_its_own() {
    let dir = data_dir("multi");
    let s = start(&dir, &format!("k1:{K1}"), "k1");
    let ws = format!("ws://{}/rpc", s.http_addr);
    let http = format!("http://{}/rpc", s.http_addr);
    rpc_client::run(async {
        let a = mint(&ws, "Customer/a", &["storage.*"], "write", 60_000).await.expect("mint");
        let b = mint(&ws, "Customer/b", &["storage.*"], "read", 60_000).await.expect("mint");
        let c = mint(&ws, "Customer/c", &["storage.*"], "write", 60_000).await.expect("mint");
        let requests = metric(&s, |m| &m.http_requests);
        let session = connect_any(&http).await.expect("connect");
        let broker = broker_of(&session.bootstrap, "");
        let calls: Vec<_> = [&a, &b, &c]
            .into_iter()
            .map(|t| {
                let mut redeem = broker.redeem_request();
                redeem.get().set_token(t);
                let storage = redeem.send().pipeline.get_object().storage_request().send().pipeline.get_storage();
                let mut create = storage.create_request();
                create.get().set_type("Note");
                create.get().set_data("{}");
                create.send().promise
            })
            .collect();
        let results = futures::future::join_all(calls).await;
        assert_eq!(metric(&s, |m| &m.http_requests) - requests, 1, "one batch for the three targets");
        assert!(results[0].is_ok() && results[2].is_ok(), "the other targets are not failed by one");
        let e: RpcError = results.into_iter().nth(1).and_then(std::result::Result::err).expect("b fails").into();
        assert_eq!(e.code, Code::InsufficientScope);
        let session = rpc_client::connect(&ws).await.expect("connect");
        let text = broker_of(&session.bootstrap, "").metrics_request().send().promise.await.expect("metrics");
        let text = text.get().unwrap().get_text().unwrap().to_string().unwrap();
        assert!(text.contains("dotdo_broker_tokens_total{outcome=\"redeemed\",reason=\"ok\"} 3"), "{text}");
        assert!(text.contains("dotdo_broker_errors_total{method=\"storage.create\"} 1"), "{text}");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tokens_stay_in_their_namespace_and_attenuated_admin_tokens_stay_narrow() {
    let dir = data_dir("tenants");
    let s = start(&dir, &format!("k1:{K1}"), "k1");
    let ws = format!("ws://{}/rpc", s.http_addr);
    rpc_client::run(async {
        // Minted by acme's admin broker: it opens acme's Customer/x, not default's.
        let acme = rpc_client::connect_as::<gateway::Client>(
            &ws,
            rpc_client::Options { host: Some("acme.dotdo.dev".into()), ..Default::default() },
        )
        .await
        .expect("connect");
        let mut req = broker_of(&acme.bootstrap, ADMIN).mint_request();
        {
            let mut r = req.get().init_request();
            r.set_target("Customer/x");
            r.set_scope("write");
            r.init_methods(1).set(0, "storage.*");
        }
        let token = req.send().promise.await.expect("mint").get().unwrap().get_token().unwrap().to_string().unwrap();
        assert_eq!(err_code(create_through(&ws, &token, "").await), Code::WrongTarget, "another tenant's token");
        let mut redeem = broker_of(&acme.bootstrap, "").redeem_request();
        redeem.get().set_token(&token);
        let storage = redeem.send().pipeline.get_object().storage_request().send().pipeline.get_storage();
        let mut create = storage.create_request();
        create.get().set_type("Note");
        create.get().set_data("{}");
        create.send().promise.await.expect("its own tenant");

        // An admin token for the broker, narrowed to verify, cannot mint.
        let admin_token = mint(&ws, "broker", &["broker.*"], "admin", 60_000).await.expect("mint");
        let session = rpc_client::connect(&ws).await.expect("connect");
        let mut m = broker_of(&session.bootstrap, &admin_token).mint_request();
        {
            let mut r = m.get().init_request();
            r.set_target("Customer/acme");
            r.set_scope("read");
            r.init_methods(1).set(0, "*");
        }
        m.send().promise.await.expect("a full admin token mints");
        let verify_only =
            attenuate(&admin_token, &Caveat { methods: Some(vec!["broker.verify".into()]), ..Caveat::default() })
                .expect("attenuate");
        let mut m = broker_of(&session.bootstrap, &verify_only).mint_request();
        {
            let mut r = m.get().init_request();
            r.set_target("Customer/acme");
            r.set_scope("read");
            r.init_methods(1).set(0, "*");
        }
        assert_eq!(code(m.send().promise.await), Code::Forbidden);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_server_that_requires_tokens_refuses_plain_object_access() {
    let dir = data_dir("require");
    let s = start_with(&dir, &format!("k1:{K1}"), "k1", true);
    let ws = format!("ws://{}/rpc", s.http_addr);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let mut req = session.bootstrap.object_request();
        req.get().set_class("Customer");
        req.get().set_name("acme");
        let storage = req.send().pipeline.get_object().storage_request().send().pipeline.get_storage();
        let mut count = storage.count_request();
        count.get().set_query("{}");
        assert_eq!(code(count.send().promise.await), Code::Unauthorized);
        let token = mint(&ws, "Customer/acme", &["storage.*"], "write", 60_000).await.expect("mint");
        create_through(&ws, &token, "").await.expect("a token still opens the object");
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}
