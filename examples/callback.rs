//! Capability passing: the client hands the server a capability of its own, and the
//! server calls it back over the same connection (WebSocket or TCP).
//!
//! `cargo run -p examples --example callback [URL]`

use capnp::capability::Rc;
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
            let dir = session.bootstrap.demo_request().send().pipeline.get_directory();
            let mut req = dir.subscribe_request();
            req.get().set_callback(capnp_rpc::new_client(Printer));
            req.get().set_value("ping");
            println!("{url}");
            let reply = req.send().promise.await?;
            let reply = reply.get()?.get_reply()?.to_str()?.to_string();
            assert_eq!(reply, "ping, received");
            println!("  subscribe returned {reply:?}");
            Ok::<_, Box<dyn std::error::Error>>(())
        })?;
    }
    Ok(())
}
