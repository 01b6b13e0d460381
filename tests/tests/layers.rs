//! The session's layers against a real server: every call arriving over WebSocket,
//! HTTP batch or TCP is recorded in the server's call metrics with its outcome code,
//! including calls on the modules an object hands out (they stay inside the stack).

mod common;

use common::*;
use rpc_core::Code;
use std::time::Duration;

#[test]
fn calls_on_every_transport_are_recorded_with_their_outcome() {
    let dir = data_dir("layers");
    let (server, _) = object_server(&dir, Duration::from_secs(60));
    for (i, url) in urls(&server).iter().enumerate() {
        rpc_client::run(async {
            let session = connect_any(url).await.expect("connect");
            let s = storage_of(&session.bootstrap, "Customer", &format!("acme-{i}"));
            let mut create = s.create_request();
            create.get().set_type("Customer");
            create.get().set_id("c1");
            create.get().set_data("{}");
            let mut missing = s.get_request();
            missing.get().set_id("nope");
            // Both in one batch (HTTP batch answers the calls of one request).
            let (created, missing) = futures::join!(create.send().promise, missing.send().promise);
            created.expect("create");
            assert_eq!(code(missing), Code::NotFound, "over {url}");
        });
    }
    let calls = |m: &str, c: &str| server.metrics.calls(m, c);
    assert_eq!(calls("gateway.object", "OK"), 3);
    assert_eq!(calls("object.storage", "OK"), 3);
    assert_eq!(calls("storage.create", "OK"), 3);
    assert_eq!(calls("storage.get", "NOT_FOUND"), 3);
    assert_eq!(calls("storage.get", "OK"), 0);
    server.stop();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_call_past_the_session_deadline_is_recorded_as_timeout() {
    let limits = rpc_core::Limits { call_timeout: Duration::from_millis(50), ..rpc_core::Limits::default() };
    let server = server(limits);
    let [ws, ..] = urls(&server);
    rpc_client::run(async {
        let session = rpc_client::connect(&ws).await.expect("connect");
        let mut sleep = directory(&session.bootstrap).sleep_request();
        sleep.get().set_millis(10_000);
        assert_eq!(code(sleep.send().promise.await), Code::Timeout);
    });
    assert_eq!(server.metrics.calls("directory.sleep", "TIMEOUT"), 1);
    server.stop();
}
