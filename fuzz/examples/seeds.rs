//! Writes the hand-made seed inputs of every target into `corpus/<target>/seed-*`:
//! real Cap'n Proto RPC messages queued by a real client engine (for framing, the HTTP
//! batch and, wrapped in WebSocket frames, the pump), valid query and patch JSON, tokens
//! minted with the fixed key, and schedule specs.
//!
//! Run from `fuzz/`: `cargo +nightly run --example seeds` (a plain build, no fuzzer).

use capnp::capability::Promise;
use capnp_rpc::rpc_twoparty_capnp::Side;
use rpc_broker::token::{attenuate, Caveat, KeyRing, MintRequest, Scope};
use rpc_core::framing;
use rpc_core::vat::{rpc_system, Link};
use schema::demo_capnp::{callback, directory};
use std::path::Path;

struct Echo;

impl callback::Server for Echo {
    async fn notify(
        self: capnp::capability::Rc<Self>,
        p: callback::NotifyParams,
        mut r: callback::NotifyResults,
    ) -> capnp::Result<()> {
        r.get().set_reply(p.get()?.get_value()?);
        Ok(())
    }
}

type Calls = fn(&directory::Client);

/// The frames a client engine queues for `calls` on the server's bootstrap directory.
fn messages(calls: Calls) -> Vec<Vec<u8>> {
    dotdo_fuzz::run_local(async move {
        let link = Link::new();
        let mut system = rpc_system(Side::Client, link.clone(), Promise::from_future(futures::future::pending()), None);
        let dir: directory::Client = system.bootstrap(Side::Server);
        tokio::task::spawn_local(system);
        calls(&dir);
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
        link.with(|q| q.outbox.drain(..).map(|m| framing::encode(&m)).collect())
    })
    .expect("the client engine queues its messages")
}

fn batches() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let cases: Vec<(&'static str, Calls)> = vec![
        ("chain", |d| {
            let mut open = d.open_request();
            open.get().set_name("a");
            let mut child = open.send().pipeline.get_file().child_request();
            child.get().set_name("b");
            drop(child.send().pipeline.get_file().read_request().send());
        }),
        ("echo-next", |d| {
            let mut e = d.echo_request();
            e.get().set_x(7);
            drop(e.send());
            let mut n = d.next_request();
            n.get().set_n(i64::MAX);
            drop(n.send());
        }),
        ("sum-depth", |d| {
            let mut s = d.sum_request();
            s.get().init_values(3).set(0, 1);
            drop(s.send());
            let mut t = d.depth_request();
            t.get().init_tree().init_children(2).get(0).init_children(1);
            drop(t.send());
        }),
        ("subscribe", |d| {
            let mut s = d.subscribe_request();
            s.get().set_callback(capnp_rpc::new_client(Echo));
            s.get().set_value("hi");
            drop(s.send());
        }),
        ("sleep-live", |d| {
            let mut s = d.sleep_request();
            s.get().set_millis(50);
            drop(s.send());
            drop(d.live_files_request().send());
            drop(d.sleeping_request().send());
        }),
    ];
    cases.into_iter().map(|(name, calls)| (name, messages(calls))).collect()
}

/// One client-to-server WebSocket binary frame (FIN, masked with a zero key so the
/// payload stays readable to the fuzzer).
fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("create the corpus folder");
    std::fs::write(d.join(format!("seed-{name}")), bytes).expect("write a seed");
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, frames) in batches() {
        let body: Vec<u8> = frames.concat();
        write(&dir, "http_batch", name, &body);
        write(&dir, "framing", name, &body);
        write(&dir, "framing", &format!("{name}-first"), &frames[0]);
        let mut ws: Vec<u8> = frames.iter().flat_map(|f| ws_frame(0x2, f)).collect();
        ws.extend(ws_frame(0x9, b"ping"));
        ws.extend(ws_frame(0x8, &[0x03, 0xe8]));
        write(&dir, "ws_pump", name, &ws);
    }
    let queries = [
        "",
        r#"{"type":"Customer","where":{"age":{"$gte":18,"$lt":65}},"sort":["-createdAt","data.name"],"limit":10}"#,
        r#"{"where":{"$or":[{"name":{"$regex":"^A"}},{"tags":{"$contains":"x"}}],"city.name":{"$in":["Oslo","Rome"]}}}"#,
        r#"{"where":{"$not":{"score":{"$exists":true}},"$and":[{"id":{"$ne":null}}]},"includeDeleted":true,"offset":1}"#,
        r#"{"sort":["data.age"],"cursor":"eyJzIjoiZGF0YS5hZ2UiLCJrIjpbMzFdLCJpZCI6ImExIn0"}"#,
    ];
    for (i, q) in queries.iter().enumerate() {
        write(&dir, "query", &i.to_string(), q.as_bytes());
    }
    let patches = [
        r#"{"$inc":{"visits":1,"score":0.5},"$set":{"address.city":"Rome"},"name":null}"#,
        r#"{"$push":{"tags":"b","new":1},"$unset":["address.zip"]}"#,
        "{\"a\":{\"b\":[1]}}\n{\"a\":{\"b\":null,\"c\":{\"d\":true}},\"$inc\":{\"a.e\":1e308}}",
    ];
    for (i, p) in patches.iter().enumerate() {
        write(&dir, "patch", &i.to_string(), p.as_bytes());
    }
    let ring = KeyRing::parse(&format!("k1:{}", dotdo_fuzz::TOKEN_SECRET), None).expect("the fixed key");
    let req = MintRequest {
        target: "Customer/acme".into(),
        methods: vec!["storage.*".into(), "events.send".into()],
        scope: Scope::Write,
        ttl_ms: 3_600_000,
        subject: "ann".into(),
        namespace: "default".into(),
    };
    let token = ring.mint(&req, dotdo_fuzz::TOKEN_NOW, "t1").expect("mint");
    let caveat = Caveat { methods: Some(vec!["storage.get".into()]), scope: Some(Scope::Read), expires_at: None };
    let narrower = attenuate(&token, &caveat).expect("attenuate");
    write(&dir, "token", "minted", token.as_bytes());
    write(&dir, "token", "attenuated", narrower.as_bytes());
    let specs = [
        "0 9 * * 1-5",
        "*/15 * * * * *",
        "0 0 29 2 *",
        "every 5 minutes",
        "every Monday at 9am",
        "every weekday at 8:00",
        "every hour",
    ];
    for (i, s) in specs.iter().enumerate() {
        write(&dir, "schedule", &i.to_string(), s.as_bytes());
    }
    println!("seeds written under {}", dir.display());
}
