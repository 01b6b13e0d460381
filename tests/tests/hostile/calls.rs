//! Calls a well-behaved client library can be made to send, on every transport.

use super::*;
use capnp::traits::HasTypeId;

type CallCase = (&'static str, fn(&directory::Client) -> capnp::capability::Promise<(), capnp::Error>, Code);

fn untyped(dir: &directory::Client, iface: u64, method: u16) -> capnp::capability::Promise<(), capnp::Error> {
    let p = dir.client.new_call::<capnp::any_pointer::Owned, capnp::any_pointer::Owned>(iface, method, None).send();
    capnp::capability::Promise::from_future(async move { p.promise.await.map(|_| ()) })
}

fn call_cases() -> Vec<CallCase> {
    vec![
        ("unknown method id", |d| untyped(d, directory::Client::TYPE_ID, 99), Code::Unimplemented),
        ("unknown interface id", |d| untyped(d, 0x1234, 0), Code::Unimplemented),
        (
            "a blob where a struct should be",
            |d| {
                let mut r = d.client.new_call::<capnp::any_pointer::Owned, capnp::any_pointer::Owned>(
                    directory::Client::TYPE_ID,
                    0,
                    None,
                );
                let _ = r.get().set_as::<capnp::data::Owned>(&b"not a struct"[..]);
                let p = r.send().promise;
                capnp::capability::Promise::from_future(async move { p.await.map(|_| ()) })
            },
            Code::InvalidArgument,
        ),
        (
            "params over max_message_bytes",
            |d| {
                let mut r = d.sum_request();
                r.get().init_values(20_000);
                let p = r.send().promise;
                capnp::capability::Promise::from_future(async move { p.await.map(|_| ()) })
            },
            Code::LimitExceeded,
        ),
        (
            "params nested beyond nesting_limit",
            |d| {
                let mut r = d.depth_request();
                let mut node = r.get().init_tree();
                for _ in 1..40 {
                    node = node.init_children(1).get(0);
                }
                let p = r.send().promise;
                capnp::capability::Promise::from_future(async move { p.await.map(|_| ()) })
            },
            Code::LimitExceeded,
        ),
    ]
}

#[test]
fn hostile_calls_get_typed_exceptions_on_every_transport() {
    let s = server(limits());
    let mut failures = Vec::new();
    let cases = call_cases();
    for url in urls(&s) {
        rpc_client::run(async {
            for (name, send, want) in &cases {
                // A session per case, the case and an echo sent together: over HTTP
                // they are one batch, and the echo shows the batch's session went on.
                let session = connect_any(&url).await.expect("connect");
                let dir = directory(&session.bootstrap);
                let case = send(&dir);
                let mut echo = dir.echo_request();
                echo.get().set_x(7);
                let echo = echo.send().promise;
                let got = match within(name, case).await.map_err(RpcError::from) {
                    Ok(()) => Err("the call succeeded".to_string()),
                    Err(e) => Ok(e.code),
                };
                let intact = match echo.await {
                    Ok(r) if r.get().map(directory::echo_results::Reader::get_x).ok() == Some(7) => Ok(()),
                    Ok(_) => Err("echo answered wrongly".to_string()),
                    Err(e) => Err(format!("echo in the same session: {e}")),
                };
                check(&mut failures, &format!("{url}: {name}"), got, *want, intact);
            }
        });
    }
    rpc_client::run(still_serving(&s));
    report("calls", failures, cases.len());
    s.stop();
}
