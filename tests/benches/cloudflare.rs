//! dotdo's Worker under workerd against `dotdo serve`, in the same run:
//! `do-runtime/cloudflare/run build && cargo bench -p tests --bench cloudflare`.
//! DOTDO_BENCH_SECS (default 2) sets the seconds per figure.
//!
//! Figures, each the median of one call or chain repeated for that long, on each host:
//! a pipelined 3-call chain over WebSocket (`gateway.object(..).storage().get(id)`, a new
//! chain each time), a storage `get` on a settled storage capability, and the same
//! 3-call chain as one HTTP batch. Under workerd a chain crosses the Worker and then
//! the object's Durable Object, so the chain against one `get` shows whether
//! pipelining survives that hop (a chain paying extra round trips would cost about a
//! multiple of the `get`).

#[path = "../tests/conformance/target.rs"]
mod target;

use schema::object_capnp::storage;
use schema::session_capnp::gateway;
use std::time::{Duration, Instant};

fn secs() -> f64 {
    std::env::var("DOTDO_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0)
}

/// The median of `f`'s durations over about `secs()` (at least 20 runs), in ms.
async fn median_ms<F: std::future::Future<Output = ()>>(mut f: impl FnMut() -> F) -> f64 {
    let budget = Duration::from_secs_f64(secs());
    let started = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < 20 || started.elapsed() < budget {
        let t = Instant::now();
        f().await;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn storage(g: &gateway::Client, name: &str) -> storage::Client {
    let mut req = g.object_request();
    req.get().set_class("Bench");
    req.get().set_name(name);
    req.send().pipeline.get_object().storage_request().send().pipeline.get_storage()
}

async fn get(st: &storage::Client, id: &str) {
    let mut req = st.get_request();
    req.get().set_id(id);
    let r = req.send().promise.await.expect("get");
    assert!(r.get().expect("results").has_thing());
}

/// (chain over WebSocket, get, chain in one HTTP batch), medians in ms.
fn measure(host: &target::Host) -> [f64; 3] {
    rpc_client::run(async {
        let session = rpc_client::connect(&host.ws()).await.expect("connect");
        let g = &session.bootstrap;
        let mut create = storage(g, "b").create_request();
        create.get().set_type("Item");
        create.get().set_id("one");
        create.get().set_data(r#"{"n": 1}"#);
        // CONFLICT after the warm-up run: the Thing is there either way (the gets check).
        let _ = create.send().promise.await;
        let chain = median_ms(|| get_fresh(g)).await;
        // A settled storage capability: each get is one call.
        let st = storage(g, "b");
        get(&st, "one").await;
        let single = median_ms(|| get(&st, "one")).await;
        let http = host.http();
        let batch = median_ms(|| async {
            let b = rpc_client::batch(&http).await.expect("batch");
            get(&storage(&b.bootstrap, "b"), "one").await;
        })
        .await;
        [chain, single, batch]
    })
}

async fn get_fresh(g: &gateway::Client) {
    get(&storage(g, "b"), "one").await;
}

fn main() {
    let native_dir = target::fresh_dir("bench-native");
    let workerd_dir = target::fresh_dir("bench-workerd");
    let native = target::start_kind(&target::Kind::Native, &native_dir, false);
    let workerd = target::start_kind(&target::Kind::Workerd, &workerd_dir, false);
    // The first calls load each host's object (and workerd's isolate): not measured.
    let _ = measure(&native);
    let _ = measure(&workerd);
    let n = measure(&native);
    let w = measure(&workerd);
    let names = [
        "pipelined 3-call chain over WebSocket (object, storage, get)",
        "storage get over WebSocket (settled capability)",
        "3-call chain in one HTTP batch request",
    ];
    println!("{:<62} {:>12} {:>12} {:>9}", "median ms", "dotdo serve", "workerd", "ratio");
    for i in 0..3 {
        println!("{:<62} {:>12.3} {:>12.3} {:>8.2}x", names[i], n[i], w[i], w[i] / n[i]);
    }
    println!(
        "chain / get (1.0 = the chain costs one call's round trip): dotdo serve {:.2}, workerd {:.2}",
        n[0] / n[1],
        w[0] / w[1]
    );
    native.stop();
    workerd.stop();
    let _ = std::fs::remove_dir_all(native_dir);
    let _ = std::fs::remove_dir_all(workerd_dir);
}
