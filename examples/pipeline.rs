//! Promise pipelining: four dependent calls, one round trip, on every transport.
//!
//! `cargo run -p examples --example pipeline [URL]`

use rpc_client::api::session::Gateway;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = examples::target()?;
    for url in &target.urls {
        rpc_client::run(async {
            // Over http:// the calls below form one batch, sent when we first wait.
            let gateway: Gateway = rpc_client::bootstrap(url).await?;
            let started = Instant::now();
            // demo() -> Directory, open("docs") -> File, child("intro") -> File, read() -> Text.
            // Each call is made on the result of the one before, before it has returned.
            let text = gateway.demo().open("docs").child("intro").read().await?.text;
            assert_eq!(text, "contents of docs/intro");
            println!("{url:<36} {text:?} in {:?}", started.elapsed());
            Ok::<_, Box<dyn std::error::Error>>(())
        })?;
    }
    Ok(())
}
