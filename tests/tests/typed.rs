//! The generated typed clients (`rpc_client::api`) against a real server: chains read
//! like the call and stay one round trip, arguments and replies are plain Rust values,
//! capabilities go both ways, errors carry their code, and deadlines cancel the call on
//! the server.

mod common;

use common::*;
use rpc_client::api::demo::{Callback, Tree};
use rpc_client::api::session::Gateway;
use rpc_core::{Code, Limits};
use std::time::Duration;

#[test]
fn a_typed_chain_reads_like_the_call_on_every_transport() {
    let s = server(Limits::default());
    for url in urls(&s) {
        rpc_client::run(async {
            let gateway: Gateway = rpc_client::bootstrap(&url).await.expect("connect");
            let dir = gateway.demo().directory();
            let text = dir.open("docs").file().child("intro").file().read().await.expect("chain").text;
            assert_eq!(text, "contents of docs/intro", "over {url}");
            // A call whose only result is a capability stands for it.
            let gateway: Gateway = rpc_client::bootstrap(&url).await.expect("connect");
            let dir = gateway.demo().directory();
            let text = dir.open("docs").child("intro").read().await.expect("chain").text;
            assert_eq!(text, "contents of docs/intro", "over {url}");
        });
    }
    s.stop();
}

#[test]
fn a_typed_chain_over_http_is_one_request() {
    let s = server(Limits::default());
    let [_, http, _] = urls(&s);
    let before = metric(&s, |m| &m.http_requests);
    rpc_client::run(async {
        let batch = rpc_client::batch(&http).await.expect("batch");
        let file = batch.bootstrap.demo().directory().open("a").file().child("b").file();
        assert_eq!(file.read().await.expect("read").text, "contents of a/b");
    });
    assert_eq!(metric(&s, |m| &m.http_requests) - before, 1);
    s.stop();
}

#[test]
fn lists_and_structs_travel_as_plain_rust_values() {
    let s = server(Limits::default());
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let dir = session.bootstrap.demo().directory();
        assert_eq!(dir.sum(&[1, 2, 3, -10]).await.expect("sum").total, -4);
        assert_eq!(dir.echo(u64::MAX).await.expect("echo").x, u64::MAX);
        let tree = Tree { children: vec![Tree { children: vec![Tree::default()] }, Tree::default()] };
        assert_eq!(dir.depth(&tree).await.expect("depth").depth, 3);
        // The reply's capability is a typed client too.
        let file = dir.open("x").await.expect("open").file;
        assert_eq!(file.name().await.expect("name").name, "x");
    });
    s.stop();
}

struct Shout;

impl schema::demo_capnp::callback::Server for Shout {
    async fn notify(
        self: capnp::capability::Rc<Self>,
        params: schema::demo_capnp::callback::NotifyParams,
        mut results: schema::demo_capnp::callback::NotifyResults,
    ) -> capnp::Result<()> {
        let value = params.get()?.get_value()?.to_string()?;
        results.get().set_reply(value.to_uppercase());
        Ok(())
    }
}

#[test]
fn a_capability_passed_as_an_argument_is_called_back() {
    let s = server(Limits::default());
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let dir = session.bootstrap.demo().directory();
        let reply = dir.subscribe(&Callback::serve(Shout), "hey").await.expect("subscribe");
        assert_eq!(reply.reply, "HEY");
    });
    s.stop();
}

#[test]
fn errors_come_back_as_rpc_errors_with_their_code() {
    let s = server(Limits::default());
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let object = session.bootstrap.object("Customer", "acme");
        let refused = object.storage().get("no-such-thing").await;
        assert_eq!(code(refused), Code::NotFound);
        let bad = object.storage().query("{not json").await;
        assert_eq!(code(bad), Code::InvalidArgument);
    });
    s.stop();
}

#[test]
fn a_deadline_fails_the_call_with_timeout_and_cancels_it_on_the_server() {
    let s = server(Limits::default());
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let dir = session.bootstrap.demo().directory();
        let hurried = dir.clone().with_deadline(Duration::from_millis(200));
        let call = hurried.sleep(60_000);
        // The sleep is running on the server...
        assert_eq!(dir.sleeping().await.expect("sleeping").count, 1);
        assert_eq!(code(call.await), Code::Timeout);
        // ...and the client's Finish, which reaches the server before this call, stopped it.
        assert_eq!(dir.sleeping().await.expect("sleeping").count, 0);
        // Capabilities handed out by a client with a deadline inherit it.
        let file = hurried.open("f").file();
        assert_eq!(file.options().deadline, Some(Duration::from_millis(200)));
        assert_eq!(file.read().await.expect("read").text, "contents of f");
    });
    s.stop();
}

#[test]
fn storage_through_the_typed_object_is_one_chain() {
    let dir = data_dir("typed-storage");
    let (s, _) = object_server(&dir, Duration::from_secs(60));
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let storage = session.bootstrap.object("Customer", "acme").storage();
        let thing = storage.create("Contact", r#"{"name": "Ann", "age": 31}"#, "").await.expect("create").thing;
        assert_eq!((thing.r#type.as_str(), thing.version), ("Contact", 1));
        let got = storage.get(&thing.id).await.expect("get").thing;
        assert_eq!(got, thing);
        let page = storage.query(r#"{"type": "Contact", "where": {"age": {"$gte": 30}}}"#).await.expect("query");
        assert_eq!(page.things.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [thing.id.as_str()]);
        let stale = storage.update(&thing.id, r#"{"age": 32}"#, 7, "").await;
        assert_eq!(code(stale), Code::Conflict);
    });
    s.stop();
    let _ = std::fs::remove_dir_all(dir);
}
