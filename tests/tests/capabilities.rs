//! Capabilities passed from client to server and called back; capabilities released.

mod common;

use capnp::capability::Rc;
use common::*;
use rpc_core::{Code, Limits};
use schema::demo_capnp::callback;
use std::cell::Cell;

struct Shout {
    calls: std::rc::Rc<Cell<u32>>,
}

impl callback::Server for Shout {
    async fn notify(
        self: Rc<Self>,
        params: callback::NotifyParams,
        mut results: callback::NotifyResults,
    ) -> capnp::Result<()> {
        self.calls.set(self.calls.get() + 1);
        let v = params.get()?.get_value()?.to_string().map_err(|e| capnp::Error::failed(e.to_string()))?;
        results.get().set_reply(v.to_uppercase());
        Ok(())
    }
}

#[test]
fn a_capability_passed_to_the_server_is_called_back() {
    let s = server(Limits::default());
    let [ws, http, tcp] = urls(&s);
    for url in [&ws, &tcp] {
        rpc_client::run(async {
            let session = connect_any(url).await.expect("connect");
            let calls = std::rc::Rc::new(Cell::new(0));
            let cb: callback::Client = capnp_rpc::new_client(Shout { calls: calls.clone() });
            let mut req = directory(&session.bootstrap).subscribe_request();
            req.get().set_callback(cb);
            req.get().set_value("hello");
            let reply = req.send().promise.await.expect("subscribe");
            assert_eq!(reply.get().unwrap().get_reply().unwrap().to_str().unwrap(), "HELLO");
            assert_eq!(calls.get(), 1, "the server called the client's capability once over {url}");
        });
    }
    // Over HTTP batch the server cannot call back: a typed error, not a hang.
    rpc_client::run(async {
        let session = connect_any(&http).await.expect("connect");
        let cb: callback::Client = capnp_rpc::new_client(Shout { calls: Default::default() });
        let mut req = directory(&session.bootstrap).subscribe_request();
        req.get().set_callback(cb);
        req.get().set_value("x");
        assert_eq!(code(req.send().promise.await), Code::Unsupported);
    });
    s.stop();
}

#[test]
fn dropped_capabilities_are_released_on_the_server() {
    let s = server(Limits::default());
    let [ws, _, tcp] = urls(&s);
    for url in [&ws, &tcp] {
        rpc_client::run(async {
            let session = connect_any(url).await.expect("connect");
            let dir = directory(&session.bootstrap);
            let live = || async { dir.live_files_request().send().promise.await.unwrap().get().unwrap().get_count() };
            let mut files = Vec::new();
            for name in ["a", "b", "c"] {
                let mut open = dir.open_request();
                open.get().set_name(name);
                let resp = open.send().promise.await.expect("open");
                files.push(resp.get().unwrap().get_file().unwrap());
            }
            assert_eq!(live().await, 3);
            files.pop();
            assert_eq!(live().await, 2, "one file released over {url}");
            files.clear();
            assert_eq!(live().await, 0, "all files released over {url}");
        });
    }
    s.stop();
}

#[test]
fn a_returned_capability_can_be_passed_back_and_used() {
    let s = server(Limits::default());
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let dir = directory(&session.bootstrap);
        let mut open = dir.open_request();
        open.get().set_name("kept");
        let file = open.send().promise.await.expect("open").get().unwrap().get_file().unwrap();
        let name = file.name_request().send().promise.await.expect("name");
        assert_eq!(name.get().unwrap().get_name().unwrap().to_str().unwrap(), "kept");
    });
    s.stop();
}
