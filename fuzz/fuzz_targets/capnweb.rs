//! Cap'n Web messages (newline-separated, as in an HTTP batch) fed to a session over the
//! demo directory, with the default limits: each is handled or refused with a typed
//! error, the session's work ends, and everything it sends is a JSON array message.
#![no_main]

use capnp::traits::HasTypeId;
use libfuzzer_sys::fuzz_target;
use rpc_core::capnweb::{Cap, Session, SessionLimits};
use rpc_core::Limits;
use schema::demo_capnp::directory;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let limits = Limits::default();
    let lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let sent = dotdo_fuzz::run_local(async move {
        let main = Cap { client: dotdo_fuzz::demo_bootstrap(&limits), interface: directory::Client::TYPE_ID };
        let (session, driver, mut out) = Session::new(main, SessionLimits::from_limits(&limits));
        for line in &lines {
            if session.receive(line).is_err() {
                break;
            }
        }
        // Run the session's work until every pulled result is out (calls end within
        // their deadline, in virtual time).
        tokio::select! {
            () = driver => {}
            () = session.drained() => {}
        }
        session.close();
        let mut sent = Vec::new();
        while let Ok(line) = out.try_recv() {
            sent.push(line);
        }
        sent
    });
    for line in sent.unwrap_or_default() {
        let v: serde_json::Value = serde_json::from_str(&line).expect("a message sent is JSON");
        assert!(v.as_array().is_some_and(|a| a.first().is_some_and(serde_json::Value::is_string)), "{line}");
    }
});
