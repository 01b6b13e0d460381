//! Negotiation and discovery: the first call of a session agrees on a version and
//! features; `describe` lists the interfaces and methods the server offers; a
//! required feature the server lacks is a typed UNSUPPORTED error.
//!
//! `cargo run -p examples --example negotiate [URL]`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = examples::target()?;
    let url = &target.urls[0];
    rpc_client::run(async {
        let session = rpc_client::connect(url).await?;
        let n = rpc_client::negotiate(&session.bootstrap, "negotiate-example", &["pipelining"], &[]).await?;
        println!("protocol v{}, session {}, namespace {}", n.version, n.session_id, n.namespace);
        println!("enabled {:?} of {:?}", n.enabled, n.available);
        for i in rpc_client::describe(&session.bootstrap).await? {
            let methods: Vec<&str> = i.methods.iter().map(|(m, _)| m.as_str()).collect();
            println!("  {} {:?}", i.name, methods);
        }
        match rpc_client::negotiate(&session.bootstrap, "negotiate-example", &[], &["teleport"]).await {
            Err(e) if e.code == rpc_core::Code::Unsupported => println!("refused as expected: {e}"),
            other => return Err(format!("expected UNSUPPORTED, got {other:?}").into()),
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
