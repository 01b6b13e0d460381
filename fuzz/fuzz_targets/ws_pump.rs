//! WebSocket frames into the pump: the input is the raw byte stream a client sends after
//! the upgrade, read by the server's `WsFrames` over an in-memory duplex and pumped into
//! an RPC engine serving the demo directory; the session must end (bounded in virtual
//! time) without a panic, whatever the bytes.
#![no_main]

use capnp::capability::Promise;
use capnp_rpc::rpc_twoparty_capnp::Side;
use libfuzzer_sys::fuzz_target;
use rpc_core::guard::Guard;
use rpc_core::pump::Pump;
use rpc_core::vat::{rpc_system, Link};
use rpc_core::wsframe::Role;
use rpc_core::Limits;
use rpc_transport::websocket::WsFrames;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn session(data: Vec<u8>) {
    let limits = Limits::default();
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (mut from_server, mut to_server) = tokio::io::split(client);
    // The client writes its bytes and half-closes; whatever the server answers is read
    // and dropped so its writes never block.
    tokio::task::spawn_local(async move {
        let _ = to_server.write_all(&data).await;
        let _ = to_server.shutdown().await;
    });
    tokio::task::spawn_local(async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = from_server.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    });
    let ws = WsFrames::new(server, Role::Server, &limits, bytes::BytesMut::new());
    let link = Link::new();
    let pump = Pump::new(ws, link.clone(), Guard::new(limits));
    let system = rpc_system(Side::Server, link, Promise::from_future(pump), Some(dotdo_fuzz::demo_bootstrap(&limits)));
    let _ = system.await;
}

fuzz_target!(|data: &[u8]| {
    let ended = dotdo_fuzz::run_local(session(data.to_vec()));
    assert!(ended.is_some(), "the session did not end within {:?} of virtual time", dotdo_fuzz::INPUT_DEADLINE);
});
