//! Promise pipelining: three dependent calls, one round trip, on every transport.
//!
//! `cargo run -p examples --example pipeline [URL]`

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = examples::target()?;
    for url in &target.urls {
        rpc_client::run(async {
            let session = rpc_client::connect(url).await?;
            // demo() -> Directory, open("docs") -> File, child("intro") -> File, read() -> Text.
            // Each call is made on the result of the one before, before it has returned.
            let dir = session.bootstrap.demo_request().send().pipeline.get_directory();
            let mut open = dir.open_request();
            open.get().set_name("docs");
            let mut child = open.send().pipeline.get_file().child_request();
            child.get().set_name("intro");
            let read = child.send().pipeline.get_file().read_request().send();
            let started = Instant::now();
            let reply = read.promise.await?;
            let text = reply.get()?.get_text()?.to_str()?.to_string();
            assert_eq!(text, "contents of docs/intro");
            println!("{url:<36} {text:?} in {:?}", started.elapsed());
            Ok::<_, Box<dyn std::error::Error>>(())
        })?;
    }
    Ok(())
}
