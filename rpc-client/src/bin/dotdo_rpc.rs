//! `dotdo-rpc`: a small client for dotdo servers.
//!
//! ```text
//! dotdo-rpc <url>                       negotiate and list the server's interfaces
//! dotdo-rpc chain <url> <file> <child>  read <file>/<child> with one pipelined chain
//! ```

fn usage() -> ! {
    eprintln!("usage:\n  dotdo-rpc <ws://|http://|tcp://host:port>\n  dotdo-rpc chain <url> <file> <child>");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        None | Some("-h" | "--help" | "help") => usage(),
        Some("chain") if args.len() == 4 => rpc_client::run(chain(&args[1], &args[2], &args[3])),
        Some(url) if args.len() == 1 => rpc_client::run(info(url)),
        _ => usage(),
    };
    std::process::exit(code);
}

async fn info(url: &str) -> i32 {
    let result = async {
        let session = rpc_client::connect(url).await?;
        let n = rpc_client::negotiate(&session.bootstrap, "dotdo-rpc", &["pipelining"], &[]).await?;
        println!("protocol v{} session {} namespace {}", n.version, n.session_id, n.namespace);
        println!("features: {}", n.available.join(", "));
        // Over HTTP a session is one batch: describe needs a new one.
        let session = rpc_client::connect(url).await?;
        for i in rpc_client::describe(&session.bootstrap).await? {
            let methods: Vec<String> = i.methods.iter().map(|(m, o)| format!("{m}@{o}")).collect();
            println!("{} ({:#x}): {}", i.name, i.id, methods.join(" "));
        }
        Ok::<_, rpc_core::RpcError>(())
    }
    .await;
    report(result)
}

async fn chain(url: &str, name: &str, child: &str) -> i32 {
    let result = async {
        let session = rpc_client::connect(url).await?;
        let dir = session.bootstrap.demo_request().send().pipeline.get_directory();
        let mut open = dir.open_request();
        open.get().set_name(name);
        let mut sub = open.send().pipeline.get_file().child_request();
        sub.get().set_name(child);
        let read = sub.send().pipeline.get_file().read_request().send();
        let resp = read.promise.await?;
        println!(
            "{}",
            resp.get()?
                .get_text()?
                .to_str()
                .map_err(|e| rpc_core::RpcError::new(rpc_core::Code::InvalidArgument, e.to_string()))?
        );
        Ok::<_, rpc_core::RpcError>(())
    }
    .await;
    report(result)
}

fn report(result: Result<(), rpc_core::RpcError>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("dotdo-rpc: {e}");
            1
        }
    }
}
