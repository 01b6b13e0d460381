//! The broker benchmark: tokens verified/s (in-process), a redeem + call through the
//! membrane vs the same call made directly (both over WebSocket), and a fan-out query
//! over 8 shards vs one shard. `cargo bench -p tests --bench broker`.

use rpc_broker::token::{KeyRing, MintRequest, Scope};
use schema::broker_capnp::broker;
use schema::session_capnp::gateway;
use std::time::{Duration, Instant};

const K1: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";

fn secs() -> f64 {
    std::env::var("DOTDO_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0)
}

fn broker_of(g: &gateway::Client, key: &str) -> broker::Client {
    let mut req = g.broker_request();
    req.get().set_api_key(key);
    req.send().pipeline.get_broker()
}

async fn per_op_us<F: std::future::Future<Output = ()>>(mut op: impl FnMut() -> F) -> f64 {
    let (t0, mut n) = (Instant::now(), 0u64);
    while t0.elapsed().as_secs_f64() < secs() {
        op().await;
        n += 1;
    }
    t0.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let keys = KeyRing::parse(&format!("k1:{K1}"), None).expect("keys");
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let req = MintRequest {
        target: "Bench/one".into(),
        methods: vec!["storage.*".into()],
        scope: Scope::Write,
        ttl_ms: 3_600_000,
        subject: "bench".into(),
        namespace: "default".into(),
    };
    let token = keys.mint(&req, now, "bench-1").expect("mint");
    let (t0, mut n) = (Instant::now(), 0u64);
    while t0.elapsed().as_secs_f64() < secs() {
        keys.verify(&token, now).expect("verify");
        n += 1;
    }
    let verified = n as f64 / t0.elapsed().as_secs_f64();

    let dir = std::env::temp_dir().join(format!("dotdo-bench-broker-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = rpc_server::ServerConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        tcp_addr: None,
        workers: 1,
        ..Default::default()
    };
    let host = do_runtime::HostConfig { data_dir: dir.clone(), threads: 2, ..Default::default() };
    let broker_config = do_runtime::BrokerConfig {
        keys,
        admin_key: Some("admin".into()),
        db_path: dir.join("broker.sqlite"),
        call_timeout: Duration::from_secs(5),
        require_tokens: false,
        max_shards: rpc_broker::broker::DEFAULT_MAX_SHARDS,
    };
    let server = do_runtime::Runtime::new(config).host(host).broker(broker_config).start().expect("server").server;
    let url = format!("ws://{}/rpc", server.http_addr);

    rpc_client::run(async move {
        let session = rpc_client::connect(&url).await.expect("connect");
        let g = session.bootstrap.clone();
        // Direct: gateway.object(...).storage().count() on a settled storage capability.
        let mut obj = g.object_request();
        obj.get().set_class("Bench");
        obj.get().set_name("one");
        let direct = obj
            .send()
            .pipeline
            .get_object()
            .storage_request()
            .send()
            .promise
            .await
            .expect("storage")
            .get()
            .unwrap()
            .get_storage()
            .unwrap();
        let count = |s: &schema::object_capnp::storage::Client| {
            let mut r = s.count_request();
            r.get().set_query("{}");
            r.send().promise
        };
        let direct_us = per_op_us(|| {
            let p = count(&direct);
            async move {
                p.await.expect("count");
            }
        })
        .await;
        // Through the broker: redeem + storage() + count(), pipelined, every time.
        let token = token.clone();
        let redeem_us = per_op_us(|| {
            let mut r = broker_of(&g, "").redeem_request();
            r.get().set_token(&token);
            let s = r.send().pipeline.get_object().storage_request().send().pipeline.get_storage();
            let p = count(&s);
            async move {
                p.await.expect("count through the membrane");
            }
        })
        .await;
        // Fan-out: 8 shards with 200 things each vs one shard with 1,600.
        let admin = broker_of(&g, "admin");
        for (class, shards, per) in [("Eight", 8u32, 200u32), ("One", 1, 1600)] {
            for s in 0..shards {
                let mut o = g.object_request();
                o.get().set_class(class);
                o.get().set_name(format!("shard-{s}"));
                let st = o.send().pipeline.get_object().storage_request().send().pipeline.get_storage();
                for chunk in 0..per / 200 {
                    let mut b = st.bulk_create_request();
                    let mut list = b.get().init_things(200);
                    for j in 0..200 {
                        let i = chunk * 200 + j;
                        let mut t = list.reborrow().get(j);
                        t.set_type("Row");
                        t.set_data(format!(r#"{{"v": {}}}"#, (i * 7919 + s * 13) % 10_000));
                    }
                    b.send().promise.await.expect("bulk create");
                }
            }
        }
        let fan = |class: &'static str, shards: u32| {
            let admin = admin.clone();
            move || {
                let mut r = admin.fanout_request();
                r.get().set_class(class);
                r.get().set_shards(shards);
                r.get().set_budget(8);
                r.get().set_query(r#"{"type": "Row", "where": {"v": {"$gte": 5000}}, "sort": ["-v"], "limit": 20}"#);
                let p = r.send().promise;
                async move {
                    let resp = p.await.expect("fanout");
                    assert!(resp.get().unwrap().get_failures().unwrap().is_empty());
                }
            }
        };
        let eight_us = per_op_us(fan("Eight", 8)).await;
        let one_us = per_op_us(fan("One", 1)).await;
        println!("== broker");
        println!("tokens verified/s (HMAC-SHA256, in-process)       {verified:>10.0}");
        println!("redeem + call through the membrane, us            {redeem_us:>10.1}   direct call {direct_us:.1} us: {:.2}x", redeem_us / direct_us);
        println!("fan-out query over 8 shards (1,600 things), us     {eight_us:>10.1}   one shard with the same 1,600: {one_us:.1} us: {:.2}x", eight_us / one_us);
    });
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
