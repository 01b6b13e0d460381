//! Pipelined chains, negotiation and discovery over WebSocket, HTTP batch and TCP.

mod common;

use common::*;
use rpc_core::{Code, Limits};

#[test]
fn a_pipelined_chain_works_over_every_transport() {
    let s = server(Limits::default());
    for url in urls(&s) {
        rpc_client::run(async {
            let session = connect_any(&url).await.expect("connect");
            let text = chain(&directory(&session.bootstrap), "docs", "readme").await.expect("chain");
            assert_eq!(text, "contents of docs/readme", "over {url}");
        });
    }
    s.stop();
}

#[test]
fn an_http_chain_is_exactly_one_request() {
    let s = server(Limits::default());
    let [_, http, _] = urls(&s);
    let before = (metric(&s, |m| &m.http_requests), metric(&s, |m| &m.batch_messages));
    rpc_client::run(async {
        let session = connect_any(&http).await.expect("connect");
        assert_eq!(chain(&directory(&session.bootstrap), "a", "b").await.expect("chain"), "contents of a/b");
    });
    assert_eq!(metric(&s, |m| &m.http_requests) - before.0, 1, "one HTTP request for the whole chain");
    // bootstrap + demo() + open() + child() + read(), and the Finish of demo(), whose
    // promise the client dropped while keeping its pipeline.
    let messages = metric(&s, |m| &m.batch_messages) - before.1;
    assert!((5..=6).contains(&messages), "{messages} messages in the batch");
    s.stop();
}

#[test]
fn flush_sends_the_batch_and_the_batch_session_ends_with_it() {
    let s = server(Limits::default());
    let [_, http, _] = urls(&s);
    let before = metric(&s, |m| &m.http_requests);
    rpc_client::run(async {
        let batch = rpc_client::batch(&http).await.expect("batch");
        let dir = batch.bootstrap.demo().directory();
        let (next, text) = (dir.next(41), dir.open("a").file().read());
        batch.flush();
        assert_eq!(next.await.expect("next").n, 42);
        assert_eq!(text.await.expect("read").text, "contents of a");
        // The batch is over: this session cannot make another round trip.
        assert_eq!(code(dir.next(1).await), Code::Disconnected);
    });
    assert_eq!(metric(&s, |m| &m.http_requests) - before, 1, "one request for the batch");
    s.stop();
}

#[test]
fn connect_refuses_http_and_batch_refuses_streams() {
    let s = server(Limits::default());
    let [ws, http, tcp] = urls(&s);
    rpc_client::run(async {
        assert_eq!(code(rpc_client::connect(&http).await.map(|_| ())), Code::InvalidArgument);
        for url in [&ws, &tcp] {
            assert_eq!(code(rpc_client::batch(url).await.map(|_| ())), Code::InvalidArgument, "{url}");
        }
    });
    s.stop();
}

#[test]
fn negotiation_agrees_and_refuses_with_typed_errors() {
    let s = server(Limits::default());
    for url in urls(&s) {
        rpc_client::run(async {
            let session = connect_any(&url).await.expect("connect");
            let n = rpc_client::negotiate(&session.bootstrap, "tester", &["pipelining", "nonsense"], &["websocket"])
                .await
                .expect("negotiate");
            assert_eq!(n.version, rpc_core::negotiation::PROTOCOL_VERSION);
            assert_eq!(n.client_id, "tester");
            assert_eq!(n.enabled, vec!["pipelining".to_string(), "websocket".to_string()]);
            assert!(n.available.contains(&"http-batch".to_string()));
            assert!(!n.session_id.is_empty());
            assert_eq!(n.namespace, "default");
            let session = connect_any(&url).await.expect("connect");
            let refused = rpc_client::negotiate(&session.bootstrap, "tester", &[], &["time-travel"]).await;
            assert_eq!(code(refused), Code::Unsupported, "over {url}");
        });
    }
    s.stop();
}

#[test]
fn sessions_get_distinct_ids_and_the_host_picks_the_namespace() {
    let s = server(Limits::default());
    let [ws, http, _] = urls(&s);
    rpc_client::run(async {
        let mut ids = Vec::new();
        let options = || rpc_client::Options { host: Some("acme.dotdo.dev".into()), ..Default::default() };
        let ws_session = rpc_client::connect_as(&ws, options()).await.expect("connect");
        let http_session = rpc_client::batch_as(&http, options()).await.expect("batch");
        for (url, gateway) in [(&ws, &ws_session.bootstrap), (&http, &http_session.bootstrap)] {
            let n = rpc_client::negotiate(gateway, "t", &[], &[]).await.expect("negotiate");
            assert_eq!(n.namespace, "acme", "over {url}");
            ids.push(n.session_id);
        }
        assert_ne!(ids[0], ids[1]);
    });
    s.stop();
}

#[test]
fn describe_lists_the_schema_interfaces() {
    let s = server(Limits::default());
    let [ws, ..] = urls(&s);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let ifaces = rpc_client::describe(&session.bootstrap).await.expect("describe");
        let dir = ifaces.iter().find(|i| i.name == "demo.capnp:Directory").expect("Directory listed");
        assert_eq!(dir.id, <schema::demo_capnp::directory::Client as capnp::traits::HasTypeId>::TYPE_ID);
        assert!(dir.methods.contains(&("open".to_string(), 0)));
        let gw = ifaces.iter().find(|i| i.name == "session.capnp:Gateway").expect("Gateway listed");
        let names: Vec<&str> = gw.methods.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(names, ["negotiate", "describe", "demo", "object", "broker"]);
    });
    s.stop();
}
