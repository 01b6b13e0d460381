//! Capability passing: the client hands the server a capability of its own, and the
//! server calls it back over the same connection (WebSocket or TCP; an HTTP batch
//! cannot be called back).
//!
//! `cargo run -p examples --example callback [URL]`

use capnp::capability::Rc;
use rpc_client::api::demo::Callback;
use schema::demo_capnp::callback;

/// The client's own capability: the server calls `notify` on it.
struct Printer;

impl callback::Server for Printer {
    async fn notify(
        self: Rc<Self>,
        params: callback::NotifyParams,
        mut results: callback::NotifyResults,
    ) -> capnp::Result<()> {
        let value = params.get()?.get_value()?.to_string()?;
        println!("  server called us back with {value:?}");
        results.get().set_reply(format!("{value}, received"));
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = examples::target()?;
    for url in target.urls.iter().filter(|u| !u.starts_with("http://")) {
        rpc_client::run(async {
            let session = rpc_client::connect(url).await?;
            let dir = session.bootstrap.demo().directory();
            println!("{url}");
            // Our capability travels as an argument; the server calls it before replying.
            let reply = dir.subscribe(&Callback::serve(Printer), "ping").await?.reply;
            assert_eq!(reply, "ping, received");
            println!("  subscribe returned {reply:?}");
            Ok::<_, Box<dyn std::error::Error>>(())
        })?;
    }
    Ok(())
}
