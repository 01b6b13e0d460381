//! Every limit exceeded gives its typed error, and the session and server go on.

mod common;

use common::*;
use rpc_core::{Code, Limits};
use std::time::Duration;

/// Sends `sum([1; n])` at once (so calls made one after another share an HTTP batch).
fn sum(
    dir: &schema::demo_capnp::directory::Client,
    n: u32,
) -> impl std::future::Future<Output = Result<i64, rpc_core::RpcError>> {
    let mut req = dir.sum_request();
    let mut list = req.get().init_values(n);
    for i in 0..n {
        list.set(i, 1);
    }
    let promise = req.send().promise;
    async move { Ok(promise.await?.get()?.get_total()) }
}

#[test]
fn an_oversize_message_is_refused_and_the_session_goes_on() {
    let s = server(Limits { max_message_bytes: 64 << 10, ..Limits::default() });
    for url in urls(&s) {
        rpc_client::run(async {
            let session = connect_any(&url).await.expect("connect");
            let dir = directory(&session.bootstrap);
            // 20,000 eight-byte values: about 160 KiB.
            let big = sum(&dir, 20_000);
            let small = sum(&dir, 3);
            assert_eq!(code(big.await), Code::LimitExceeded, "over {url}");
            assert_eq!(small.await.unwrap_or_else(|e| panic!("small call after the big one over {url}: {e}")), 3);
        });
    }
    s.stop();
}

#[test]
fn a_frame_over_the_hard_limit_closes_only_that_connection() {
    let s = server(Limits { max_message_bytes: 16 << 10, max_frame_bytes: 64 << 10, ..Limits::default() });
    let [ws, _, tcp] = urls(&s);
    for url in [&ws, &tcp] {
        rpc_client::run(async {
            let session = connect_any(url).await.expect("connect");
            let dir = directory(&session.bootstrap);
            let e = sum(&dir, 100_000).await.expect_err("an 800 KiB message must fail");
            assert_eq!(e.code, Code::LimitExceeded, "over {url}: {e:?}");
            let fresh = connect_any(url).await.expect("reconnect");
            assert_eq!(sum(&directory(&fresh.bootstrap), 5).await.expect("fresh session works"), 5);
        });
    }
    assert!(metric(&s, |m| &m.aborted_sessions) >= 2);
    s.stop();
}

fn tree_request(
    dir: &schema::demo_capnp::directory::Client,
    depth: u32,
) -> capnp::capability::RemotePromise<schema::demo_capnp::directory::depth_results::Owned> {
    let mut req = dir.depth_request();
    let mut node = req.get().init_tree();
    for _ in 1..depth {
        node = node.init_children(1).get(0);
    }
    req.send()
}

#[test]
fn a_message_nested_too_deeply_is_refused() {
    let s = server(Limits { nesting_limit: 16, ..Limits::default() });
    for url in urls(&s) {
        rpc_client::run(async {
            let session = connect_any(&url).await.expect("connect");
            let dir = directory(&session.bootstrap);
            let deep = tree_request(&dir, 40);
            let shallow = tree_request(&dir, 5);
            assert_eq!(code(deep.promise.await), Code::LimitExceeded, "over {url}");
            assert_eq!(shallow.promise.await.expect("shallow").get().unwrap().get_depth(), 5);
        });
    }
    s.stop();
}

#[test]
fn calls_over_the_in_flight_limit_are_overloaded() {
    let s = server(Limits { max_calls_in_flight: 4, ..Limits::default() });
    let [ws, _, tcp] = urls(&s);
    for url in [&ws, &tcp] {
        rpc_client::run(async {
            let session = connect_any(url).await.expect("connect");
            let resp = session.bootstrap.demo_request().send().promise.await.expect("demo");
            let dir = resp.get().unwrap().get_directory().unwrap();
            let calls: Vec<_> = (0..12)
                .map(|_| {
                    let mut r = dir.sleep_request();
                    r.get().set_millis(300);
                    r.send().promise
                })
                .collect();
            let results = futures::future::join_all(calls).await;
            let ok = results.iter().filter(|r| r.is_ok()).count();
            let overloaded = results
                .into_iter()
                .filter_map(std::result::Result::err)
                .filter(|e| rpc_core::RpcError::from(e.clone()).code == Code::Overloaded)
                .count();
            assert_eq!((ok, overloaded), (4, 8), "over {url}");
            let mut echo = dir.echo_request();
            echo.get().set_x(7);
            assert_eq!(echo.send().promise.await.expect("echo after").get().unwrap().get_x(), 7);
        });
    }
    s.stop();
}

#[test]
fn a_batch_over_its_limits_is_refused_whole() {
    let s = server(Limits { max_batch_messages: 3, ..Limits::default() });
    let [_, http, _] = urls(&s);
    rpc_client::run(async {
        let session = connect_any(&http).await.expect("connect");
        assert_eq!(code(chain(&directory(&session.bootstrap), "a", "b").await), Code::LimitExceeded);
    });
    s.stop();
    let s = server(Limits { max_batch_bytes: 4 << 10, ..Limits::default() });
    let [_, http, _] = urls(&s);
    rpc_client::run(async {
        let session = connect_any(&http).await.expect("connect");
        assert_eq!(code(sum(&directory(&session.bootstrap), 5_000).await), Code::LimitExceeded);
    });
    s.stop();
}

#[test]
fn a_slow_call_times_out_and_the_session_goes_on() {
    let s = server(Limits { call_timeout: Duration::from_millis(200), ..Limits::default() });
    for url in urls(&s) {
        rpc_client::run(async {
            let session = connect_any(&url).await.expect("connect");
            let dir = directory(&session.bootstrap);
            let mut slow = dir.sleep_request();
            slow.get().set_millis(5_000);
            let mut quick = dir.next_request();
            quick.get().set_n(1);
            let (slow, quick) = (slow.send().promise, quick.send().promise);
            let started = std::time::Instant::now();
            assert_eq!(code(slow.await), Code::Timeout, "over {url}");
            assert!(started.elapsed() < Duration::from_secs(4), "the timeout fired before the sleep ended");
            assert_eq!(quick.await.expect("quick").get().unwrap().get_n(), 2);
        });
    }
    s.stop();
}
