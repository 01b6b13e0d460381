//! The smallest user class, `Counter` (`examples/schema/counter.capnp`, implemented in
//! `examples/src/counter.rs`), served by an `App` with its state in each object's own
//! SQLite file, and called pipelined over WebSocket and HTTP batch:
//! `gateway.object("Counter", "c1")` and `increment` on it cost one round trip.
//!
//! `cargo run -p examples --example counter`

use do_runtime::{App, HostConfig};
use examples::counter::Counter;
use examples::counter_client::Counter as CounterClient;
use rpc_server::ServerConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = std::env::temp_dir().join(format!("dotdo-counter-{}", std::process::id()));
    let server =
        ServerConfig { http_addr: "127.0.0.1:0".parse()?, tcp_addr: None, workers: 1, ..ServerConfig::default() };
    let running = App::new()
        .class::<Counter>("Counter")
        .host(HostConfig { data_dir: data.clone(), ..HostConfig::default() })
        .start(server)?;
    let http = running.server.http_addr;
    let result = rpc_client::run(async move {
        // WebSocket: the object and the call on it go out together, one round trip.
        let session = rpc_client::connect(&format!("ws://{http}/rpc")).await?;
        let counter = CounterClient::new(session.bootstrap.object("Counter", "c1").object().cast());
        let value = counter.increment(5).await?.value;
        let info = counter.as_object().info().await?;
        println!("ws: {}/{} ({}) is now {value}", info.class, info.name, &info.id[..12]);
        // HTTP batch: the same chain in one POST.
        let batch = rpc_client::batch(&format!("http://{http}/rpc")).await?;
        let counter = CounterClient::new(batch.bootstrap.object("Counter", "c1").object().cast());
        println!("http batch: c1 is now {}", counter.increment(5).await?.value);

        let counter = CounterClient::new(session.bootstrap.object("Counter", "c1").object().cast());
        let value = counter.get().await?.value;
        if value != 10 {
            return Err(format!("expected 10 after two increments of 5, got {value}").into());
        }
        // A class nobody registered is refused, and creates nothing.
        let unknown = session.bootstrap.object("Nope", "x").object().info().await;
        match unknown {
            Err(e) if e.code == rpc_core::Code::NotFound => println!("class Nope: {}", e.message),
            other => return Err(format!("expected NOT_FOUND for an unknown class, got {other:?}").into()),
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    });
    running.server.stop();
    let _ = std::fs::remove_dir_all(data);
    result
}
