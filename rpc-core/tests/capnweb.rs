//! A Cap'n Web session (`rpc_core::capnweb`) against a small real capnp server: the
//! messages a `capnweb` client sends, fed as text, and the answers read back as JSON.

use capnp::capability::Rc;
use capnp::traits::HasTypeId;
use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use rpc_core::capnweb::{Cap, Driver, Session, SessionLimits};
use schema::demo_capnp::{directory, file};
use serde_json::{json, Value};

struct Dir;
struct File(String);

impl directory::Server for Dir {
    async fn open(self: Rc<Self>, p: directory::OpenParams, mut r: directory::OpenResults) -> capnp::Result<()> {
        let name = p.get()?.get_name()?.to_string()?;
        r.get().set_file(capnp_rpc::new_client(File(name)));
        Ok(())
    }
    async fn next(self: Rc<Self>, p: directory::NextParams, mut r: directory::NextResults) -> capnp::Result<()> {
        r.get().set_n(p.get()?.get_n() + 1);
        Ok(())
    }
    async fn sum(self: Rc<Self>, p: directory::SumParams, mut r: directory::SumResults) -> capnp::Result<()> {
        r.get().set_total(p.get()?.get_values()?.iter().sum());
        Ok(())
    }
    async fn subscribe(
        self: Rc<Self>,
        p: directory::SubscribeParams,
        mut r: directory::SubscribeResults,
    ) -> capnp::Result<()> {
        let p = p.get()?;
        let mut call = p.get_callback()?.notify_request();
        call.get().set_value(p.get_value()?);
        let reply = call.send().promise.await?;
        r.get().set_reply(reply.get()?.get_reply()?);
        Ok(())
    }
}

impl file::Server for File {
    async fn read(self: Rc<Self>, _: file::ReadParams, mut r: file::ReadResults) -> capnp::Result<()> {
        r.get().set_text(&self.0);
        Ok(())
    }
}

fn limits() -> SessionLimits {
    SessionLimits { max_depth: 32, max_calls_in_flight: 16, max_entries: 64 }
}

fn session() -> (Session, Driver, UnboundedReceiver<String>) {
    let d: directory::Client = capnp_rpc::new_client(Dir);
    Session::new(Cap { client: d.client, interface: directory::Client::TYPE_ID }, limits())
}

/// Feeds `messages`, then runs the session until `n` messages came out.
async fn exchange(messages: &[Value], n: usize) -> Vec<Value> {
    let (s, driver, mut out) = session();
    for m in messages {
        s.receive(&m.to_string()).expect("accepted");
    }
    let collect = async {
        let mut got = Vec::new();
        while got.len() < n {
            let line = out.next().await.expect("more output");
            got.push(serde_json::from_str::<Value>(&line).expect("json out"));
        }
        got
    };
    let got = tokio::select! {
        got = collect => got,
        () = driver => unreachable!("the driver does not end"),
    };
    s.close();
    got
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    tokio::task::LocalSet::new().block_on(&rt, f)
}

#[test]
fn a_chain_of_calls_resolves_with_one_pull() {
    let got = run(exchange(
        &[
            json!(["push", ["pipeline", 0, ["next"], [1]]]),
            json!(["push", ["pipeline", 0, ["next"], [["pipeline", 1]]]]),
            json!(["push", ["pipeline", 0, ["next"], [["pipeline", 2]]]]),
            json!(["pull", 3]),
        ],
        1,
    ));
    assert_eq!(got, vec![json!(["resolve", 3, 4])]);
}

#[test]
fn capabilities_in_results_are_exported_and_callable() {
    let got = run(exchange(
        &[
            json!(["push", ["pipeline", 0, ["open"], ["notes"]]]),
            json!(["push", ["pipeline", 1, ["read"], []]]),
            json!(["pull", 1]),
            json!(["pull", 2]),
        ],
        2,
    ));
    assert!(got.contains(&json!(["resolve", 1, ["export", -1]])), "{got:?}");
    assert!(got.contains(&json!(["resolve", 2, "notes"])), "{got:?}");
}

#[test]
fn lists_and_map_over_them() {
    let got = run(exchange(
        &[
            json!(["push", ["pipeline", 0, ["sum"], [[[1, 2, 3]]]]]),
            json!(["pull", 1]),
            // [1, 2].map(n => dir.next(n)): the capture -1 is the main directory.
            json!(["push", [[1, 2]]]),
            json!(["push", ["remap", 2, [], [["import", 0]], [["pipeline", -1, ["next"], [["import", 0]]]]]]),
            json!(["pull", 3]),
        ],
        2,
    ));
    assert!(got.contains(&json!(["resolve", 1, 6])), "{got:?}");
    assert!(got.contains(&json!(["resolve", 3, [[2, 3]]])), "{got:?}");
}

#[test]
fn bad_calls_reject_with_typed_codes_and_the_session_goes_on() {
    let got = run(exchange(
        &[
            json!(["push", ["pipeline", 0, ["nope"], []]]),
            json!(["pull", 1]),
            json!(["push", ["pipeline", 0, ["next"], ["not a number"]]]),
            json!(["pull", 2]),
            json!(["push", ["pipeline", 99, ["next"], [1]]]),
            json!(["pull", 3]),
            json!(["push", ["what", 1]]),
            json!(["pull", 4]),
            json!(["push", ["pipeline", 0, ["next"], [41]]]),
            json!(["pull", 5]),
        ],
        5,
    ));
    let code = |id: i64| {
        got.iter().find(|m| m[0] == "reject" && m[1] == id).map(|m| m[2][4]["code"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(code(1).as_deref(), Some("UNIMPLEMENTED"));
    assert_eq!(code(2).as_deref(), Some("INVALID_ARGUMENT"));
    assert_eq!(code(3).as_deref(), Some("NOT_FOUND"));
    assert_eq!(code(4).as_deref(), Some("INVALID_ARGUMENT"));
    assert!(got.contains(&json!(["resolve", 5, 42])), "{got:?}");
}

#[test]
fn a_message_that_is_not_cap_n_web_aborts_with_a_code() {
    run(async {
        let (s, _driver, mut out) = session();
        let e = s.receive("{not json").expect_err("refused");
        assert_eq!(e.code, rpc_core::Code::InvalidArgument);
        let abort: Value = serde_json::from_str(&out.next().await.expect("abort")).expect("json");
        assert_eq!(abort[0], "abort");
        assert_eq!(abort[1][4]["code"], "INVALID_ARGUMENT");
        assert!(s.receive(&json!(["pull", 1]).to_string()).is_err(), "the session has ended");
    });
}

#[test]
fn a_callback_from_the_peer_is_called_through_a_push_and_answered() {
    run(async {
        let (s, driver, mut out) = session();
        // dir.subscribe(callbackStub, "hi"): the peer exports the callback as -1.
        s.receive(&json!(["push", ["pipeline", 0, ["subscribe"], [["export", -1], "hi"]]]).to_string()).expect("push");
        s.receive(&json!(["pull", 1]).to_string()).expect("pull");
        let talk = async {
            // The server calls notify on the peer's object...
            let call: Value = serde_json::from_str(&out.next().await.expect("call")).expect("json");
            assert_eq!(call, json!(["push", ["pipeline", -1, ["notify"], ["hi"]]]));
            let pull: Value = serde_json::from_str(&out.next().await.expect("pull")).expect("json");
            assert_eq!(pull, json!(["pull", 1]));
            // ...and the peer answers; the server's call then resolves.
            s.receive(&json!(["resolve", 1, "got hi"]).to_string()).expect("resolve");
            loop {
                let m: Value = serde_json::from_str(&out.next().await.expect("more")).expect("json");
                if m[0] == "resolve" {
                    return m;
                }
            }
        };
        let answer = tokio::select! {
            m = talk => m,
            () = driver => unreachable!(),
        };
        assert_eq!(answer, json!(["resolve", 1, "got hi"]));
    });
}

#[test]
fn results_never_released_are_bounded() {
    run(async {
        let (s, _driver, mut out) = session();
        // Released results do not count...
        for id in 1..=100 {
            s.receive(&json!(["push", id]).to_string()).expect("push");
            s.receive(&json!(["release", id, 1]).to_string()).expect("release");
        }
        // ...held ones do, up to the limit (64 with the main export).
        let mut refused = None;
        for _ in 0..100 {
            if let Err(e) = s.receive(&json!(["push", 1]).to_string()) {
                refused = Some(e);
                break;
            }
        }
        assert_eq!(refused.expect("refused at the limit").code, rpc_core::Code::LimitExceeded);
        let abort: Value = serde_json::from_str(&out.next().await.expect("abort")).expect("json");
        assert_eq!((abort[0].as_str(), abort[1][4]["code"].as_str()), (Some("abort"), Some("LIMIT_EXCEEDED")));
    });
}
